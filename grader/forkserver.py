"""Fresh kernels in milliseconds: fork them from a template process that has imported the heavy
modules once.

A grading kernel spends most of its CPU time importing (ipykernel, numpy, matplotlib: about 1.5 s
of the 2 s a short notebook costs). The grader therefore starts one *template* process
(``python -m grader.forkserver``) that imports ``PRELOAD`` and then waits. Each kernel is a
``fork()`` of it: a new process, with its own memory and no user code run before, whose imports
are already done. The child then does what ``ipykernel_launcher`` does: it starts an
``IPKernelApp`` on the connection file jupyter_client wrote.

jupyter_client still manages the kernel: its provisioner (``provisioner.ForkedProvisioner``)
asks the template instead of starting a process (signals go to the kernel's process group, as
for any local kernel). Where the template cannot help (not Linux, a kernel command that is not
this Python's ipykernel, a template that died), the kernel is launched the usual way. This
module imports no more than the standard library: a grader starts its template first thing.

Differences from a kernel started from scratch, none visible to a notebook that runs the same
code: the preloaded modules are in ``sys.modules`` already, and the hash seed is the template's.
numpy's global random state is reseeded in every kernel; Python's ``random`` does so by itself.

One template serves every worker of a grading run: its owner (``Template``) binds a Unix
socket and hands it over; each worker connects (``TemplateClient``) and sends one JSON object
per line, ``{"argv", "cwd", "env"}``, answered by ``{"pid"}`` (or ``{"error"}``). The template
exits when its standard input closes (its owner is done or gone), and a kernel when its parent,
the template, is gone; a worker's kernels are killed when its connection closes. What a
notebook starts ends with its kernel, even a process in a session of its own or one whose parent
has exited: kernels and template are subreapers, so such processes stay in the family and are
killed once their kernel is gone (``_end_orphans``).
"""

import contextlib
import ctypes
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .grading_env import LIBRARY

# Imported once by the template: the kernel itself, and what the course's notebooks import.
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",
    # what a kernel imports while it starts
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "IPython.core.oinspect",
    "IPython.extensions.storemagic",
    "sqlite3",
    "tornado.platform.asyncio",
    "numpy",
    "numpy.random",
    "matplotlib.pyplot",
    "ipywidgets",
    "backprop.widgets",
    "backprop.gradcheck",
    "backprop.layers",
    "backprop.net",
    "backprop.plots",
    "backprop.graphs",
    "backprop.data",
    "backprop.train",
)
LAUNCHER = "ipykernel_launcher"
PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal for this process when its parent exits
# Linux prctl option: orphaned descendants of this process become its children (not init's)
PR_SET_CHILD_SUBREAPER = 36
# Modules that set themselves up for a running kernel when imported in one: imported in the
# template, where there is none, they are given the kernel when it exists (module, function).
KERNEL_HOOKS = (("ipywidgets", "register_comm_target"),)


def kernel_args(cmd):
    """The arguments after ``-m ipykernel_launcher`` when ``cmd`` starts this Python's ipykernel
    (the only kernel a template can fork), else None."""
    if len(cmd) < 3 or cmd[1:3] != ["-m", LAUNCHER]:
        return None
    if os.path.realpath(cmd[0]) != os.path.realpath(sys.executable):
        return None
    return list(cmd[3:])


# -- the template process ----------------------------------------------------------------------


def _preload(names):
    for name in names:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 (a module that fails here fails in the notebook,
            pass  # with the notebook's own error)


def _failing():
    return 1 / 0


def _warm_up():
    """Do once, here, the one-off work of a kernel's first figure and first traceback (about
    0.05 s of each graded notebook): matplotlib's backend, styles and text layout, IPython's
    traceback formatter and the syntax-highlighting tables it compiles, the course library's
    sources parsed for tracebacks, and the list of local addresses a kernel looks up when it
    starts. Leaves no figure open and nothing else behind.

    The figure is made, not drawn: grading kernels use the Agg backend, which renders only what
    a notebook saves; rendering here (fonts, rasteriser: 0.25 s) would prepare what no graded
    notebook of the course needs."""
    try:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0], label="warm-up")
        ax.set_xscale("log")
        ax.legend()
        plt.close("all")
    except Exception:  # noqa: BLE001 (only a head start: a kernel does it again if needed)
        pass
    try:
        formatter = traceback_formatter()
        try:
            _failing()
        except ZeroDivisionError:
            formatter.structured_traceback(*sys.exc_info())
    except Exception:  # noqa: BLE001
        pass
    try:
        from jupyter_client.localinterfaces import localhost

        localhost()
    except Exception:  # noqa: BLE001
        pass
    _parse_library_sources()


def traceback_formatter():
    """IPython's traceback formatter as a new kernel sets it up (its default mode and colours).
    IPython 9 names the colours ``theme_name``; IPython 8, the last for Python 3.10, names them
    ``color_scheme``."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.ultratb import AutoFormattedTB

    mode, colours = InteractiveShell.xmode.default_value, InteractiveShell.colors.default_value
    try:
        return AutoFormattedTB(mode=mode, theme_name=colours)
    except TypeError:
        return AutoFormattedTB(mode=mode, color_scheme=colours)


def _parse_library_sources(package=LIBRARY):
    """Parse, once, the source of every loaded module of the course library ``package``, as
    IPython's tracebacks do (``stack_data``) for each file a traceback passes through, once per
    kernel: a failing test's traceback runs through the library's checks (``gradcheck``), and
    parsing them is half of its cost (0.03 s of the notebook's first failing test)."""
    try:
        import stack_data

        for name, module in list(sys.modules.items()):
            if name.split(".")[0] == package and getattr(module, "__file__", None):
                stack_data.Source.for_filename(module.__file__)
    except Exception:  # noqa: BLE001 (only a head start)
        pass


def _prctl(option, value):
    """Linux's ``prctl(option, value)``; elsewhere nothing happens."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def die_with(parent):
    """Have this process killed when ``parent`` exits (Linux; elsewhere nothing happens): a
    kernel before its own watch on its parent has started, a grading worker whose grader is
    gone."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it exited before that took effect
        os._exit(1)


def children():
    """The process ids of this process's children (Linux), from ``/proc``."""
    found = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                found.update(int(pid) for pid in f.read().split())
        except FileNotFoundError:  # a kernel built without it: look at every process
            return {pid for pid in _all_processes() if _parent_of(pid) == os.getpid()}
    return found


def _all_processes():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _end_orphans(kernels):
    """Kill every child of this template that is not one of the running ``kernels`` (pids) and
    not one of its own (in its session, like a warm-up's subprocess): what a notebook started
    that outlived its kernel.

    A kernel adopts what its notebook starts and leaves behind (it is a subreaper, see
    ``_kernel``), even in a session of its own, out of reach of the kill that ends the kernel's
    process group; when the kernel ends, those processes pass to the template, whose children
    they become, and end here. Their own children then pass to the template in turn, and end
    the same way."""
    own = os.getsid(0)
    for pid in children() - set(kernels):
        with contextlib.suppress(OSError):
            if os.getsid(pid) != own:
                os.kill(pid, signal.SIGKILL)


def _kernel(request, parent, close=()):
    """In the forked child: become a kernel as ``ipykernel_launcher`` would; never returns.
    ``close``: the template's sockets, of no use to a kernel."""
    code = 1
    try:
        die_with(parent)
        gc.enable()
        for sock in close:
            sock.close()
        os.setsid()  # its own process group: interrupts and kills reach it and its children
        # What its notebook starts in a session of its own and leaves behind stays its child,
        # and passes to the template when it ends (see _end_orphans).
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        for signum, handler in (
            (signal.SIGCHLD, signal.SIG_DFL),
            (signal.SIGINT, signal.default_int_handler),
            (signal.SIGTERM, signal.SIG_DFL),
        ):
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})  # the template's fork()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        from ipykernel.kernelapp import IPKernelApp

        sys.argv = [sys.executable, *request["argv"]]
        app = IPKernelApp.instance()
        # The kernel watches its parent, this template, and exits when it is gone.
        app.initialize([*request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"])
        for module, function in KERNEL_HOOKS:
            if module in sys.modules:
                getattr(sys.modules[module], function)()
        app.start()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 (the kernel is gone either way; the manager sees it)
        code = 1
    finally:
        os._exit(code)


def _reap():
    """Collect every child that has exited (a kernel's CPU time is added to this process's
    children, so whoever waits for the template sees it)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _running(pid):
    """True while kernel ``pid`` runs (a reaped kernel's pid may belong to another process)."""
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


def _kill_group(pid):
    """Kill kernel ``pid`` and whatever it started, if it still runs."""
    try:
        if _running(pid):
            os.killpg(pid, signal.SIGKILL)
    except OSError:  # its group is gone already
        pass


def serve(listener_fd, names=PRELOAD):
    """The template's life: import ``names``, then fork a kernel for each request line that
    comes in on a connection to the socket ``listener_fd``; exit when standard input closes.
    Requests that came during the imports are served first, the warm-up (``_warm_up``) is done
    once they are: the first kernels do not wait for it.

    A client's kernels are killed when its connection closes (a worker that died), and all
    kernels when the template exits. Nothing a notebook starts outlives its kernel, even in a
    session of its own (see ``_end_orphans``).
    """
    import selectors
    import socket

    # Like ipykernel_launcher: the folder the template started in is not an import location.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    kernels = {}  # connection -> pids of its kernels

    def child_exited(signum=None, frame=None):
        try:
            _reap()
            _end_orphans(set().union(*kernels.values()))
        except Exception:  # noqa: BLE001 (a signal handler must not end the template)
            pass

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C stops the grader; EOF stops this
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # what kernels leave behind comes here to end
    signal.signal(signal.SIGCHLD, child_exited)
    listener = socket.socket(fileno=listener_fd)
    # What the imports made is never collected: kept out of every collection, it is not copied
    # into each kernel when the collector would touch it (as Python's gc docs advise for a
    # server that forks).
    gc.disable()
    _preload(names)
    gc.freeze()

    template = os.getpid()
    pending = {}  # connection -> bytes received without a newline yet
    events = selectors.DefaultSelector()
    events.register(sys.stdin.fileno(), selectors.EVENT_READ, "owner")
    events.register(listener, selectors.EVENT_READ, "listener")

    def drop(conn):
        events.unregister(conn)
        for pid in kernels.pop(conn):
            _kill_group(pid)
        pending.pop(conn)
        conn.close()

    def fork(conn, line):
        # Until it is listed among the kernels, a new kernel would look like an orphan.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _kernel(request, parent=template, close=[events, listener, *kernels])
            kernels[conn] = {p for p in kernels[conn] if _running(p)} | {pid}
            return {"pid": pid}
        except (ValueError, OSError) as error:
            return {"error": f"{type(error).__name__}: {error}"}
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})

    warm = False
    while True:
        ready = events.select(timeout=None if warm else 0)
        if not ready and not warm:
            # The kernels asked for during the imports are running: the one-off work of a first
            # figure and traceback is done now, once, for the kernels to come.
            _warm_up()
            gc.freeze()
            warm = True
        for key, _ in ready:
            if key.data == "owner":
                if not os.read(key.fd, 4096):
                    _remove_socket(listener)  # the owner may be gone without cleaning up
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    for pids in kernels.values():
                        for pid in pids:
                            _kill_group(pid)
                    _end_all()
                    os._exit(0)  # nothing else to clean up: a quick exit is all it waits for
            elif key.data == "listener":
                conn, _ = listener.accept()
                kernels[conn], pending[conn] = set(), b""
                events.register(conn, selectors.EVENT_READ, "client")
            else:
                conn = key.fileobj
                try:
                    data = conn.recv(65536)
                except OSError:  # reset by a worker that was killed
                    data = b""
                if not data:
                    drop(conn)
                    continue
                *lines, pending[conn] = (pending[conn] + data).split(b"\n")
                for line in lines:
                    try:
                        conn.sendall(json.dumps(fork(conn, line)).encode() + b"\n")
                    except OSError:  # the worker is gone: so are its kernels
                        drop(conn)
                        break


def _end_all(seconds=2.0):
    """Kill every child of this process, and what passes to it as they end, until none is left
    (or ``seconds`` passed): the template's end, after its kernels were killed."""
    deadline = time.monotonic() + seconds
    while (left := children()) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
        _reap()


def _remove_socket(listener):
    """Remove the socket file of ``listener`` and its folder, when nothing else is in it."""
    address = listener.getsockname()
    if isinstance(address, str) and address:
        with contextlib.suppress(OSError):
            os.unlink(address)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(address))


# -- the grader's side -------------------------------------------------------------------------


class Template:
    """A template process, started now with ``env`` (default: this process's; what numpy and
    matplotlib read at import time comes from it), importing in the background, and the address
    of its socket (``address``), in a private temporary folder. It runs as long as this object
    is open; ``close()`` ends it and its kernels. ``address`` is None when no template could be
    started (only on Linux: macOS frameworks do not survive ``fork``, Windows has none)."""

    def __init__(self, env=None):
        import socket

        self.process = self.address = self.folder = None
        if not sys.platform.startswith("linux"):
            return  # forking a process with these modules loaded is only safe here
        self.folder = folder = tempfile.mkdtemp(prefix="grader-template-")
        self.address = os.path.join(folder, "template.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            try:
                listener.bind(self.address)  # fails when the path is too long for a socket
            except OSError:
                self.address = None
                self.close()
                return
            listener.listen(64)  # clients can connect and ask while the template imports
            try:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "grader.forkserver", str(listener.fileno())],
                    cwd=folder,
                    env=env,
                    stdin=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    pass_fds=[listener.fileno()],
                    start_new_session=True,  # a Ctrl+C meant for the grader does not reach it
                )
            except OSError:
                self.process = self.address = None

    def inherited(self):
        """File descriptors of this object that a forked child of its owner must close: the
        template's standard input, whose end tells the template to exit."""
        return (self.process.stdin.fileno(),) if self.process is not None else ()

    def close(self):
        if self.process is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class TemplateClient:
    """A connection to the template at ``address`` (from ``Template``); ``fork`` asks it for a
    kernel. Safe to use when the template is gone or was never there: ``fork`` returns None."""

    def __init__(self, address):
        self.address = address
        self.conn = self.replies = None
        self.gone = False  # the template went away while this client was connected to it

    def fork(self, argv, cwd, env):
        """The pid of a new kernel running ``ipykernel_launcher argv`` in ``cwd`` with ``env``,
        or None when the template cannot start one."""
        import socket

        if self.address is None:
            return None
        request = {"argv": argv, "cwd": str(cwd), "env": dict(env)}
        try:
            if self.conn is None:
                self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.conn.connect(self.address)
                self.replies = self.conn.makefile("rb")
            self.conn.sendall(json.dumps(request).encode() + b"\n")
            line = self.replies.readline()
            return json.loads(line).get("pid") if line else None
        except (OSError, ValueError):
            self.gone = self.gone or self.conn is not None
            self.close()
            self.address = None  # gone for good: kernels start the usual way from now on
            return None

    def lost(self):
        """True when this client was connected to a template that is gone since (its kernels
        went with it): found out here, or by a ``fork`` that failed on the connection (which
        then closed it; a kernel started ahead asks for its fork at any moment)."""
        import select
        import socket

        if self.gone:
            return True
        if self.conn is None:
            return False
        try:
            readable, _, _ = select.select([self.conn], [], [], 0)
            return bool(readable) and self.conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def close(self):
        if self.conn is not None:
            self.replies.close()
            self.conn.close()
            self.conn = self.replies = None


if __name__ == "__main__":
    serve(int(sys.argv[1]))

"""Fresh kernels in milliseconds: fork them from a template process that has imported the heavy
modules once.

A grading kernel spends most of its CPU time importing (ipykernel, numpy, matplotlib: about 1.5 s
of the 2 s a short notebook costs). A worker therefore starts one *template* process
(``python -m grader.forkserver``) that imports ``PRELOAD`` and then waits. Each kernel is a
``fork()`` of it: a new process, with its own memory and no user code run before, whose imports
are already done. The child then does what ``ipykernel_launcher`` does: it starts an
``IPKernelApp`` on the connection file jupyter_client wrote.

jupyter_client still manages the kernel: ``ForkedProvisioner`` replaces the ``Popen`` of its
default provisioner with a request to the template and hands back a ``Popen``-like handle
(signals go to the kernel's process group, as for any local kernel). Where the template cannot
help (no ``fork`` on this platform, a kernel command that is not this Python's ipykernel, a
template that died), the kernel is launched the usual way.

Differences from a kernel started from scratch, none visible to a notebook that runs the same
code: the preloaded modules are in ``sys.modules`` already, and the hash seed is the template's.
numpy's global random state is reseeded in every kernel; Python's ``random`` does so by itself.

Protocol, one JSON object per line: the template prints ``{"ready": true}`` once it has imported,
then reads ``{"argv", "cwd", "env"}`` and answers ``{"pid"}`` (or ``{"error"}``) for each kernel.
It exits when its standard input closes; a kernel exits when its parent (the template) is gone.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

from jupyter_client.provisioning import LocalProvisioner

# Imported once by the template: the kernel itself, and what the course's notebooks import.
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",
    "numpy",
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


def _die_with(parent):
    """Have this process killed when ``parent`` exits (Linux; elsewhere the kernel's own watch
    on its parent does it, once the kernel is up)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it exited before that took effect
        os._exit(1)


def _kernel(request, parent):
    """In the forked child: become a kernel as ``ipykernel_launcher`` would; never returns."""
    code = 1
    try:
        _die_with(parent)
        os.setsid()  # its own process group: interrupts and kills reach it and its children
        for signum, handler in (
            (signal.SIGCHLD, signal.SIG_DFL),
            (signal.SIGINT, signal.default_int_handler),
            (signal.SIGTERM, signal.SIG_DFL),
        ):
            signal.signal(signum, handler)
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


def _reap(signum=None, frame=None):
    """Collect every kernel that has exited (its CPU time is added to this process's children,
    so the worker's own accounting sees it)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def serve(names=PRELOAD, stdin=sys.stdin, stdout=sys.stdout):
    """The template's life: import ``names``, then fork a kernel for each request line."""
    # Like ipykernel_launcher: the folder the template started in is not an import location.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C stops the worker; EOF stops this
    signal.signal(signal.SIGCHLD, _reap)  # kernels are reaped as they exit
    _preload(names)

    def answer(message):
        stdout.write(json.dumps(message) + "\n")
        stdout.flush()

    template = os.getpid()
    answer({"ready": True})
    for line in stdin:
        try:
            request = json.loads(line)
            pid = os.fork()
        except (ValueError, OSError) as error:
            answer({"error": f"{type(error).__name__}: {error}"})
            continue
        if pid == 0:
            _kernel(request, parent=template)
        answer({"pid": pid})


# -- the worker's side -------------------------------------------------------------------------


class Template:
    """A template process, started now, importing in the background; ``fork`` asks it for a
    kernel. All methods are safe to call when it failed or died: they return None."""

    def __init__(self, cwd):
        self.process = None
        if not hasattr(os, "fork"):
            return
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "grader.forkserver"],
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,  # a Ctrl+C meant for the grader does not reach it
            )
        except OSError:
            self.process = None
        self.ready = False

    def _read(self):
        line = self.process.stdout.readline()
        return json.loads(line) if line else {}

    def fork(self, argv, cwd, env):
        """The pid of a new kernel running ``ipykernel_launcher argv`` in ``cwd`` with ``env``,
        or None when the template cannot start one."""
        if self.process is None or self.process.poll() is not None:
            return None
        try:
            if not self.ready:
                self.ready = self._read().get("ready", False)
                if not self.ready:
                    return None
            request = {"argv": argv, "cwd": str(cwd), "env": dict(env)}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            return self._read().get("pid")
        except (OSError, ValueError):
            return None

    def close(self):
        if self.process is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
            self.process = None


class ForkedKernel:
    """The part of ``subprocess.Popen`` that jupyter_client uses, for a kernel that is not this
    process's child: the template reaps it, so it is alive while its pid exists."""

    stdin = stdout = stderr = None

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -signal.SIGKILL  # the true code went to the template
            except PermissionError:
                pass
        return self.returncode

    def wait(self, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum):
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


class ForkedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, with kernels forked from ``template`` when it can."""

    template = None  # set on the instance before the kernel starts

    async def launch_kernel(self, cmd, **kwargs):
        args = kernel_args(cmd)
        pid = None
        if self.template is not None and args is not None:
            cwd, env = kwargs.get("cwd") or os.getcwd(), kwargs.get("env", os.environ)
            pid = self.template.fork(args, cwd, env)
        if pid is None:
            return await super().launch_kernel(cmd, **kwargs)
        self.process = ForkedKernel(pid)
        self.pid = self.pgid = pid  # the kernel leads its own process group
        self.cwd = kwargs.get("cwd") or os.getcwd()
        return self.connection_info


if __name__ == "__main__":
    serve()

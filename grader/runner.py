"""Run a notebook's code cells in a fresh kernel, within time limits, surviving crashes.

This is the only place where submitted code is executed; the interface is one function,
``run(nb, cwd, limits) -> RunLog``, which fills the cells' outputs in place. Scores are computed
elsewhere, from those outputs, outside the learner's process.

- Per-cell limit: a cell that runs too long is interrupted and gets a ``CellTimeoutError``
  output; the kernel goes on with the next cell.
- Whole-notebook limit: once it is used up, the remaining cells are not run and get a
  ``NotRun`` output.
- Dead kernel (``os._exit``, a segfault) or a kernel that ignores the interrupt: the notebook is
  run again in a new kernel, without the cells that killed it (they get a ``DeadKernelError``
  output), so the learner keeps the marks of everything else.
- The status of the kernel's reply to each cell is kept (``RunLog.statuses``); a cell whose reply
  is an error that its output does not show gets a ``HiddenError`` output.
- What a cell shows, and what an ipywidgets ``Output`` widget captures, is capped as it arrives
  (``OutputLimits``, see ``outputs``): a cell that floods its output keeps its head and tail,
  with a note of what was left out.
- Given the notebook's master, the grading environment is put back before each graded test
  cell (see ``grading_env``); where that fails, the test cell is not run and gets a
  ``GradingEnvironmentError`` output.

Every notebook gets a fresh kernel, killed as soon as its last cell has run. A grading worker
asks for the next kernel ahead (``run(..., next_kernel=True)`` or ``prepare()``): it is started
in a folder of the worker's own while the current notebook runs, and moved to the notebook's folder
(``os.chdir``) before the first cell, so a kernel's start-up is not on the critical path.
"""

import asyncio
import atexit
import contextlib
import functools
import math
import multiprocessing.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

# nbformat and the Jupyter modules are imported where they are used: a grader imports this module
# before it starts its template process (see autograde), and that should come first.

TIMEOUT, CRASHED, NOT_RUN = "timeout", "dead-kernel", "not-run"
KERNEL_FOLDER = "grader-kernel-"  # then the process id: see remove_kernel_folders
# Characters a Unix socket's path can have (macOS: 103, Linux: 107).
MAX_SOCKET_PATH = 103


# Grading kernels run with one BLAS thread each (N workers on N cores do not fight) and draw
# with matplotlib's Agg backend; both are read when numpy and matplotlib are imported.
KERNEL_DEFAULTS = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}


def kernel_env():
    """This process's environment with ``KERNEL_DEFAULTS`` for what it does not set."""
    return KERNEL_DEFAULTS | dict(os.environ)


@dataclass
class Limits:
    cell: float = 30.0  # seconds per cell
    notebook: float = 600.0  # seconds for the whole notebook, restarts included
    restarts: int = 3  # new kernels after a crash, at most
    probe: float = 5.0  # seconds an interrupted kernel has to answer again


@dataclass(frozen=True)
class OutputLimits:
    """How much of what one cell shows, and of what one ipywidgets ``Output`` widget captures
    (until it is cleared), a graded notebook keeps (applied as it arrives: see ``outputs``).
    Beyond them the grader keeps the head and the tail, with a line in between that says what it
    left out (``... 298,512 lines (31,045,248 characters) of output left out by the grader
    ...``):

    - stdout and stderr, each: the first ``head_lines`` lines (at most ``head_chars``
      characters), and the last ``tail_lines`` (at most ``tail_chars``). A stream that came in
      more than ``stream_outputs`` pieces has the rest joined in one output (nothing is lost).
    - displays (``display()``, a cell's value, images, HTML): the first ``displays`` (at most
      ``displays_chars`` characters of data in all) and the last ``tail_displays`` (at most
      ``tail_displays_chars``). One display of more than ``display_chars`` keeps only its text.
    - errors (tracebacks) are kept whole: scores depend on them.

    Generous on purpose: a cell of the course's solutions prints at most 13 lines (503
    characters) and shows at most 4 outputs, and none is an image while graded, so an honest
    submission is never cut; a cell that floods its output keeps about 140,000 characters of
    text and 5 MB of displays (a notebook of 100 MB and a feedback page of 90 MB before).
    """

    head_lines: int = 500
    head_chars: int = 50_000
    tail_lines: int = 200
    tail_chars: int = 20_000
    stream_outputs: int = 100
    displays: int = 100
    displays_chars: int = 4_000_000
    tail_displays: int = 20
    tail_displays_chars: int = 1_000_000
    display_chars: int = 1_000_000


OUTPUT_LIMITS = OutputLimits()


@dataclass
class RunLog:
    """What happened, by cell index: ``{index: TIMEOUT | CRASHED | NOT_RUN}``, and the status of
    the kernel's reply to each cell it answered: ``{index: "ok" | "error" | ...}``."""

    events: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    exited: int | None = None  # index of a cell that asked the kernel to exit
    kernels: int = 0
    reached: int = -1  # index of the last cell run to completion
    seconds: float = 0.0


class _Restart(Exception):
    """The kernel is gone or stuck: start a new one and run the notebook again. Its argument:
    the index of the cell to blame, or None when no cell is to blame (the template the kernel
    was forked from died, and every kernel with it)."""


def _error(ename, evalue):
    import nbformat

    return nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


def _mark(cell, event, limits):
    text = {
        TIMEOUT: f"this cell ran longer than its time limit ({limits.cell:g} s) and was stopped",
        CRASHED: "the kernel died while running this cell (exit(), os._exit, a crash or a stuck "
        "kernel); the rest of the notebook was run again without it",
        NOT_RUN: f"not run: the notebook's time limit ({limits.notebook:g} s) was used up",
    }[event]
    name = {TIMEOUT: "CellTimeoutError", CRASHED: "DeadKernelError", NOT_RUN: "NotRun"}[event]
    cell.outputs.append(_error(name, text))


HIDDEN_ERROR = "the cell raised an error that was hidden from the output"
SKIPPED = "this test cell was not run (it is tagged to be skipped)"
RESET_FAILED = "the grading environment could not be put back before this test, so it was not run: "


def _note_reply(log, cell, cell_index, execute_reply):
    """nbclient's hook after a cell ran: keep its reply's status; show an error it hid."""
    if execute_reply is None:
        return
    status = execute_reply["content"]["status"]
    log.statuses[cell_index] = status
    payload = execute_reply["content"].get("payload") or []
    if any(item.get("source") == "ask_exit" for item in payload):
        log.exited = cell_index  # exit() or quit(): the kernel ends once the cell has run
    if status != "ok" and not any(o.get("output_type") == "error" for o in cell.outputs):
        cell.outputs.append(_error("HiddenError", HIDDEN_ERROR))


def _client(nb, cwd, limits, deadline, keep_whole=()):
    from .outputs import CappedClient

    def timeout_for(cell):
        return max(0.1, min(limits.cell, deadline - time.monotonic()))

    return CappedClient(
        nb,
        OUTPUT_LIMITS,
        keep_whole,
        kernel_name="python3",
        timeout=math.ceil(limits.cell),  # nbclient wants whole seconds; timeout_for rules
        timeout_func=timeout_for,
        interrupt_on_timeout=False,
        # After a cell's reply, wait for the rest of its output until the kernel says it is
        # done (which ends the wait), not 4 s: a grader busy with other notebooks can take
        # longer than that to read what a cell printed, and would drop the rest. A kernel
        # that dies meanwhile is noticed within a second all the same.
        iopub_timeout=math.ceil(limits.cell),
        allow_errors=True,
        record_timing=False,
        shutdown_kernel="immediate",  # nothing of the kernel is needed once the cells ran
        resources={"metadata": {"path": str(cwd)}},
    )


def own_sockets(folder):
    """Settings of jupyter_client's ``KernelManager`` for a kernel that listens on Unix sockets
    of its own, named ``<folder>/<random name>-<n>``; ``{}`` (TCP ports, as usual) where there
    are no Unix sockets or their paths would be too long.

    A TCP port is picked as free by opening and closing it, and another process starting a
    kernel can take it before this kernel binds it: the kernel then dies at start ("Address
    already in use"), a grader error for that submission. A socket path of the kernel's own
    cannot be taken.
    """
    prefix = os.path.join(folder, uuid.uuid4().hex[:12])
    if os.name != "posix" or len(prefix) + len("-99") > MAX_SOCKET_PATH:
        return {}
    return {"transport": "ipc", "ip": prefix}


def _starter(cwd):
    """A client of an empty notebook in ``cwd`` with a kernel manager (``km``), no kernel yet:
    what starts a kernel before its notebook is known."""
    import nbformat

    from .kernel_client import QueueingClient

    starter = _client(nbformat.v4.new_notebook(), cwd, Limits(), deadline=0.0)
    starter.km = starter.create_kernel_manager()
    starter.km.client_factory = QueueingClient  # each client of its kernel, see there
    return starter


class _Kernels:
    """This process's kernel started ahead, for the next notebook (at most one)."""

    def __init__(self):
        self.loop = None  # one event loop for all runs: a spare kernel outlives a run
        self.spare = None  # (manager, task connecting a client) of a kernel in ``self.folder``
        self.folder = None
        self.template = None  # a template process this process started (see forkserver)
        self.forks = None  # the connection to the template kernels are forked from

    def run_until_complete(self, coroutine):
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(coroutine)

    async def start(self, cwd):
        """A kernel manager with a new python3 kernel started in ``cwd`` (not yet answering),
        listening on sockets of its own in this process's kernel folder (``own_sockets``)."""
        starter = _starter(cwd)
        km = starter.km
        for name, value in own_sockets(self._folder()).items():
            setattr(km, name, value)
        # its connection file too: a worker killed outright leaves nothing outside the folder
        km.connection_file = os.path.join(self._folder(), f"{uuid.uuid4().hex[:12]}.json")
        if self.forks is not None:
            from .provisioner import ForkedProvisioner

            km.kernel_id = str(uuid.uuid4())
            km.provisioner = ForkedProvisioner(
                kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km
            )
            km.provisioner.template = self.forks
        # As nbgrader does: notebook code can tell it is being graded. The kernel's IPython
        # folder is new and its own (see _ipython_dir).
        env = os.environ | {"NBGRADER_EXECUTION": "autograde", "IPYTHONDIR": _ipython_dir(km)}
        await starter.async_start_new_kernel(env=env, stderr=subprocess.DEVNULL)
        return starter.km

    def use_template(self, address=None):
        """From now on, fork kernels from the template at ``address``, or from one started here
        (in the background) when it is None."""
        from .forkserver import Template, TemplateClient

        if address is None:
            if self.template is None:
                self.template = Template(env=kernel_env())
            address = self.template.address
        if self.forks is not None:
            self.forks.close()
        self.forks = TemplateClient(address)

    def _folder(self):
        """A folder for kernels started ahead and for every kernel's sockets, removed when this
        process exits: at exit of a plain process (``atexit``), and at the end of a grading
        worker, a multiprocessing child, which ends without running ``atexit`` hooks."""
        if self.folder is None:
            self.folder = tempfile.mkdtemp(prefix=f"{KERNEL_FOLDER}{os.getpid()}-")
            atexit.register(self.close)
            multiprocessing.util.Finalize(None, self.close, exitpriority=0)
        return self.folder

    async def start_spare(self):
        """Start a kernel for the next notebook, and connect to it in the background: by the
        time the notebook comes, the kernel is answering."""
        if self.spare is not None:
            return
        km = await self.start(self._folder())
        self.spare = km, asyncio.ensure_future(_connect(km))

    async def take_spare(self):
        """``(manager, client)`` of the spare kernel, connected and answering, or ``(None,
        None)`` when there is none alive; the caller owns them."""
        if self.spare is None:
            return None, None
        (km, connecting), self.spare = self.spare, None
        try:
            kc = await connecting
        except Exception:  # noqa: BLE001 (a kernel that died young: the caller starts another)
            kc = None
        if kc is None or not await km.is_alive():
            if kc is not None:
                kc.stop_channels()
            await km.shutdown_kernel(now=True)
            return None, None
        return km, kc

    def close(self):
        """Kill the spare kernel and the template, and remove their folder."""
        if self.spare is not None:
            km, kc = self.run_until_complete(self.take_spare())
            if km is not None:
                kc.stop_channels()
                self.run_until_complete(km.shutdown_kernel(now=True))
        if self.forks is not None:
            self.forks.close()
            self.forks = None
        if self.template is not None:
            self.template.close()
            self.template = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


_KERNELS = _Kernels()
# In a forked child: the parent's kernels (see ``_forget_kernels``), kept and never closed here.
_PARENTS = []


def _forget_kernels():
    """In a forked child (a grading worker): the kernels, template connection and event loop
    that were here belong to the parent; start with none.

    The parent's are kept, not dropped: the child's garbage collector would close the parent's
    event loop once nothing refers to it (from Python 3.13 a multiprocessing child also drops
    the parent's ``atexit`` hooks, ``close`` among them), and closing it takes the loop's
    wake-up socket off the epoll set that the child shares with the parent. The parent's loop
    would then wait for ever for what a thread hands it, such as the template's reply to a
    kernel fork."""
    global _KERNELS
    _PARENTS.append(_KERNELS)
    _KERNELS = _Kernels()


os.register_at_fork(after_in_child=_forget_kernels)


def _ipython_dir(km):
    """The IPython folder of ``km``'s kernel, next to its connection file; IPython makes it when
    the kernel starts, and the runner removes it when the kernel is done. With a folder of its
    own, empty, the instructor's IPython profile (startup files, kernel configuration, values
    kept with ``%store``) does not reach a graded notebook, nor does anything one graded
    notebook keeps there reach another."""
    return os.path.splitext(km.connection_file)[0] + ".ipython"


async def _connect(km, timeout=60.0):
    """A client of ``km``'s kernel, once the kernel answers on both channels.

    What jupyter_client's ``wait_for_ready`` does (nbclient's way for a kernel it starts), less
    its last step: waiting until the kernel's output has been quiet for 0.2 s. That wait held up
    the notebooks (one often finishes before the next kernel's wait would), and what it drains,
    the status messages of the kernel's start, is ignored anyway: every execution reads only the
    replies to its own request.
    """
    from queue import Empty

    kc = km.client()
    kc.start_channels()
    deadline = time.monotonic() + timeout
    # A kernel still starting answers the requests of earlier rounds late: any of them will do
    # (waiting for this round's only, a kernel that takes over a second to start was always
    # one answer behind, until the deadline).
    requests = set()
    try:
        while True:
            requests.add(kc.kernel_info())
            try:
                reply = await kc.shell_channel.get_msg(timeout=1)
                if reply["parent_header"].get("msg_id") in requests:
                    # the request's busy/idle status proves the output channel connected
                    await kc.iopub_channel.get_msg(timeout=0.2)
                    break
            except Empty:
                pass
            if not await km.is_alive():
                raise RuntimeError("the kernel died before it answered")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the kernel did not answer in {timeout:g} s")
    except BaseException:
        kc.stop_channels()
        raise
    kc.allow_stdin = False
    return kc


async def _enter(client, cwd):
    """Move a kernel started elsewhere to ``cwd``, silently (no execution count, no output):
    what the notebook's code sees is the same as for a kernel started there."""
    path = str(cwd)
    code = (
        f"__import__('os').chdir({path!r})\n"
        "get_ipython().user_ns['_dh'][:] = [__import__('pathlib').Path.cwd()]"
    )
    reply = await client.kc.execute_interactive(
        code, silent=True, store_history=False, timeout=client.startup_timeout
    )
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"could not move the kernel to {path}: {reply['content']}")


async def _reset(client, reset, limits, deadline):
    """Evaluate ``reset`` (``(user expression, token)``, see ``grading_env``) in the kernel,
    silently; None when it evaluated to its token, else what went wrong."""
    expression, token = reset
    timeout = max(0.1, min(limits.cell, deadline - time.monotonic()))
    reply = await client.kc.execute_interactive(
        "",
        silent=True,
        store_history=False,
        user_expressions={"reset": expression},
        timeout=timeout,
        output_hook=lambda msg: None,
    )
    result = reply["content"].get("user_expressions", {}).get("reset", {})
    if result.get("data", {}).get("text/plain") == repr(token):
        return None
    if result.get("status") == "error":
        return f"{result.get('ename')}: {result.get('evalue')}"
    return "the kernel did not run it"


async def _attempt(nb, cwd, limits, deadline, log, next_kernel, reset, keep_whole):
    """Run every code cell once in a new kernel; raises _Restart when the kernel is lost."""
    client = _client(nb, cwd, limits, deadline, keep_whole)
    client.km, client.kc = await _KERNELS.take_spare()
    moved = client.km is not None
    if not moved:
        client.km = await _KERNELS.start(cwd)
    log.kernels += 1
    km = client.km  # the client lets go of it at the end
    try:
        async with client.async_setup_kernel():
            _end_on_sigterm()
            if moved:
                await _enter(client, cwd)
            # The next notebook's kernel is asked for while this one's cells run.
            starting = asyncio.ensure_future(_KERNELS.start_spare()) if next_kernel else None
            try:
                await _run_cells(client, nb, limits, deadline, log, reset)
            finally:
                if starting is not None:
                    # only a head start: a kernel that failed to start is started again later
                    await asyncio.gather(starting, return_exceptions=True)
            await _kill(client.km)
    finally:
        shutil.rmtree(_ipython_dir(km), ignore_errors=True)


def _end_on_sigterm():
    """Undo what nbclient's ``async_setup_kernel`` does with SIGTERM in this process: it catches
    it, shuts the kernel down and goes on. A grading worker must end on it: that is how a
    ``ProcessPoolExecutor`` ends the workers of a pool that broke, and from Python 3.12 it waits
    for them to exit (a worker that lived on left the grader waiting forever). Its kernels end
    with it: a forked one when its connection to the template closes (see forkserver), another
    when it sees its parent gone (jupyter_client tells it which process that is)."""
    with contextlib.suppress(RuntimeError, NotImplementedError, ValueError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)


async def _run_cells(client, nb, limits, deadline, log, reset):
    """Run ``nb``'s code cells in ``client``'s kernel, noting in ``log`` what went wrong; with
    a ``grading_env.Reset``, the grading environment is put back before each test cell."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from .master import is_test

    client.on_cell_executed = functools.partial(_note_reply, log)
    if reset is not None and await _reset(client, reset.at_start, limits, deadline):
        raise RuntimeError("could not note the grading environment in a new kernel")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        log.statuses.pop(index, None)
        if log.events.get(index) in (CRASHED, TIMEOUT):
            _mark(cell, log.events[index], limits)
            continue
        if time.monotonic() >= deadline:
            log.events[index] = NOT_RUN
            _mark(cell, NOT_RUN, limits)
            continue
        try:
            if reset is not None and is_test(cell):
                failure = await _reset(client, reset.before_test, limits, deadline)
                if failure:
                    cell.outputs.append(
                        _error("GradingEnvironmentError", f"{RESET_FAILED}{failure}")
                    )
                    continue
            await client.async_execute_cell(cell, index)
            if log.exited == index:  # the next cell would find the kernel gone, and be blamed
                raise DeadKernelError("the cell asked the kernel to exit")
            if reset is not None and is_test(cell) and index not in log.statuses:
                cell.outputs.append(_error("NotRun", SKIPPED))
        except (CellTimeoutError, TimeoutError):
            if _died_with_its_template(client.km):  # its output stopped with it
                raise _Restart(None) from None
            log.events[index] = TIMEOUT
            _mark(cell, TIMEOUT, limits)
            if not await _recovered(client, limits):
                raise _Restart(index) from None
        except DeadKernelError:
            if _died_with_its_template(client.km):
                raise _Restart(None) from None  # no cell of this notebook ended its kernel
            log.events[index] = CRASHED
            _mark(cell, CRASHED, limits)
            raise _Restart(index) from None
        log.reached = index


def _died_with_its_template(km):
    """True when ``km``'s kernel was forked from a template that is gone: it ended with the
    template, whatever its own cell did (another notebook may have killed the template). A
    kernel started the usual way ends only by its own doing."""
    from .provisioner import ForkedKernel

    forked = isinstance(getattr(km.provisioner, "process", None), ForkedKernel)
    return forked and _KERNELS.forks is not None and _KERNELS.forks.lost()


async def _kill(km):
    """Kill the kernel and wait until it is gone: nothing of it is needed once the cells ran
    (jupyter_client's shutdown would look for its end every 0.1 s)."""
    await km.provisioner.kill()
    while await km.is_alive():
        await asyncio.sleep(0.005)


async def _recovered(client, limits):
    """Interrupt the kernel; True when it answers a trivial request again within ``probe`` s."""
    from queue import Empty

    from nbclient.util import ensure_async

    try:
        await ensure_async(client.km.interrupt_kernel())
        msg_id = client.kc.execute("pass", store_history=False)
        deadline = time.monotonic() + limits.probe
        while time.monotonic() < deadline:
            msg = await ensure_async(
                client.kc.shell_channel.get_msg(timeout=deadline - time.monotonic())
            )
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
    except (Empty, RuntimeError):
        pass
    return False


async def _run(nb, cwd, limits, next_kernel, reset, keep_whole=()):
    log = RunLog()
    start = time.monotonic()
    deadline = start + limits.notebook
    while True:
        try:
            await _attempt(nb, cwd, limits, deadline, log, next_kernel, reset, keep_whole)
            break
        except _Restart as lost:
            log.exited = None
            if log.kernels > limits.restarts:
                blamed = log.reached if lost.args[0] is None else lost.args[0]
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type == "code" and index > blamed:
                        log.events[index] = NOT_RUN
                        cell.outputs = []
                        _mark(cell, NOT_RUN, limits)
                break
    log.seconds = time.monotonic() - start
    return log


def run(nb, cwd, limits=None, next_kernel=False, master=None):
    """Execute ``nb`` (in place) with ``cwd`` as working directory; returns a ``RunLog``.

    With ``next_kernel``, a kernel for the next call is started while this one runs (it is
    killed when the process exits, if no call takes it). With ``master`` (the notebook's
    ``Master``), the grading environment is put back before each graded test cell, and output
    too long to keep is never cut inside a line of its hidden tests.
    """
    reset, keep_whole = None, ()
    if master is not None:
        from .grading_env import Reset
        from .outputs import shown_forms

        reset = Reset.of(master)
        keep_whole = shown_forms(master.hidden_lines())
    graded = _run(nb, cwd, limits or Limits(), next_kernel, reset, keep_whole)
    return _KERNELS.run_until_complete(graded)


def load_kernel_machinery():
    """Do the one-off work of this process's first kernel start that does not start one: import
    nbclient and jupyter_client's kernel manager, and find the python3 kernel's spec (0.1 s). A
    grader calls this before it forks its workers, which then start with it done."""
    return _starter(os.getcwd()).km.kernel_spec


def prepare(template=True):
    """Start a kernel for the next ``run`` now (a worker does this while it waits for work).
    This and later kernels are forked from a template process: the one at ``template`` when it
    is an address (see ``forkserver.Template``), one started here when it is True; with False,
    kernels start the usual way."""
    if template:
        _KERNELS.use_template(None if template is True else template)
    _KERNELS.run_until_complete(_KERNELS.start_spare())


def close():
    """Kill this process's spare kernel and template, if any (also done when it exits)."""
    _KERNELS.close()


def remove_kernel_folders(pid):
    """Remove the kernel folders of process ``pid``, which was killed before it could (its
    kernels, forked from a template, ended when its connection to the template closed)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{KERNEL_FOLDER}{pid}-*"):
        shutil.rmtree(folder, ignore_errors=True)

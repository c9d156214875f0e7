"""Kernels forked from a template process: the same as kernels started from scratch for the code
they run, managed by jupyter_client as usual (interrupts, crashes, shutdown), and gone with the
template."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import nbformat
import pytest

from grader import forkserver, runner

PROBE = """
import json, os, sys
preloaded = "matplotlib.pyplot" in sys.modules
import matplotlib.pyplot as plt
print(json.dumps({
    "preloaded": preloaded,
    "figures": plt.get_fignums(),
    "backend": plt.get_backend(),
    "traceback_mode": get_ipython().InteractiveTB.mode,
    "pid": os.getpid(),
    "ppid": os.getppid(),
    "cwd": os.getcwd(),
    "grading": os.environ.get("NBGRADER_EXECUTION"),
    "path": sys.path,
}))
"""
RANDOM = "import numpy as np\nprint(np.random.rand())"
WIDGETS = "import comm, ipywidgets\nprint(sorted(comm.get_comm_manager().targets))"


def run_cells(sources, cwd, **limits):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    log = runner.run(nb, cwd, runner.Limits(**limits), next_kernel=True)
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]
    return log, texts, nb


@pytest.fixture
def template():
    """Kernels of this process come from a template while the test runs."""
    runner.close()
    runner.prepare(template=True)
    yield runner._KERNELS.template
    runner.close()


@pytest.fixture
def plain():
    runner.close()
    runner.prepare(template=False)
    yield
    runner.close()


def test_kernel_args_only_for_this_pythons_ipykernel():
    assert forkserver.kernel_args([sys.executable, "-m", "ipykernel_launcher", "-f", "c.json"]) == [
        "-f",
        "c.json",
    ]
    assert forkserver.kernel_args(["/usr/bin/other-python", "-m", "ipykernel_launcher"]) is None
    assert forkserver.kernel_args([sys.executable, "-m", "some_other_kernel", "-f", "x"]) is None


def probe(tmp_path):
    log, texts, _ = run_cells([PROBE, RANDOM, WIDGETS], tmp_path)
    assert log.events == {} and log.kernels == 1, texts
    return json.loads(texts[0]), texts[1], texts[2]


def test_forked_kernel_is_a_fresh_kernel_like_any_other(template, tmp_path):
    first, random1, widgets = probe(tmp_path)
    second, random2, _ = probe(tmp_path)
    assert first["preloaded"], "the kernel was not forked from the template"
    assert first["ppid"] == second["ppid"] == template.process.pid
    assert first["pid"] != second["pid"]
    assert first["cwd"] == str(tmp_path) and first["grading"] == "autograde"
    assert random1 != random2, "every kernel needs its own random state"
    assert "jupyter.widget" in widgets, "ipywidgets must see the running kernel"
    assert not any(p == str(tmp_path) for p in first["path"])


def test_forked_and_started_kernels_see_the_same_world(template, tmp_path):
    forked, *_ = probe(tmp_path)
    runner.close()
    runner.prepare(template=False)
    started, *_ = probe(tmp_path)
    assert not started["preloaded"] and started["ppid"] == os.getpid()
    assert forked["path"] == started["path"]
    assert forked["cwd"] == started["cwd"] and forked["grading"] == started["grading"]
    # the template's warm-up (a figure drawn, a traceback formatted) leaves nothing behind
    assert forked["figures"] == started["figures"] == []
    assert forked["backend"] == started["backend"]
    assert forked["traceback_mode"] == started["traceback_mode"]


def test_interrupt_and_crash_reach_a_forked_kernel(template, tmp_path):
    log, texts, nb = run_cells(
        ["while True: pass", "print('after the loop')", "import os\nos._exit(3)", "print('end')"],
        tmp_path,
        cell=2,
    )
    assert log.events == {0: runner.TIMEOUT, 2: runner.CRASHED}
    assert texts[1] == "after the loop\n" and texts[3] == "end\n"
    assert log.kernels == 2


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kernels_end_with_their_template(template, tmp_path):
    kernel = json.loads(run_cells([PROBE], tmp_path)[1][0])
    assert not alive(kernel["pid"]), "a kernel outlived its notebook"
    km, _ = runner._KERNELS.spare  # forked for the next notebook
    spare = km.provisioner.pid
    assert alive(spare)
    os.kill(template.process.pid, signal.SIGKILL)
    wait_for_end(spare)


def wait_for_end(pid, seconds=10):
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), "a kernel outlived its template"


# Started by a notebook and left behind: one process in a session of its own (out of reach of
# the kill of the kernel's process group), one whose parent, a shell, exits at once (a daemon).
LEAVE_BEHIND = """
import shlex, subprocess, sys
sleeper = [sys.executable, "-c", "import time; time.sleep(300)", "{token}"]
subprocess.Popen(sleeper, start_new_session=True)
subprocess.run(["sh", "-c", shlex.join(["setsid", *sleeper]) + " &"], check=True)
"""
COUNT = """
import os, time
time.sleep(0.3)
mine = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        mine += "{token}" in open(f"/proc/{{pid}}/cmdline").read()
    except OSError:
        pass
print(mine)
"""


def processes_with(token):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                if token in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def wait_until_gone(token, seconds=10):
    deadline = time.monotonic() + seconds
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    return processes_with(token)


def test_what_a_notebook_starts_ends_with_its_kernel(template, tmp_path):
    """Even in a session of its own, or orphaned: it runs while its notebook runs, and is
    killed when the kernel is."""
    token = f"left-behind-{uuid.uuid4().hex}"
    cells = [LEAVE_BEHIND.format(token=token), COUNT.format(token=token)]
    log, texts, _ = run_cells(cells, tmp_path)
    assert log.events == {} and texts[1] == "2\n", texts
    assert not wait_until_gone(token), "processes a notebook started outlived its kernel"
    assert template.process.poll() is None


ORPHANS_END = """
import json, os, shlex, subprocess, sys, time
from grader import forkserver

forkserver._prctl(forkserver.PR_SET_CHILD_SUBREAPER, 1)
os.setsid()
sleeper = [sys.executable, "-c", "import time; time.sleep(300)", sys.argv[1]]
own = subprocess.Popen(sleeper)  # started here, in this session: not an orphan
subprocess.run(["sh", "-c", shlex.join(["setsid", *sleeper]) + " &"], check=True)
time.sleep(0.3)
seen = [len(forkserver.children())]
forkserver._end_orphans(kernels=set())
time.sleep(0.3)
forkserver._reap()
seen += [len(forkserver.children()), own.poll() is None]
forkserver._end_all()
print(json.dumps(seen + [len(forkserver.children())]))
"""


def test_orphans_end_and_so_does_everything_when_the_template_ends(tmp_path):
    """What passed to the template (``children``) is killed (``_end_orphans``), not what it
    started itself; all of it when the template ends (``_end_all``)."""
    token = f"left-behind-{uuid.uuid4().hex}"
    done = subprocess.run(
        [sys.executable, "-c", ORPHANS_END, token], capture_output=True, text=True, check=True
    )
    # two children, then only its own (alive), then none
    assert json.loads(done.stdout) == [2, 1, True, 0], done.stdout + done.stderr
    assert not wait_until_gone(token)


def test_a_client_gone_without_reading_its_replies_leaves_the_template_serving(template, tmp_path):
    """A worker killed with requests in flight: the template's replies find no reader (a broken
    pipe, or a reset connection); it drops that client and serves the others."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(template.address)
        conn.sendall(b"not json\n" * 20000)  # 20000 error replies, none read
    time.sleep(0.5)
    assert template.process.poll() is None, "the template ended"
    first, *_ = probe(tmp_path)
    assert first["preloaded"] and first["ppid"] == template.process.pid


def test_without_a_template_kernels_start_the_usual_way(tmp_path, plain):
    info = json.loads(run_cells([PROBE], tmp_path)[1][0])
    assert not info["preloaded"] and info["ppid"] == os.getpid()


@pytest.mark.parametrize("kernels", ["template", "plain"])
def test_a_graded_notebook_sees_no_ipython_profile_and_leaves_none(
    kernels, request, tmp_path, monkeypatch
):
    """The instructor's IPython profile (a startup file, a kernel setting) does not reach a
    graded notebook, and what one notebook keeps with ``%store`` does not reach the next: each
    kernel has an empty IPython folder of its own, removed once its notebook has run."""
    profile = tmp_path / "ipython" / "profile_default"
    (profile / "startup").mkdir(parents=True)
    (profile / "startup" / "00-mine.py").write_text("FROM_THE_PROFILE = 1\n")
    config = "c.InteractiveShell.ast_node_interactivity = 'all'\n"
    (profile / "ipython_kernel_config.py").write_text(config)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    request.getfixturevalue(kernels)
    first = [
        "print('FROM_THE_PROFILE' in globals())",
        "1\n2",
        "answer = 42\n%store answer",
        "import os\nprint(os.environ['IPYTHONDIR'])",
    ]
    log, texts, nb = run_cells(first, tmp_path)
    assert texts[0] == "False\n", "a startup file of the profile ran"
    assert [o.data["text/plain"] for o in nb.cells[1].outputs] == ["2"], "the profile's config"
    assert log.events == {}, texts
    own = texts[3].strip()
    assert own != str(tmp_path / "ipython") and not os.path.exists(own)
    _, texts, _ = run_cells(["%store -r answer\nprint('answer' in globals())"], tmp_path)
    assert texts[0].endswith("False\n"), "a value kept by one notebook reached the next"
    assert sorted(p.name for p in profile.iterdir()) == ["ipython_kernel_config.py", "startup"]


def test_a_socket_path_too_long_for_the_system_means_no_template(tmp_path, monkeypatch):
    """The template's socket lies in a temporary folder: where that folder's path is too long
    for a socket, kernels are started the usual way (no template), with nothing left behind."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    template = forkserver.Template()
    assert template.address is None and template.process is None
    template.close()
    assert list(deep.iterdir()) == []


def test_a_dead_template_falls_back_to_started_kernels(template, tmp_path):
    km, _ = runner._KERNELS.spare
    template.process.kill()
    template.process.wait()
    wait_for_end(km.provisioner.pid)
    info = json.loads(run_cells([PROBE], tmp_path)[1][0])
    assert not info["preloaded"] and info["ppid"] == os.getpid()


def test_a_clients_kernels_end_with_its_connection(template, tmp_path):
    run_cells([PROBE], tmp_path)
    km, _ = runner._KERNELS.spare
    assert alive(km.provisioner.pid)
    runner._KERNELS.forks.close()  # as when a worker dies
    wait_for_end(km.provisioner.pid)
    assert template.process.poll() is None, "the template serves the other workers on"


# A template whose imports, warm-up and kernels are stand-ins that note when they happen: the
# warm-up waits (up to 10 s) for a kernel forked before it, and notes either way.
ORDERED_TEMPLATE = """
import os, sys, time
from grader import forkserver

listener, log = int(sys.argv[1]), sys.argv[2]


def note(what):
    with open(log, "a") as f:
        f.write(what + "\\n")


def imports(names):
    time.sleep(0.5)  # the request below comes in meanwhile
    note("imported")


def warm_up():
    deadline = time.monotonic() + 10
    while "forked" not in open(log).read() and time.monotonic() < deadline:
        time.sleep(0.02)
    note("warmed")


def kernel(request, parent, close=()):
    note("forked")
    os._exit(0)


forkserver._preload, forkserver._warm_up, forkserver._kernel = imports, warm_up, kernel
forkserver.serve(listener)
"""


def test_kernels_asked_for_during_the_imports_do_not_wait_for_the_warm_up(tmp_path):
    import socket

    log, address = tmp_path / "log", str(tmp_path / "template.sock")
    log.write_text("")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(address)
        listener.listen(8)
        template = subprocess.Popen(
            [sys.executable, "-c", ORDERED_TEMPLATE, str(listener.fileno()), str(log)],
            stdin=subprocess.PIPE,
            pass_fds=[listener.fileno()],
        )
    client = forkserver.TemplateClient(address)
    try:
        assert client.fork(["-f", "unused.json"], tmp_path, {}) is not None
        deadline = time.monotonic() + 20
        while "warmed" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.close()
        template.stdin.close()
        template.wait(timeout=10)
    assert log.read_text().split() == ["imported", "forked", "warmed"]


def test_asking_the_template_for_a_kernel_leaves_the_event_loop_free(tmp_path):
    """A worker's loop runs the current notebook while the template forks the next kernel (the
    template may still be importing or warming up)."""
    import asyncio

    from jupyter_client.kernelspec import KernelSpecManager

    from grader.provisioner import ForkedProvisioner

    class SlowTemplate:
        def fork(self, argv, cwd, env):
            time.sleep(0.3)
            return os.getpid()  # a live process stands in for the kernel

    async def launch():
        ticks = []

        async def tick():
            while True:
                ticks.append(1)
                await asyncio.sleep(0.005)

        ticking = asyncio.ensure_future(tick())
        spec = KernelSpecManager().get_kernel_spec("python3")
        provisioner = ForkedProvisioner(kernel_id="test", kernel_spec=spec, parent=None)
        provisioner.template = SlowTemplate()
        cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", str(tmp_path / "k.json")]
        await provisioner.launch_kernel(cmd, cwd=str(tmp_path))
        ticking.cancel()
        return provisioner.pid, len(ticks)

    pid, ticks = asyncio.run(launch())
    assert pid == os.getpid()
    assert ticks > 5, "the loop stood still while the template forked"


LIBRARY_TRACEBACK = """
import json, sys
import numpy as np
import stack_data
from backprop import gradcheck
from grader import forkserver

forkserver._warm_up()
parsed, init = [], stack_data.Source.__init__
stack_data.Source.__init__ = lambda self, filename, *a, **k: (
    parsed.append(filename), init(self, filename, *a, **k))[1]
formatter = forkserver.traceback_formatter()
try:
    gradcheck.check_gradient("dW", np.ones(3), np.zeros(3))
except AssertionError:
    text = "".join(formatter.structured_traceback(*sys.exc_info()))
print(json.dumps({"parsed": parsed, "library_shown": "gradcheck.py" in text}))
"""


def test_the_warm_up_parses_the_library_for_every_kernels_tracebacks(tmp_path):
    """A failing test's traceback runs through the library's checks: their sources are parsed
    once in the template, not in every kernel (the script's own file still is)."""
    script = tmp_path / "probe.py"
    script.write_text(LIBRARY_TRACEBACK)
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=runner.kernel_env(),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    probe = json.loads(run.stdout.splitlines()[-1])
    assert probe["library_shown"]
    assert str(script) in probe["parsed"]  # the spy sees what a traceback parses
    assert [f for f in probe["parsed"] if "backprop" in f] == []

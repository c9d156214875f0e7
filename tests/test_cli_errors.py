"""The command line stops in one line, never a traceback: on a gradebook it cannot use (locked,
read-only, damaged), on Ctrl+C, SIGTERM or a closed terminal (cleanly: nothing left running or
half written), on a workspace that is missing or a file, and on options that cannot work (``-j
0``, ``export --to`` a file that is not CSV). export and report during an autograde say so."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import nbharness as nh
import pytest
from process_tree import descendants, described, running

from grader import course, feedback, gradebook
from grader.__main__ import main

pytestmark = pytest.mark.slow
ONE = "01-chain-rule"


@pytest.fixture(autouse=True)
def _workspace_variable_restored(monkeypatch):
    """``main`` sets the workspace variable from ``--workspace``: each test leaves it as it
    found it (a file named as the workspace would otherwise stay the workspace of the tests
    that come after, in this process)."""
    monkeypatch.setenv(course.WORKSPACE_ENV, os.environ.get(course.WORKSPACE_ENV, ""))
    if not os.environ[course.WORKSPACE_ENV]:
        monkeypatch.delenv(course.WORKSPACE_ENV)


def one_line_error(capsys, argv, code=2):
    """Run ``argv``; assert it exits with ``code`` and one line on stderr as a terminal shows
    it (a progress bar drawn over, or cleared, with carriage returns is not seen); returns that
    line."""
    assert main(argv) == code
    err = capsys.readouterr().err
    shown = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]
    lines = [line for line in shown if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """A workspace with one student's notebook collected and graded (made once, copied by
    ``workspace``)."""
    if ONE not in nh.assignments():
        pytest.skip("the course's first notebook is not in solutions/")
    folder = tmp_path_factory.mktemp("graded")
    path = folder / "class" / "alice" / ONE / "chain_rule.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nh.student_notebook(ONE), path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(course.WORKSPACE_ENV, str(folder / "workspace"))
        assert main(["collect", str(folder / "class")]) == 0
        assert main(["autograde", "-j", "1"]) == 0
    return folder / "workspace"


@pytest.fixture
def workspace(graded_class, tmp_path, monkeypatch, capsys):
    """A copy of ``graded_class``'s workspace, this test's own; a command waits 0.1 s for a
    gradebook another program holds."""
    copy = shutil.copytree(graded_class, tmp_path / "workspace")
    monkeypatch.setenv(course.WORKSPACE_ENV, str(copy))
    monkeypatch.setattr(gradebook, "LOCK_WAIT", 0.1, raising=False)
    capsys.readouterr()
    return copy


COMMANDS = [["export"], ["report"], ["autograde", "--force", "-j", "1"], ["feedback", "-j", "1"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: argv[0])
def test_a_locked_gradebook_is_named_with_what_to_do(workspace, capsys, argv):
    holder = sqlite3.connect(workspace / "gradebook.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # as a program writing to it holds it
        err = one_line_error(capsys, argv)
    finally:
        holder.close()
    assert err.startswith(f"error: {workspace / 'gradebook.db'}: the gradebook is locked"), err
    assert err.endswith("close it or let it finish, and run this command again"), err


def test_a_read_only_gradebook_is_named_before_anything_is_graded(
    workspace, capsys, monkeypatch, tmp_path
):
    """Read-only as a file without write permission is to its user (the tests may run as root,
    to whom permissions do not apply: SQLite opens it read-only instead)."""
    path = tmp_path / "new" / "bob" / ONE / "chain_rule.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nh.student_notebook(ONE), path)
    assert main(["collect", str(tmp_path / "new")]) == 0
    capsys.readouterr()
    read_only = f"sqlite:///file:{workspace / 'gradebook.db'}?mode=ro&uri=true"
    monkeypatch.setattr(course, "db_url", lambda: read_only)
    err = one_line_error(capsys, ["autograde", "-j", "1"])
    assert err == (
        f"error: {workspace / 'gradebook.db'}: the gradebook cannot be written (read-only): "
        "check the permissions of the file and of its folder"
    )


def test_a_damaged_gradebook_is_named_and_the_advice_given_rebuilds_it(workspace, capsys):
    (workspace / "gradebook.db").write_text("x\n")
    for argv in COMMANDS:
        err = one_line_error(capsys, argv)
        assert err.startswith(f"error: {workspace / 'gradebook.db'}: not a gradebook"), err
    assert "move it away and run `" in err and " autograde`, which grades every" in err
    (workspace / "gradebook.db").rename(workspace / "damaged.db")
    assert main(["autograde", "-j", "1"]) == 0  # a new gradebook holds nothing: all graded
    assert main(["export"]) == 0
    rows = (workspace / "exports" / "grades.csv").read_text().splitlines()
    assert rows[1].startswith(f"alice,{ONE},"), rows
    assert rows[1].split(",")[2] == rows[1].split(",")[3], "alice's full score is back"


# Sends a signal (SIGINT: Ctrl+C) to itself at the start of the command's work (as one early in
# it would come), then waits for it: the signal is taken either way, at a known point.
INTERRUPTED = """
import os, signal, sys, time
from grader import course, feedback, gradebook
from grader.__main__ import main

def stop(*args, **kwargs):
    os.kill(os.getpid(), getattr(signal, os.environ["STOP_WITH"]))
    time.sleep(60)

course.assignments = stop
sys.exit(main(sys.argv[1:]))
"""


def as_typed_in_a_terminal():
    """Run in a new process before its program: SIGINT, SIGTERM and SIGHUP do to it what they do
    to a command typed in a terminal. A test run started in the background or under ``nohup``
    ignores SIGINT or SIGHUP, and a program keeps ignoring what it was started ignoring."""
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


STOPPED_BY = {
    "SIGTERM": "stopped by signal SIGTERM (kill, or a shutdown)",
    "SIGHUP": "stopped by signal SIGHUP (its terminal was closed)",
}


@pytest.mark.parametrize(
    "command, how",
    [(command, "SIGINT") for command in ("collect", "autograde", "feedback")]
    + [(command, "SIGTERM") for command in ("collect", "autograde", "feedback", "export", "report")]
    + [(command, "SIGHUP") for command in ("autograde", "feedback")],
)
def test_ctrl_c_or_a_signal_early_in_a_command_stops_it_in_one_line(tmp_path, command, how):
    """Ctrl+C (SIGINT) stops a command with one line and exit code 130; SIGTERM (kill) and
    SIGHUP (its terminal closed) stop it the same way, then say which signal did, with exit
    code 128 + its number."""
    import signal

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    argv = [command, str(tmp_path)] if command == "collect" else [command]
    env = dict(os.environ, **{course.WORKSPACE_ENV: str(workspace)}, STOP_WITH=how)
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=as_typed_in_a_terminal,
    )
    said = (done.stdout + done.stderr).splitlines()
    if command == "feedback":  # feedback says so itself, at any moment (see feedback.CtrlC)
        interrupted = [feedback.INTERRUPTED]
    else:
        interrupted = [f"interrupted: {command} stopped; run it again to finish"]
    if how == "SIGINT":
        assert done.returncode == 130, done.stderr
        assert said == interrupted, said
    else:
        assert done.returncode == 128 + getattr(signal, how), done.stderr
        assert said == [*interrupted, f"{STOPPED_BY[how]}: {command} ended as on Ctrl+C"], said


@pytest.mark.parametrize("command", ["autograde", "feedback", "export", "report"])
def test_a_missing_workspace_is_named_and_not_made(tmp_path, capsys, command):
    typo = tmp_path / "typo"
    err = one_line_error(capsys, ["--workspace", str(typo), command])
    assert err.startswith(f"error: no grading workspace at {typo}: run `"), err
    assert err.endswith("collect` first, or check --workspace and $BACKPROP_GRADING_DIR"), err
    assert not typo.exists()


@pytest.mark.parametrize("argv", [["collect", "class"], ["export"], ["autograde"]])
def test_a_workspace_that_is_a_file_is_named_so(tmp_path, capsys, argv):
    file = tmp_path / "grades.txt"
    file.write_text("not a folder\n")
    err = one_line_error(capsys, ["--workspace", str(file), *argv])
    assert err == (
        f"error: {file}: a file, not a grading workspace folder: check --workspace and "
        "$BACKPROP_GRADING_DIR"
    )
    assert file.read_text() == "not a folder\n"


@pytest.mark.parametrize("jobs", ["0", "-3"])
@pytest.mark.parametrize("command", ["autograde", "feedback"])
def test_a_number_of_workers_below_one_is_refused(capsys, command, jobs):
    with pytest.raises(SystemExit) as stop:
        main([command, "-j", jobs])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument -j/--jobs: {jobs} workers cannot do the work: give 1 or more" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["grades.xlsx", ""])
def test_export_to_a_file_that_is_not_csv_is_refused(workspace, tmp_path, capsys, name):
    to = str(tmp_path / name) if name else ""
    err = one_line_error(capsys, ["export", "--to", to])
    why = f"{to}: the export is CSV, name it .csv" if name else "--to needs a file name"
    assert err.startswith(f"error: {why}"), err
    assert not (tmp_path / "grades.xlsx").exists()
    assert not (workspace / "exports").exists()


# Holds the workspace's lock as the command named in its argument does, until its input closes.
HOLD_THE_WORKSPACE = """
import sys
from grader import course

with course.workspace_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.mark.parametrize("argv", [["export"], ["report"]], ids=lambda argv: argv[0])
def test_export_and_report_during_an_autograde_say_so_and_still_write(workspace, capsys, argv):
    """export and report only read the workspace: while an autograde runs in it they do not
    wait or refuse, but say first which command runs (its process too), since what they show
    may be part-way, and write their files. They leave the lock free: the next command runs."""
    written = workspace / "exports" / ("grades.csv" if argv == ["export"] else "report.html")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_WORKSPACE, "autograde"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(argv) == 0
        said = capsys.readouterr().out.splitlines()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert said[0] == (
        f"note: an autograde is running in this workspace (pid {holder.pid}), so what this "
        f"{argv[0]} shows may change: {argv[0]} again once it is done"
    ), said
    assert written.exists()
    with course.workspace_lock("collect"):  # the holder is gone, and export left no lock
        assert main(argv) == 0
        assert capsys.readouterr().out.splitlines()[0] == said[0].replace(
            f"an autograde is running in this workspace (pid {holder.pid})",
            f"a collect is running in this workspace (pid {os.getpid()})",
        )
    assert main(argv) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if "note:" in line]


def test_a_command_waits_out_the_instant_an_export_tests_the_lock(workspace, monkeypatch):
    """export and report test the lock by taking it, shared, for an instant: an autograde (or
    collect, feedback) that starts in that instant looks again before it says another command
    is running."""
    fd = os.open(workspace / course.LOCK_FILE, os.O_RDONLY | os.O_CREAT)
    try:
        assert course._lock(fd, shared=True)  # as an export's test holds it
        # the export lets go while the autograde waits to look again
        monkeypatch.setattr(course.time, "sleep", lambda seconds: course._release(fd))
        with course.workspace_lock("autograde"):
            assert (workspace / course.LOCK_FILE).read_text() == f"{os.getpid()} autograde\n"
    finally:
        os.close(fd)


def _wait_for(ready, process, seconds=120):
    """Wait until ``ready()`` or ``process`` ended (then fail), at most ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while not ready():
        assert process.poll() is None, f"the grader ended first, exit code {process.returncode}"
        assert time.monotonic() < deadline, "the grader never got there"
        time.sleep(0.05)


class _Terminal:
    """A pseudo-terminal that is a process's controlling terminal, as a terminal window is a
    shell's; what the process writes to it is read and kept (``text``), and ``close()`` closes
    it as a terminal window is closed."""

    def __init__(self):
        import threading

        self.master, self.slave = os.openpty()
        self.text, self._closing = b"", threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def become_controlling(self):
        """Run in the new process, in a session of its own: this terminal is its controlling
        terminal, and the signals do what they do to a command typed in it."""
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        as_typed_in_a_terminal()

    def _read(self):
        import select

        while not self._closing.is_set():
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.text += os.read(self.master, 65536)
                except OSError:
                    return

    def close(self):
        self._closing.set()
        self._reader.join()
        os.close(self.master)


@pytest.fixture
def class_with_slow_notebooks(tmp_path, monkeypatch):
    """``(workspace, hold, started)``: five notebooks collected, and last (students are graded by
    name) two that each write their kernel's pid into ``started``/<student> and then run while
    the file ``hold`` is there."""
    if ONE not in nh.assignments():
        pytest.skip("the course's first notebook is not in solutions/")
    hold, started = tmp_path / "hold", tmp_path / "started"
    hold.touch()
    started.mkdir()
    for sid in ("amy", "ben", "cat", "dan", "eve", "zz-slow-1", "zz-slow-2"):
        nb = nh.student_notebook(ONE)
        if sid.startswith("zz-"):
            nb.cells.append(
                nbformat.v4.new_code_cell(
                    f"import os, time\nopen({str(started / sid)!r}, 'w').write(str(os.getpid()))\n"
                    f"while os.path.exists({str(hold)!r}):\n    time.sleep(0.1)"
                )
            )
        path = tmp_path / "class" / sid / ONE / "chain_rule.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
    workspace = tmp_path / "workspace"
    monkeypatch.setenv(course.WORKSPACE_ENV, str(workspace))
    assert main(["collect", str(tmp_path / "class")]) == 0
    return workspace, hold, started


@pytest.mark.parametrize("how", ["SIGTERM", "terminal closed"])
def test_sigterm_or_a_closed_terminal_stops_autograde_as_ctrl_c_does(
    class_with_slow_notebooks, how
):
    """``kill PID`` (SIGTERM) or closing the terminal (SIGHUP) in the middle of ``autograde -j
    2`` stops it as Ctrl+C does: the line that says how far it got, then one that names the
    signal, and exit code 128 + its number, no traceback; no worker, template or kernel is left
    running, nothing half written (no part of a file, no folder a notebook was graded in), the
    lock is let go, and the next autograde grades the rest."""
    import signal
    import tempfile

    workspace, hold, started = class_with_slow_notebooks
    slow = ["zz-slow-1", "zz-slow-2"]
    command = [sys.executable, "-m", "grader", "autograde", "-j", "2", "--cell-timeout", "300"]
    # A short temporary folder: a kernel's socket path has at most 107 characters.
    with tempfile.TemporaryDirectory(prefix="t") as temporary:
        env = os.environ | {"TMPDIR": temporary}
        terminal = _Terminal() if how == "terminal closed" else None
        if terminal:
            grading = subprocess.Popen(
                command, stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave,
                env=env, start_new_session=True, preexec_fn=terminal.become_controlling,
            )  # fmt: skip
            os.close(terminal.slave)
        else:
            grading = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                preexec_fn=as_typed_in_a_terminal,
            )  # fmt: skip
        try:
            # both workers are in the middle of a notebook, each in a kernel
            _wait_for(lambda: len(list(started.iterdir())) == 2, grading)
            kernels = {int((started / sid).read_text()) for sid in slow}
            family = descendants(grading.pid)
            assert kernels <= {p.pid for p in family}, described(running(family))
            if terminal:
                terminal.close()
                grading.wait(timeout=120)
                said = ""
            else:
                grading.send_signal(signal.SIGTERM)
                out, err = grading.communicate(timeout=120)
                said = out + err
        finally:
            if grading.poll() is None:
                grading.kill()
                grading.wait()
        signum = signal.SIGTERM if how == "SIGTERM" else signal.SIGHUP
        assert grading.returncode == 128 + signum, said or terminal.text[-3000:]
        if not terminal:
            assert "Traceback" not in said, said
            assert "interrupted: " in out and " run autograde again to grade the rest" in out, said
            assert err.splitlines()[-1] == (
                "stopped by signal SIGTERM (kill, or a shutdown): autograde ended as on Ctrl+C"
            ), said
        assert not described(running(family)), described(running(family))
        assert list(Path(temporary).iterdir()) == []  # the template's and kernels' folders
    assert not list(workspace.rglob(f"*{course.PART}")), "a file half written"
    assert not list(workspace.glob(f"autograded/*/.*{course.GRADING}")), "a folder graded in"
    results = workspace / "results" / ONE
    kept = {p.stem for p in results.glob("*.json")}
    assert not kept & set(slow)
    hold.unlink()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{7 - len(kept)} graded, {len(kept)} unchanged" in done.stdout, done.stdout
    graded = {p.stem: json.loads(p.read_text()) for p in results.glob("*.json")}
    assert sorted(graded) == ["amy", "ben", "cat", "dan", "eve", *slow]


# Waits, as a command does, until its terminal is closed; then writes more than a terminal
# takes at once, and notes in the file given whether that went through.
UNTIL_THE_TERMINAL_CLOSES = """
import sys, time
from pathlib import Path
from grader.__main__ import StopSignals

with StopSignals() as stop:
    try:
        print("waiting", flush=True)
        time.sleep(120)
    except KeyboardInterrupt:
        print("x" * 100_000, flush=True)
        print("stopped", file=sys.stderr, flush=True)
        Path(sys.argv[1]).write_text(f"written after signal {stop.signum}")
"""


def test_after_its_terminal_closes_a_command_can_still_write(tmp_path):
    """A closed terminal (SIGHUP) stops a command as Ctrl+C does, and what the command writes
    while it stops (how far it got, a progress bar) no longer fails: it goes nowhere, where
    writing to the closed terminal would raise an error in the middle of the cleanup."""
    import signal
    import time

    noted = tmp_path / "noted"
    terminal = _Terminal()
    try:
        command = subprocess.Popen(
            [sys.executable, "-c", UNTIL_THE_TERMINAL_CLOSES, str(noted)],
            stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave,
            start_new_session=True, preexec_fn=terminal.become_controlling,
        )  # fmt: skip
        os.close(terminal.slave)
        deadline = time.monotonic() + 60
        while b"waiting" not in terminal.text:
            assert command.poll() is None and time.monotonic() < deadline, terminal.text
            time.sleep(0.05)
    finally:
        terminal.close()
    assert command.wait(timeout=60) == 0
    assert noted.read_text() == f"written after signal {signal.SIGHUP}"

"""The command line stops in one line, never a traceback: on a gradebook it cannot use (locked,
read-only, damaged), on Ctrl+C, on a workspace that is missing or a file, and on options that
cannot work (``-j 0``, ``export --to`` a file that is not CSV)."""

import os
import shutil
import sqlite3
import subprocess
import sys

import nbformat
import nbharness as nh
import pytest

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


# Sends SIGINT to itself at the start of the command's work (as Ctrl+C early in it would), then
# waits for it: the signal is taken either way, at a known point.
INTERRUPTED = """
import os, signal, sys, time
from grader import course, feedback, gradebook
from grader.__main__ import main

def ctrl_c(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)

course.assignments = ctrl_c
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", ["collect", "autograde", "feedback"])
def test_ctrl_c_early_in_a_command_stops_it_in_one_line(tmp_path, command):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    argv = [command, str(tmp_path)] if command == "collect" else [command]
    env = dict(os.environ, **{course.WORKSPACE_ENV: str(workspace)})
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 130, done.stderr
    said = (done.stdout + done.stderr).splitlines()
    if command == "feedback":  # feedback says so itself, at any moment (see feedback.CtrlC)
        assert said == [feedback.INTERRUPTED], said
    else:
        assert said == [f"interrupted: {command} stopped; run it again to finish"], said


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

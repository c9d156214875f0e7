"""The grading pipeline on a tiny course built in the test: collect, autograde, feedback, export,
report, and every robustness case of the grader (time limits, dead kernels, tampered cells,
warnings, hidden tests in feedback, re-runs)."""

import copy
import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import types
import warnings
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.warnings import DuplicateCellId
from process_tree import descendants, described, running

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))

import tiny_course as tiny  # noqa: E402

from grader import autograde, course, runner  # noqa: E402
from grader.__main__ import main  # noqa: E402
from grader.master import grade_id  # noqa: E402

# One worker runs the whole module: its tests share one graded class, in order.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grader-tiny-course")]
A = tiny.ASSIGNMENT


def _crash(nb):
    nb.cells.insert(3, nbformat.v4.new_code_cell("import os\nos._exit(1)"))


def _duplicate(nb):
    i = [grade_id(c) for c in nb.cells].index("test_sigmoid")
    nb.cells.insert(i + 1, copy.deepcopy(nb.cells[i]))


def _tamper(nb):
    nb.cells = [c for c in nb.cells if grade_id(c) != "test_add"]
    for cell in nb.cells:
        if grade_id(cell) == "test_relu_backward":
            cell.source = "pass"


STUCK_ADD = """def add(a, b):
    while True:
        try:
            while True:
                pass
        except KeyboardInterrupt:
            pass"""
RAISES_ON_NEGATIVES = """def add(a, b):
    if a < 0:
        raise ValueError("a negative number")
    return a + b"""

# student: (answers, edit, score, flags, mistakes {exercise: [keys]}, warnings on)
CLASS = {
    "alice": ({}, None, 4, [], {}, []),
    "bob": (
        {"relu_backward": tiny.SIGN_FLIPPED},
        None,
        2,
        [],
        {"relu_backward": ["sign-flipped"]},
        [],
    ),
    "carol": ({"sigmoid": tiny.NAIVE_SIGMOID}, None, 4, [], {}, ["sigmoid"]),
    "dave": (
        {"add": tiny.ENDLESS_ADD},
        None,
        3,
        [["timeout", "test_add"]],
        {"add": ["timeout"]},
        [],
    ),
    "erin": ({}, _crash, 4, [["dead-kernel", "cell 4"]], {}, []),
    "frank": ({}, _duplicate, 4, [["duplicated-cell", "test_sigmoid"]], {}, []),
    "grace": (
        {},
        _tamper,
        4,
        [["restored-cell", "test_relu_backward"], ["missing-cell", "test_add"]],
        {},
        [],
    ),
    "heidi": (
        None,
        None,
        0,
        [],
        {e: ["not-implemented"] for e in ("relu_backward", "sigmoid", "add")},
        [],
    ),
    "ivy": ({"add": STUCK_ADD}, None, 3, [["timeout", "test_add"]], {"add": ["timeout"]}, []),
    # passes the visible test, fails a hidden one: its traceback quotes a hidden line
    "leo": ({"add": "def add(a, b):\n    return 5"}, None, 3, [], {"add": ["unexplained"]}, []),
    # passes the visible test; its code raises when a hidden one calls it
    "mia": ({"add": RAISES_ON_NEGATIVES}, None, 3, [], {"add": ["raised"]}, []),
}
SUBMISSIONS = len(CLASS) + 1  # and judy, from the zip (see tiny_class)


@pytest.fixture(scope="module")
def tiny_class(tmp_path_factory):
    """A graded class of the tiny course; yields (workspace, collect output lines)."""
    root = tmp_path_factory.mktemp("tiny")
    with tiny.as_the_course(root) as master:
        released = master.released_nb()
        folder = root / "class"
        for sid, (answers, edit, *_) in CLASS.items():
            path = folder / sid / A / f"{tiny.NOTEBOOK}.ipynb"
            path.parent.mkdir(parents=True)
            fill = {} if answers is None else {**tiny.CORRECT, **answers}
            with warnings.catch_warnings():
                # frank's copied cell keeps its id: nbformat gives the copy a new one, and says so
                warnings.simplefilter("ignore", DuplicateCellId)
                nbformat.write(tiny.student_nb(released, fill, edit), path)
        # An LMS-style zip: a wrapping folder, one good student, and bad input of every kind.
        zipped = root / "export.zip"
        with zipfile.ZipFile(zipped, "w") as z:
            z.write(folder / "alice" / A / "tiny.ipynb", f"export/judy/{A}/tiny (1).ipynb")
            z.writestr(f"export/kim/{A}/tiny.ipynb", "{not json")
            z.writestr(f"export/kim/{A}/notes.txt", "my notes")
            z.writestr("export/kim/99-unknown/tiny.ipynb", "{}")
            z.write(folder / "bob" / A / "tiny.ipynb", f"export/Bob/{A}/tiny.ipynb")
            z.write(folder / "bob" / A / "tiny.ipynb", f"export/bob/{A}/tiny.ipynb")
        lines = []
        yield root, lines, folder, zipped


@pytest.fixture(scope="module")
def graded(tiny_class):
    root, _, folder, zipped = tiny_class
    assert main(["collect", str(folder)]) == 0
    assert main(["collect", str(zipped)]) == 1  # some files were skipped
    code = main(["autograde", "-j", "2", "--cell-timeout", "10", "--notebook-timeout", "120"])
    assert code == 0
    return root


def result(student):
    return json.loads((course.folder("results") / A / f"{student}.json").read_text())


def test_an_interrupted_forced_run_says_to_force_again(graded, monkeypatch, capsys):
    """What --force had still to grade keeps its last result, which a plain autograde takes as
    unchanged: the advice on Ctrl+C names --force."""

    def interrupted(*args, **kwargs):
        raise autograde.GradingInterrupted(0)

    monkeypatch.setattr(autograde, "_grade_all", interrupted)
    with pytest.raises(SystemExit) as stop:
        main(["autograde", "--force", "-j", "1"])
    assert stop.value.code == 130
    assert "run autograde --force again (it grades every one again) to grade the rest" in (
        capsys.readouterr().out
    )


def test_collect_reports_each_bad_file_on_one_line(tiny_class, capsys, monkeypatch):
    root, _, folder, zipped = tiny_class
    monkeypatch.setenv(course.WORKSPACE_ENV, os.environ[course.WORKSPACE_ENV])
    main(["--workspace", str(root / "collect-only"), "collect", str(zipped)])
    err = capsys.readouterr().err.strip().splitlines()
    assert sorted(err) == sorted(
        [
            f"skipped export/kim/{A}/notes.txt: not a notebook",
            "skipped export/kim/99-unknown/tiny.ipynb: unknown assignment '99-unknown'",
            f"skipped export/Bob/{A}/tiny.ipynb: duplicate student 'Bob' for {A} "
            f"(also in export/bob/{A})",
            f"skipped export/bob/{A}/tiny.ipynb: duplicate student 'Bob' for {A} "
            f"(also in export/Bob/{A})",
            f"skipped export/kim/{A}/tiny.ipynb: not a valid notebook: JSON error at line 1, "
            "column 2 (Expecting property name enclosed in double quotes)",
        ]
    ), err
    imported = root / "collect-only" / "submitted" / "judy" / A / "tiny.ipynb"
    assert imported.exists(), "a renamed notebook is imported under the assignment's name"


def test_collect_rejects_a_missing_source(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path))
    assert main(["--workspace", str(tmp_path), "collect", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


@pytest.mark.parametrize("student", sorted(CLASS) + ["judy"])
def test_scores_flags_and_mistakes(graded, student):
    _, _, score, flags, mistakes, warned = CLASS.get(student, CLASS["alice"])
    r = result(student)
    assert sum(s or 0 for s, *_ in r["grades"].values()) == score
    assert r["flags"] == flags
    assert {e["name"]: e["mistakes"] for e in r["exercises"] if e["mistakes"]} == mistakes
    assert [e["name"] for e in r["exercises"] if e["warnings"]] == warned


def test_warning_is_feedback_not_failure(graded):
    (ex,) = [e for e in result("carol")["exercises"] if e["name"] == "sigmoid"]
    assert ex["passed"] and "RuntimeWarning: overflow encountered in exp" in ex["warnings"][0]
    page = course.folder("feedback") / "carol" / A / "tiny.html"
    main(["feedback"])
    assert "not counted as a failure" in page.read_text()


def test_stuck_kernel_is_replaced_and_the_rest_graded(graded):
    assert result("ivy")["kernels"] == 2
    assert result("dave")["kernels"] == 1


def test_dead_kernel_is_flagged_for_a_human(graded):
    rows = {r["student_id"]: r for r in export_rows()}
    assert rows["erin"]["needs_manual_grade"] == "yes"
    assert rows["alice"]["needs_manual_grade"] == "no"


def test_the_notes_name_each_flagged_cell_as_a_learner_finds_it(graded):
    """A flagged cell without a grade_id is named by its place among the code cells after the
    nearest named one (not "cell `cell 4`", a count that includes markdown cells)."""
    notes = {
        sid: nbformat.read(course.folder("autograded") / sid / A / "tiny.ipynb", 4).cells[0].source
        for sid in ("erin", "dave")
    }
    assert "- the code cell after `relu_backward` killed the kernel;" in notes["erin"]
    assert "- cell `test_add` stopped after the time limit" in notes["dave"]
    assert not any("cell `cell" in text for text in notes.values())


def test_an_unnamed_cell_is_named_by_its_place():
    from grader.worker import _notes, cell_name

    def named(gid):
        return nbformat.v4.new_code_cell("", metadata={"nbgrader": {"grade_id": gid}})

    code, text = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    cells = [text("#"), code(), text("..."), code(), named("test_Sigmoid"), text("x"), code()]
    cells += [code() for _ in range(11)]
    assert cell_name("cell 4", cells) == "the 2nd code cell from the top"
    assert cell_name("cell 7", cells) == "the code cell after `test_Sigmoid`"
    assert cell_name("cell 8", cells) == "the 2nd code cell after `test_Sigmoid`"
    assert cell_name("cell 17", cells) == "the 11th code cell after `test_Sigmoid`"
    assert cell_name("cell 18", cells) == "the 12th code cell after `test_Sigmoid`"
    assert cell_name("test_Sigmoid", cells) == "cell `test_Sigmoid`"
    assert cell_name("cell 99", cells) == "cell 99"
    flags = [("timeout", "test_Sigmoid"), ("timeout", "cell 8")]
    assert _notes(flags, [], cells=cells).source.splitlines()[2:] == [
        "- cell `test_Sigmoid` stopped after the time limit",
        "- the 2nd code cell after `test_Sigmoid` stopped after the time limit",
    ]


def export_rows():
    path = course.folder("exports") / "grades.csv"
    assert main(["export", "--to", str(path)]) == 0
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_export_columns_and_values(graded):
    rows = export_rows()
    assert list(rows[0]) == [
        "student_id", "assignment", "score", "max_score", "needs_manual_grade", "flags",
        "mistakes", "warnings", f"{A}:relu_backward", f"{A}:sigmoid", f"{A}:add",
    ]  # fmt: skip
    by = {r["student_id"]: r for r in rows}
    assert set(by) == set(CLASS) | {"judy"}
    assert by["bob"]["score"] == "2" and by["bob"][f"{A}:relu_backward"] == "0"
    assert by["bob"]["mistakes"] == "relu_backward:sign-flipped"
    assert by["grace"]["flags"] == "restored-cell(test_relu_backward); missing-cell(test_add)"
    assert by["dave"][f"{A}:add"] == "0" and by["dave"][f"{A}:sigmoid"] == "1"


def test_wide_export_has_one_row_per_student(graded):
    path = course.folder("exports") / "grades-wide.csv"
    assert main(["export", "--wide", "--to", str(path)]) == 0
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["student_id", A, "total", "max_total"]
    by = {r["student_id"]: r for r in rows}
    assert len(rows) == len(by) and set(by) == set(CLASS) | {"judy"}
    assert [by["bob"][A], by["bob"]["total"], by["bob"]["max_total"]] == ["2", "2", "4"]


def test_report_counts_match_what_was_planted(graded, capsys):
    assert main(["report"]) == 0
    shown = capsys.readouterr().out
    rows = json.loads((course.folder("exports") / "report.json").read_text())
    planted = {}
    for _, _, _, _, mistakes, _ in [*CLASS.values(), CLASS["alice"]]:
        for name, keys in mistakes.items():
            for key in keys:
                planted.setdefault(name, {}).setdefault(key, 0)
                planted[name][key] += 1
    assert {r["exercise"]: r["mistakes"] for r in rows if r["mistakes"]} == planted
    assert {r["exercise"]: r["passed"] for r in rows} == {
        "relu_backward": 10,
        "sigmoid": 11,
        "add": 7,
    }
    assert re.search(
        rf"relu_backward\s+10/{SUBMISSIONS}\s+not-implemented 1, sign-flipped 1", shown
    ), shown
    assert "<svg" in (course.folder("exports") / "report.html").read_text()


def test_feedback_never_shows_hidden_tests(graded):
    assert main(["feedback"]) == 0
    source = nbformat.read(course.SOURCE / A / "tiny.ipynb", as_version=4)
    hidden = []
    for cell in source.cells:
        part = cell.source.partition("### BEGIN HIDDEN TESTS")[2].partition("### END")[0]
        hidden += [line.strip() for line in part.splitlines() if line.strip()]
    assert len(hidden) == 5
    pages = sorted(course.folder("feedback").glob("*/*/*.html"))
    assert len(pages) == len(CLASS) + 1
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        for line in hidden:
            assert line not in text, f"{page} shows hidden test line {line!r}"
    assert (
        "(a line of a hidden test)"
        in (course.folder("feedback") / "leo" / A / "tiny.html").read_text()
    )
    # ... while the instructor's autograded copy keeps them.
    assert "x_hidden_case" in (course.folder("autograded") / "bob" / A / "tiny.ipynb").read_text()


def test_rerun_grades_only_changed_submissions(graded, capsys):
    before = {s: result(s) for s in CLASS}
    assert main(["autograde", "-j", "2", "--cell-timeout", "10", "--notebook-timeout", "120"]) == 0
    assert f"0 graded, {SUBMISSIONS} unchanged" in capsys.readouterr().out
    # bob fixes his answer and resubmits
    path = course.folder("submitted") / "bob" / A / "tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if grade_id(cell) == "relu_backward":
            cell.source = tiny.CORRECT["relu_backward"]
    nbformat.write(nb, path)
    assert main(["autograde", "-j", "2", "--cell-timeout", "10", "--notebook-timeout", "120"]) == 0
    assert f"1 graded, {SUBMISSIONS - 1} unchanged" in capsys.readouterr().out
    assert sum(s for s, *_ in result("bob")["grades"].values()) == 4
    for s in CLASS:
        if s != "bob":
            assert result(s) == before[s]


def test_a_grader_error_is_graded_again_though_an_older_result_is_current(graded, capsys):
    """A run that failed on a submission (a grader error) leaves its ``.error`` beside an older
    result whose key is still current: the next run grades it again and clears the error."""
    error = autograde.failure_path(A, "bob")
    error.write_text("RuntimeError: as a failed run leaves it\n")
    assert main(["autograde", "-j", "1", "--cell-timeout", "10", "--notebook-timeout", "120"]) == 0
    assert f"1 graded, {SUBMISSIONS - 1} unchanged" in capsys.readouterr().out
    assert not error.exists()


def test_a_run_whose_every_submission_failed_says_so():
    text = autograde.summary([A], [], 0, failed=2)
    assert text == "nothing graded\n0 graded, 0 unchanged, 2 failed (grader errors above)"
    assert autograde.summary([A], [], 3).endswith("nothing new to grade\n0 graded, 3 unchanged")


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["autograde", "--cell-timeout", "0"], "0 is not a positive number of seconds"),
        (["autograde", "--notebook-timeout", "-5"], "-5 is not a positive number of seconds"),
        (["autograde", "--cell-timeout", "inf"], "inf is not a positive number of seconds"),
        (["autograde", "--cell-timeout", "ten"], "'ten' is not a number of seconds"),
        (["--workspace", "", "autograde"], "an empty name is no folder"),
    ],
)
def test_a_time_limit_or_workspace_that_makes_no_sense_is_refused(capsys, args, why):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().endswith(why)


def test_a_time_limit_in_fractions_of_a_second_is_taken(tmp_path):
    """nbclient keeps its fallback time limit in whole seconds; the grader's own, per cell, is
    the one given."""
    limits = runner.Limits(cell=2.5)
    client = runner._client(nbformat.v4.new_notebook(), tmp_path, limits, deadline=1e12)
    assert client.timeout == 3
    assert client.timeout_func(None) == 2.5


def test_a_pool_has_no_more_workers_than_notebooks(graded, monkeypatch):
    asked = []

    class Stop(Exception):
        pass

    def pool(jobs_n):
        asked.append(jobs_n)
        raise Stop

    monkeypatch.setattr(autograde, "_Pool", pool)
    with pytest.raises(Stop):
        autograde.autograde([A], jobs_n=500, force=True)
    assert asked == [len(list(course.folder("submitted").glob(f"*/{A}/*.ipynb")))]


def test_an_assignment_named_twice_is_graded_once(graded):
    assert course.known([A, A]) == [A]


def test_runner_notebook_time_limit(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(0.3)") for _ in range(3)]
    nb.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(30)"))
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    log = runner.run(nb, tmp_path, runner.Limits(cell=60, notebook=6))
    assert log.events == {3: runner.TIMEOUT, 4: runner.NOT_RUN}
    assert [o.ename for o in nb.cells[4].outputs] == ["NotRun"]
    assert not any(c.outputs for c in nb.cells[:3])


def test_exit_blames_its_own_cell_not_the_next(tmp_path):
    """exit() ends the kernel once its cell has run: that cell is the one marked and left out
    when the notebook runs again, not the innocent cell after it."""
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(src) for src in ("x = 1", "exit()", "y = x + 1\ny")]
    )
    log = runner.run(nb, tmp_path)
    assert log.events == {1: runner.CRASHED}
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "2"


KILL_THE_TEMPLATE = (
    "import os, signal, psutil\n"
    "parent = psutil.Process(os.getppid())\n"
    "if 'forkserver' in ' '.join(parent.cmdline()):\n"
    "    parent.kill()  # the template; a kernel started the usual way leaves its parent be\n"
    "    import time; time.sleep(30)"
)


def _dead_template_found_first_by_a_spare(monkeypatch):
    """The kernel for the next notebook, started while this one runs, asks the template for
    its fork only once the template died (another notebook killed it): the request fails, and
    the template is known gone before this notebook's kernel is."""
    import asyncio
    import time

    import psutil

    template = psutil.Process(runner._KERNELS.template.process.pid)
    real_start_spare = runner._Kernels.start_spare

    def template_alive():
        try:
            return template.status() != psutil.STATUS_ZOMBIE  # not yet waited for
        except psutil.NoSuchProcess:
            return False

    async def start_spare_once_the_template_is_dead(kernels):
        deadline = time.monotonic() + 60
        while template_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await real_start_spare(kernels)

    monkeypatch.setattr(runner._Kernels, "start_spare", start_spare_once_the_template_is_dead)


def _death_seen_as_silence(monkeypatch):
    """nbclient may see a kernel's death as output that never came (``TimeoutError``), when the
    kernel died between its reply and its last output."""
    from nbclient.exceptions import DeadKernelError

    from grader.outputs import CappedClient

    real_execute = CappedClient.async_execute_cell

    async def execute(self, cell, *args, **kwargs):
        try:
            return await real_execute(self, cell, *args, **kwargs)
        except DeadKernelError:
            raise TimeoutError("Timeout waiting for output") from None

    monkeypatch.setattr(CappedClient, "async_execute_cell", execute)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernels forked from a template")
@pytest.mark.parametrize(
    "how", [None, _dead_template_found_first_by_a_spare, _death_seen_as_silence]
)
def test_a_kernel_lost_with_its_template_blames_no_cell(tmp_path, monkeypatch, how):
    """Kernels end with the template they were forked from (a notebook may kill it, or it may
    crash): the notebooks then running are run again from the start, with no cell blamed,
    whichever the grader notices first, and however the kernel's end shows."""
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(src) for src in ("x = 1", KILL_THE_TEMPLATE, "x")]
    )
    try:
        runner.prepare(template=True)
        if how is not None:
            how(monkeypatch)
        log = runner.run(nb, tmp_path, runner.Limits(cell=60), next_kernel=how is not None)
    finally:
        runner.close()
    assert log.events == {} and log.kernels == 2
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "1"


def test_a_kernel_that_answers_late_is_connected_at_its_first_answer():
    """A kernel started the usual way can take over a second to answer: the answer to an
    earlier round's request, coming late, proves it ready (waiting for the latest round's
    only, the connection stayed one answer behind until its deadline)."""
    import asyncio
    from queue import Empty

    class Kernel:
        def __init__(self):
            self.requests = []
            self.shell_channel, self.iopub_channel = self, self
            self.allow_stdin = True

        def client(self):
            return self

        def start_channels(self):
            pass

        stop_channels = start_channels

        def kernel_info(self):
            self.requests.append(f"request-{len(self.requests)}")
            return self.requests[-1]

        async def get_msg(self, timeout):
            if len(self.requests) < 2:
                raise Empty  # still starting
            return {"parent_header": {"msg_id": self.requests[-2]}}  # a round late

        async def is_alive(self):
            return True

    kernel = Kernel()
    assert asyncio.run(runner._connect(kernel, timeout=5)) is kernel
    assert len(kernel.requests) == 2 and kernel.allow_stdin is False


@pytest.mark.skipif(os.name != "posix", reason="Unix sockets")
def test_kernels_listen_on_sockets_of_their_own_not_on_tcp_ports(tmp_path):
    """A TCP port picked as free can be taken by another process before the kernel binds it (the
    kernel then dies); a socket path of the kernel's own cannot. Nothing lands beside the
    notebook."""
    code = (
        "from ipykernel.connect import get_connection_info\n"
        "info = get_connection_info(unpack=True)\n"
        "print(info['transport'], info['ip'])"
    )
    ips = []
    for _ in range(2):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        runner.run(nb, tmp_path, next_kernel=True)
        transport, ip = nb.cells[0].outputs[0].text.split()
        assert transport == "ipc"
        assert Path(ip).is_absolute() and tmp_path not in Path(ip).parents
        ips.append(ip)
    assert ips[0] != ips[1]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="Unix sockets")
def test_socket_paths_too_long_for_the_system_fall_back_to_tcp():
    short = runner.own_sockets("/k")
    assert short["transport"] == "ipc" and short["ip"].startswith("/k/")
    assert runner.own_sockets("/k") != short
    assert runner.own_sockets("/" + "x" * 100) == {}


GRADE_IN_A_SUBPROCESS = """
import sys
from pathlib import Path
from grader import course
from grader.__main__ import main

course.SOURCE = Path(sys.argv[1])
sys.exit(main(["--workspace", sys.argv[2], "autograde", "-j", "2", "--cell-timeout", "60"]))
"""


@pytest.fixture
def grading_run(tiny_class, tmp_path, monkeypatch):
    """``(command, env, temporary)``: ``autograde -j 2`` of the collected tiny class in a new
    Python process, with a temporary folder of its own, whose path is short (a socket's path
    has at most 107 characters, and pytest's ``tmp_path`` can be long)."""
    _, _, folder, _ = tiny_class
    monkeypatch.setenv(course.WORKSPACE_ENV, os.environ[course.WORKSPACE_ENV])  # restored after
    workspace = tmp_path / "workspace"
    assert main(["--workspace", str(workspace), "collect", str(folder)]) == 0
    command = [sys.executable, "-c", GRADE_IN_A_SUBPROCESS, str(course.SOURCE), str(workspace)]
    with tempfile.TemporaryDirectory(prefix="t") as temporary:
        yield command, os.environ | {"TMPDIR": temporary}, Path(temporary)


def test_a_killed_grader_leaves_no_process_behind(grading_run):
    """Workers, the kernel template and every kernel end with the grader, even on SIGKILL; the
    template's socket goes with it."""
    import time

    command, env, temporary = grading_run
    log = temporary / "grader.log"
    with open(log, "wb") as output:
        grading = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        # Two workers and the template are children, kernels the template's children: four
        # processes at least once a kernel runs. (Not "a child has children": the template
        # runs a short-lived `uname -p` while it imports, which a loaded machine lets be seen.)
        everyone = running(descendants(grading.pid))
        while time.monotonic() < deadline and len(everyone) < 4 and grading.poll() is None:
            time.sleep(0.1)
            everyone = running(descendants(grading.pid))
        assert len(everyone) >= 4, (
            "the grader never got as far as running kernels: "
            f"{described(everyone)}, exit code {grading.poll()}, output:\n"
            f"{log.read_text()[-3000:]}"
        )
        grading.kill()
        grading.wait()
        deadline = time.monotonic() + 15
        while running(everyone) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running(everyone), described(running(everyone))
        assert not list(temporary.glob("grader-template-*"))
    finally:
        if grading.poll() is None:
            grading.kill()


RUN_AS_A_WORKER = """
import os
from pathlib import Path
import nbformat
from grader import runner
runner.prepare()  # as a grading worker does: kernels forked from a template
nb = nbformat.v4.new_notebook()
nb.cells = [nbformat.v4.new_code_cell(
    "import os, time\\n"
    "open('pid.tmp', 'w').write(str(os.getpid()))\\n"
    "os.replace('pid.tmp', 'kernel.pid')\\n"
    "time.sleep(60)"
)]
runner.run(nb, Path.cwd(), runner.Limits(cell=120, notebook=120))
"""


def test_a_worker_ends_on_sigterm_in_the_middle_of_a_notebook(tmp_path):
    """nbclient catches SIGTERM while it runs a notebook, and goes on; a grading worker ends on
    it, as the worker pool that sends it expects, and the notebook's kernel ends with it."""
    import signal
    import time

    kernel_pid = tmp_path / "kernel.pid"
    with tempfile.TemporaryDirectory(prefix="t") as temporary:
        worker = subprocess.Popen(
            [sys.executable, "-c", RUN_AS_A_WORKER],
            cwd=tmp_path,
            env=os.environ | {"TMPDIR": temporary},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not kernel_pid.exists() and worker.poll() is None:
                assert time.monotonic() < deadline, "the notebook never started"
                time.sleep(0.05)
            assert kernel_pid.exists(), worker.communicate()[0][-3000:]
            kernel = descendants(worker.pid)
            kernel = [p for p in kernel if p.pid == int(kernel_pid.read_text())]
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        assert worker.returncode == -signal.SIGTERM, worker.stdout.read()[-3000:]
        deadline = time.monotonic() + 15
        while running(kernel) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert kernel and not running(kernel), described(kernel)


def test_a_grading_run_leaves_nothing_in_the_temporary_folder(grading_run):
    """The workers' kernel folders (spare kernels, sockets) and the template's go when the
    run ends; a worker is a multiprocessing child, which ends without running atexit hooks."""
    command, env, temporary = grading_run
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "graded" in done.stdout
    assert list(temporary.iterdir()) == []


def test_ctrl_c_stops_grading_cleanly_and_the_next_run_grades_the_rest(grading_run):
    """Ctrl+C reaches the grader's whole process group, as from a terminal. The grader stops
    within seconds with one line and code 130, no traceback; its workers, template and kernels
    are gone and nothing is left in the temporary folder; the results recorded before stay,
    the notebooks that were running are not recorded (no false dead-kernel), nor is what was
    left of the folders they were graded in, and the next run grades those."""
    import signal
    import time

    command, env, temporary = grading_run
    workspace = Path(command[-1])
    submitted = next(workspace.glob(f"submitted/alice/{A}/*.ipynb"))
    shutil.rmtree(workspace / "submitted" / "dave")  # an endless loop: 60 s in each run
    slow = [f"zz-slow-{k}" for k in range(4)]  # graded last (students are graded by name)
    for sid in slow:
        nb = nbformat.read(submitted, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(3)"))
        (workspace / "submitted" / sid / A).mkdir(parents=True)
        nbformat.write(nb, workspace / "submitted" / sid / A / submitted.name)
    results = workspace / "results" / A
    grading = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(results.glob("*.json")):
            time.sleep(0.05)
        everyone = descendants(grading.pid)
        os.killpg(grading.pid, signal.SIGINT)
        out, err = grading.communicate(timeout=30)
    finally:
        if grading.poll() is None:
            os.killpg(grading.pid, signal.SIGKILL)
    assert grading.returncode == 130, err[-3000:]
    assert "interrupted:" in out and "Traceback" not in err, err[-3000:]
    assert not running(everyone), described(running(everyone))
    assert list(temporary.iterdir()) == []
    assert not list(workspace.glob("autograded/*/.*.grading")), "folders graded in"
    recorded = {path.stem for path in results.glob("*.json")}
    assert recorded and not recorded & set(slow)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for sid in slow:
        again = json.loads((results / f"{sid}.json").read_text())
        assert ["dead-kernel", "cell 5"] not in again["flags"]
        assert sum(s or 0 for s, *_ in again["grades"].values()) == CLASS["alice"][2]


def test_one_autograde_at_a_time_in_a_workspace_and_a_killed_one_leaves_no_lock(
    grading_run, tmp_path, capsys
):
    """A second autograde (or a collect, or a feedback) while one runs stops at once with one
    line and code 2, and leaves nothing behind: two runs at once grade the same notebooks in the
    same folders, and one's grader errors would stay for a notebook the other graded. The lock
    goes with the process: once the run is killed, the workspace is free."""
    import signal
    import time

    command, env, _ = grading_run
    workspace = Path(command[-1])
    for sid in ("dave", "ivy"):  # endless loops: a minute each
        shutil.rmtree(workspace / "submitted" / sid)
    hold, started = tmp_path / "hold", tmp_path / "started"
    hold.touch()
    submitted = next(workspace.glob(f"submitted/alice/{A}/*.ipynb"))
    folder = tmp_path / "class"  # a collect of alice's again
    (folder / "alice" / A).mkdir(parents=True)
    shutil.copy(submitted, folder / "alice" / A)
    nb = nbformat.read(submitted, as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            f"import os, time\nopen({str(started)!r}, 'w').close()\n"
            f"while os.path.exists({str(hold)!r}):\n    time.sleep(0.1)"
        )
    )
    (workspace / "submitted" / "zz-slow" / A).mkdir(parents=True)
    nbformat.write(nb, workspace / "submitted" / "zz-slow" / A / submitted.name)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), first.communicate()[1][-3000:]
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        busy = (
            f"error: another autograde is running in this workspace (pid {first.pid}); "
            "wait for it to finish\n"
        )
        assert (second.returncode, second.stderr) == (2, busy), second.stderr[-3000:]
        capsys.readouterr()
        assert main(["--workspace", str(workspace), "collect", str(folder)]) == 2
        assert capsys.readouterr().err == busy
        # feedback reads the graded notebooks the run replaces
        assert main(["--workspace", str(workspace), "feedback"]) == 2
        assert capsys.readouterr().err == busy
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert main(["--workspace", str(workspace), "collect", str(folder)]) == 0
    hold.unlink()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list((workspace / "results").glob("*/*.error"))


def _collected_with_a_worker_killer(
    tiny_class, tmp_path, monkeypatch, run, pools, slow=("dave",), threads=None
):
    """The tiny class collected into a workspace of this test's own, less the ``slow`` students
    (endless loops), to be graded with ``run`` in place of ``runner.run`` (the workers are forked
    with it), each new pool's size added to ``pools``, and to ``threads`` the names of the
    threads of this process that were running as it was made (less those running now: the
    workers are forked then, and a fork copies no thread but the one that forks, whatever lock
    the others held); returns the workspace."""
    real_pool = autograde._Pool.__init__
    before = set(threading.enumerate())

    def pool(self, jobs_n):
        pools.append(jobs_n)
        if threads is not None:
            threads.append(sorted(t.name for t in set(threading.enumerate()) - before))
        real_pool(self, jobs_n)

    monkeypatch.setattr(autograde._Pool, "__init__", pool)
    monkeypatch.setattr(runner, "run", run)
    _, _, folder, _ = tiny_class
    workspace = tmp_path / "workspace"
    monkeypatch.setenv(course.WORKSPACE_ENV, str(workspace))
    assert main(["collect", str(folder)]) == 0
    for sid in slow:
        shutil.rmtree(workspace / "submitted" / sid)
    return workspace


def test_a_notebook_that_ends_its_worker_costs_only_its_own_grade(
    tiny_class, tmp_path, monkeypatch, capsys
):
    """A notebook that kills the process grading it breaks the worker pool, and every job in
    it is lost: those are graded again, and only the notebook that does it again is blamed.
    The pool's other workers are ended at once, even one that lives on after the pool's
    SIGTERM (from Python 3.12 the pool would wait for it for ever), and no worker leaves a
    kernel folder behind."""
    import signal
    import time

    real_run = runner.run
    pools = []  # as the workers see it: they are forked while their pool is made
    sleeping, slept = tmp_path / "sleeping", tmp_path / "slept"

    def run(nb, cwd, *args, **kwargs):
        student, first_pool = Path(cwd).parent.name, len(pools) == 1
        if student == "bob":
            deadline = time.monotonic() + 60
            while first_pool and not sleeping.exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # until the other worker is in alice's notebook
            os._exit(1)  # as a notebook that kills the process running it
        if student == "alice" and first_pool:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            sleeping.touch()
            time.sleep(30)  # the pool breaks meanwhile
            slept.touch()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return real_run(nb, cwd, *args, **kwargs)

    workspace = _collected_with_a_worker_killer(tiny_class, tmp_path, monkeypatch, run, pools)
    # a temporary folder of this test's own, with a path short enough for a socket's
    with tempfile.TemporaryDirectory(prefix="t") as temporary:
        monkeypatch.setattr(tempfile, "tempdir", temporary)
        code = main(["autograde", "-j", "2", "--cell-timeout", "10"])
        left = sorted(path.name for path in Path(temporary).iterdir())
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"grader error on bob/{A}: {autograde.LOST}" in out
    graded = {path.stem for path in (workspace / "results" / A).glob("*.json")}
    assert graded == set(CLASS) - {"bob", "dave"}
    assert sleeping.exists() and not slept.exists(), "the pool waited for a worker it had ended"
    assert left == [], left


def test_a_notebook_known_to_end_its_worker_costs_the_others_nothing_on_later_runs(
    tiny_class, tmp_path, monkeypatch, capsys
):
    """The pass that finds the notebook to blame says so readably, with a progress bar. On
    later runs, that notebook unchanged is not graded again (named as a grader error still), so
    that it loses nothing queued with it; with --force it is graded in a pool of its own."""
    real_run = runner.run
    pools, threads = [], []

    def run(nb, cwd, *args, **kwargs):
        if Path(cwd).parent.name == "bob":
            os._exit(1)  # as a notebook that kills the process running it
        return real_run(nb, cwd, *args, **kwargs)

    workspace = _collected_with_a_worker_killer(
        tiny_class, tmp_path, monkeypatch, run, pools, slow=("dave", "ivy"), threads=threads
    )
    others = set(CLASS) - {"bob", "dave", "ivy"}
    args = ["autograde", "-j", "2", "--cell-timeout", "10"]
    with tempfile.TemporaryDirectory(prefix="t") as temporary:  # a short path for sockets
        monkeypatch.setattr(tempfile, "tempdir", temporary)
        capsys.readouterr()
        assert main(args) == 1
        out, err = capsys.readouterr()
        lost = re.search(
            r"^a notebook ended the process grading it: grading again the (\d+) notebook\(s\) "
            r"lost with that process's pool, in smaller pools if it happens again, to find the "
            r"one that does it$",
            out,
            re.M,
        )
        assert lost, out
        assert re.search(rf"again: 100%\|[^|]*\| {lost[1]}/{lost[1]} ", err), err[-2000:]
        # Python 3.12+ warns of the deadlocks a fork with other threads running can cause
        assert threads and not any(threads), threads
        assert f"grader error on bob/{A}: {autograde.LOST}" in out
        results = workspace / "results" / A
        assert {path.stem for path in results.glob("*.json")} == others

        # alice hands in again: graded with the others, and bob's notebook is not
        path = workspace / "submitted" / "alice" / A / "tiny.ipynb"
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
        nbformat.write(nb, path)
        del pools[:]
        assert main(args) == 1
        out = capsys.readouterr().out
        assert pools == [2], out
        assert f"grader error on bob/{A}: {autograde.STILL_LOST}" in out
        assert f"1 graded, {len(others) - 1} unchanged, 1 failed" in out
        assert "a notebook ended" not in out

        del pools[:]
        assert main([*args, "--force"]) == 1
        out = capsys.readouterr().out
        assert pools == [2, 1], out
        assert f"bob/{A} ended the process grading it when last graded: graded in a pool" in out
        assert f"grader error on bob/{A}: {autograde.LOST}" in out
        assert f"{len(others)} graded, 0 unchanged, 1 failed" in out
        assert "a notebook ended" not in out
        assert not list(Path(temporary).iterdir())


def test_without_a_template_workers_are_spawned_and_grade_the_same(graded, tmp_path, monkeypatch):
    """Where kernels cannot be forked (not Linux), workers are spawned and kernels started the
    usual way: the grades are the same."""
    import multiprocessing

    from grader import autograde, forkserver

    real_init = forkserver.Template.__init__

    def no_template(self, env=None):
        real_init(self, env)
        self.close()  # as on a system without fork: no process, no address
        self.process = self.address = None

    monkeypatch.setenv(course.WORKSPACE_ENV, str(graded / "workspace"))  # restored after
    before = {sid: result(sid) for sid in ("alice", "bob", "ivy")}
    contexts = []
    real_context = multiprocessing.get_context
    monkeypatch.setattr(forkserver.Template, "__init__", no_template)
    monkeypatch.setattr(
        autograde.multiprocessing,
        "get_context",
        lambda method=None: (contexts.append(method), real_context(method))[1],
    )
    folder = tmp_path / "class"
    for sid in ("alice", "bob", "ivy"):
        source = course.folder("submitted") / sid / A
        (folder / sid / A).mkdir(parents=True)
        (folder / sid / A / "tiny.ipynb").write_bytes((source / "tiny.ipynb").read_bytes())
    workspace = str(tmp_path / "workspace")
    assert main(["--workspace", workspace, "collect", str(folder)]) == 0
    assert main(["--workspace", workspace, "autograde", "-j", "2", "--cell-timeout", "10"]) == 0
    assert contexts == ["spawn"]
    for sid in ("alice", "bob", "ivy"):
        mine = json.loads(Path(workspace, "results", A, f"{sid}.json").read_text())
        assert mine["grades"] == before[sid]["grades"]
        assert mine["flags"] == before[sid]["flags"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux only")
def test_workers_are_forked_with_the_parents_imports_frozen():
    """Workers start with what they import already imported, and frozen (their garbage
    collections leave it shared); the grader's own collector is back to normal after."""
    import gc

    from grader import autograde

    pool = autograde._Pool(1)
    try:
        assert "grader.worker" in sys.modules
        assert pool.executor.submit(gc.get_freeze_count).result(timeout=60) > 1000
        assert gc.get_freeze_count() == 0
    finally:
        pool.close()


def test_the_template_starts_before_the_graders_heavy_imports():
    """``autograde`` starts its template process (1 s of imports) first: what it imports up to
    then is only the standard library and the grader's light modules."""
    code = (
        "import sys\n"
        "import grader.__main__, grader.autograde, grader.forkserver, grader.runner\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = {"nbformat", "nbclient", "jupyter_client", "nbgrader", "zmq", "numpy"}
    assert heavy.isdisjoint(out.stdout.split())


FORKED_WORKER = """
import sys
from grader import autograde

pool = autograde._Pool(1)  # its worker is forked from this process, now
pool.close()
print(" ".join(sorted(sys.modules)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux")
def test_workers_are_forked_with_the_kernel_machinery_loaded():
    """What a worker's first kernel start needs (nbclient, jupyter_client's kernel manager and
    kernel specs) is loaded once, in the grader, before its workers are forked from it."""
    out = subprocess.run(
        [sys.executable, "-c", FORKED_WORKER], capture_output=True, text=True, check=True
    )
    loaded = set(out.stdout.split())
    assert {"nbclient", "jupyter_client.manager", "jupyter_client.kernelspec"} <= loaded


LOOP_AFTER_A_FORK = """
import asyncio, gc, multiprocessing
from grader import runner

runner._KERNELS._folder()  # as after a notebook ran in this process
runner._KERNELS.run_until_complete(asyncio.to_thread(int))
child = multiprocessing.get_context("fork").Process(target=gc.collect)
child.start()
child.join()
loop = runner._KERNELS.loop
loop.call_later(20, loop.stop)  # a loop that no thread can wake any more stops here
print(runner._KERNELS.run_until_complete(asyncio.to_thread(int, "7")))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux")
def test_a_forked_child_leaves_the_parents_event_loop_working():
    """A child forked from a process that ran notebooks (a feedback renderer forked from a test
    process, say) does not close that process's event loop as it collects its garbage: the
    loop still hears a thread's result, such as the template's reply to a kernel fork."""
    out = subprocess.run(
        [sys.executable, "-c", LOOP_AFTER_A_FORK], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["7"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority: Linux")
def test_results_are_recorded_at_low_priority(monkeypatch):
    """The gradebook learns every result in a thread of lower priority than the template and
    the notebooks (the cells are recorded before any notebook is graded); the grader's own
    thread keeps its priority."""
    import contextlib
    import threading
    from concurrent.futures import Future

    from grader import autograde

    class FinishedPool:
        cells_recorded = threading.Event()

        class executor:  # noqa: N801 (stands in for a _Pool's attribute)
            def submit(fn, job):
                future = Future()
                future.set_result({"student": job["student"], "assignment": job["assignment"]})
                return future

    def priority():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen = []
    monkeypatch.setattr(autograde.gradebook, "open_gradebook", contextlib.nullcontext)

    def save(gb, result, job):
        seen.append(("save", job["student"], priority()))

    monkeypatch.setattr(autograde, "_save", save)
    base = priority()
    todo = [{"student": sid, "assignment": "a1"} for sid in ("s1", "s2")]
    graded = autograde._grade_all(FinishedPool(), todo, 1, progress=False)
    low = min(base + 10, 19)
    assert sorted(seen) == [("save", "s1", low), ("save", "s2", low)]
    assert len(graded.results) == 2 and graded.failures == []
    assert priority() == base


def test_a_result_written_when_the_disk_is_full_leaves_the_last_one_whole(tmp_path, monkeypatch):
    """A result that cannot be written whole (a full disk, a killed grader) leaves the last one
    as it was, which the next run and the export read: a result cut short stopped every later
    autograde and export with a JSON error."""
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    notebook = course.folder("submitted") / "ann" / "a1" / "nb.ipynb"
    notebook.parent.mkdir(parents=True)
    notebook.write_text("{}")
    course.stamp(notebook.parent)
    monkeypatch.setattr(autograde.gradebook, "record", lambda *args: ([], []))
    job = {"submitted": str(notebook), "key": "k"}
    gb = types.SimpleNamespace(db=types.SimpleNamespace(commit=lambda: None))

    def save(score):
        result = {"student": "ann", "assignment": "a1", "grades": {"t": [score, 1]}, "flags": []}
        autograde._save(gb, result, job)

    save(1.0)

    def full(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(course.os, "replace", full)
    with pytest.raises(OSError):
        save(0.0)
    assert autograde.load_result("a1", "ann")["grades"] == {"t": [1.0, 1]}
    assert [p.name for p in autograde.result_path("a1", "ann").parent.iterdir()] == ["ann.json"]


def test_a_result_cut_short_is_graded_again_not_a_json_error(tmp_path, monkeypatch):
    """A result file cut short (by a grader killed while writing it) is no result: the export
    and the report leave it out, and autograde plans the submission to be graded again."""
    from grader import classresults

    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    path = autograde.result_path("a1", "ann")
    path.parent.mkdir(parents=True)
    path.write_text('{\n "assignment": "a1",\n "exercis')
    assert autograde.load_result("a1", "ann") is None
    assert classresults.results("a1") == {}

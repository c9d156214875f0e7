"""Feedback and the instructor's error messages, on the tiny course: submissions that try to get
hidden tests into their feedback, a submission nbgrader cannot render, and commands run with
bad input or in the wrong order (one line on stderr, no traceback, a non-zero exit code)."""

import html
import json
import os
import pathlib
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))

import tiny_course as tiny  # noqa: E402

from grader import course, feedback, progress, scrub  # noqa: E402
from grader.__main__ import main  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grader-feedback")]
A = tiny.ASSIGNMENT


def _last_cell(source):
    def edit(nb):
        nb.cells.append(nbformat.v4.new_code_cell(source))

    return edit


def _hidden_markdown(nb):
    nb.cells.append(
        nbformat.v4.new_markdown_cell("### BEGIN HIDDEN TESTS\nmy own notes\n### END HIDDEN TESTS")
    )


# student: what their submission adds to a correct one
CLASS = {
    "alice": None,
    # every executed cell's source, hidden tests included, as one output line
    "mallory": _last_cell("print(In)"),
    # a file in the working directory with the same
    "nina": _last_cell('open("my_notes.txt", "w").write("\\n".join(In))'),
    # a markdown cell that nbgrader refuses to render
    "oscar": _hidden_markdown,
    # the grading machine's folders: printed, and in a traceback through the course library
    "pablo": _last_cell(
        "import backprop, numpy as np\n"
        "print(backprop.__file__, np.__file__)\n"
        "backprop.gradcheck.check_gradient('dx', np.ones(2), -np.ones(2))"
    ),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The tiny class collected and graded in a workspace of its own."""
    root = tmp_path_factory.mktemp("feedback")
    with tiny.as_the_course(root) as master:
        released = master.released_nb()
        for sid, edit in CLASS.items():
            path = root / "class" / sid / A / f"{tiny.NOTEBOOK}.ipynb"
            path.parent.mkdir(parents=True)
            nbformat.write(tiny.student_nb(released, tiny.CORRECT, edit), path)
        assert main(["collect", str(root / "class")]) == 0
        assert (
            main(["autograde", "-j", "1", "--cell-timeout", "10", "--notebook-timeout", "60"]) == 0
        )
        yield root


def hidden_lines():
    source = nbformat.read(course.SOURCE / A / f"{tiny.NOTEBOOK}.ipynb", as_version=4)
    lines = []
    for cell in source.cells:
        part = cell.source.partition("### BEGIN HIDDEN TESTS")[2].partition("### END")[0]
        lines += [line.strip() for line in part.splitlines() if line.strip()]
    assert len(lines) == 5
    return lines


@pytest.fixture(scope="module")
def feedback_run(graded):
    """``feedback`` run once on the class: (exit code, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["feedback"])
    return code, out.getvalue(), err.getvalue()


def test_a_page_that_cannot_be_rendered_names_its_student_and_the_others_get_theirs(
    feedback_run,
):
    code, out, err = feedback_run
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "oscar" in lines[0] and "Traceback" not in err, err
    assert "4 feedback page(s) written" in out and "older" not in out, out
    pages = sorted(p.parent.parent.name for p in course.folder("feedback").glob(f"*/{A}/*.html"))
    assert pages == ["alice", "mallory", "nina", "pablo"]


def test_pages_left_from_an_earlier_run_are_not_counted_as_written(
    feedback_run, capsys, monkeypatch
):
    monkeypatch.setattr(
        feedback,
        "render",
        lambda aid, students, bar, stop=None: [f"no feedback for {aid}: disk full"],
    )
    assert main(["feedback"]) == 1
    out = capsys.readouterr().out
    assert "0 feedback page(s) written" in out
    assert "; 4 older one(s) there were left as they were" in out


def test_printed_cell_sources_show_no_hidden_test(feedback_run):
    page = course.folder("feedback") / "mallory" / A / "tiny.html"
    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
    assert "print(In)" in text
    for line in hidden_lines():
        assert line not in text, f"{page} shows hidden test line {line!r}"
    assert scrub.PLACEHOLDER.strip() in text


def test_a_page_names_its_test_cells_and_wraps_long_output_lines(feedback_run):
    page = (course.folder("feedback") / "pablo" / A / "tiny.html").read_text()
    toc = page.partition('<div id="toc">')[2].partition("</div>")[0]
    names = re.findall(r'<a href="#([^"]+)">([^<]+)</a>', toc)
    assert names and all(href == text for href, text in names), names
    assert "Test cell" not in toc
    assert feedback.WRAP_OUTPUT_LINES in page.partition("</head>")[0]


def test_feedback_holds_the_pages_and_nothing_a_submission_wrote(feedback_run):
    assert (
        "x_hidden_case" in (course.folder("autograded") / "nina" / A / "my_notes.txt").read_text()
    )
    files = sorted(
        str(p.relative_to(course.folder("feedback")))
        for p in course.folder("feedback").rglob("*")
        if p.is_file()
    )
    assert files == [f"{sid}/{A}/tiny.html" for sid in ("alice", "mallory", "nina", "pablo")]


def test_feedback_shows_no_folder_of_the_grading_machine(feedback_run):
    page = course.folder("feedback") / "pablo" / A / "tiny.html"
    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
    assert "lib/backprop/__init__.py" in text and "[mistake: sign-flipped]" in text
    assert "lib/backprop/gradcheck.py" in text, "the traceback names the library's file"
    for folder in (course.REPO, Path(sys.prefix), Path.home(), course.workspace()):
        assert f"{folder}{os.sep}" not in text, f"the page shows {folder}"


def test_the_course_library_of_another_checkout_is_shown_as_lib_backprop(tmp_path):
    """An environment shared by several checkouts imports the course library from the one it
    was installed from (its editable install points there), in the grader and in the kernels:
    a traceback through it shows that checkout's folders unless they are hidden too."""
    import subprocess

    library = tmp_path / "other-checkout" / "lib" / "backprop"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text("")
    shown = f"File {library}{os.sep}gradcheck.py:411, in check_gradient"
    code = "import sys\nfrom grader import scrub\nprint(scrub.hide_paths(sys.argv[1]))"
    env = os.environ | {"PYTHONPATH": str(library.parent)}  # imported before the installed one
    done = subprocess.run(
        [sys.executable, "-c", code, shown],
        cwd=course.REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == f"File lib/backprop{os.sep}gradcheck.py:411, in check_gradient\n"


def test_a_hidden_line_inside_a_longer_line_is_a_leak():
    hidden = scrub.Hidden.of_lines(["x_hidden_case = np.arange(3)", "check(x_hidden_case)"], "")
    shown = "['import numpy', 'x = 1\\nx_hidden_case = np.arange(3)\\ncheck(x_hidden_case)']"
    page = f"<pre>{html.escape(shown)}</pre>"
    assert scrub.leaks(page, hidden) == ["check(x_hidden_case)", "x_hidden_case = np.arange(3)"]
    assert scrub.leaks(html.escape(scrub.scrub_text(shown, hidden)), hidden) == []


def test_a_hidden_line_inside_a_visible_line_is_not_a_leak():
    """``relu.forward(x)`` in a hidden test does not make a visible ``y = relu.forward(x)``
    (given to every learner, or written by one) a leak."""
    hidden = scrub.Hidden.of_lines(["relu.forward(x)"], "y = relu.forward(x)")
    assert scrub.leaks("<p>y = relu.forward(x)</p>", hidden) == []
    assert scrub.leaks("<p>relu.forward(x)</p>", hidden) == ["relu.forward(x)"]


def one_line_error(capsys, argv, code=2):
    assert main(argv) == code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("error: "), captured.err
    return captured.err


def test_help_is_plain_text_for_the_instructor(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    shown = capsys.readouterr().out
    for internal in ("``", "UsageError", "OSError"):
        assert internal not in shown, shown
    assert "--workspace DIR, else $BACKPROP_GRADING_DIR" in shown
    assert "says why in one line and exits with code 2" in shown


def test_every_command_and_each_of_its_options_has_a_help_text():
    """What ``COMMAND --help`` shows: a line on what the command does (also in the list of
    commands), and one on each argument and option."""
    import argparse

    from grader.__main__ import _parser

    (commands,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    listed = {choice.dest: choice.help for choice in commands._choices_actions}
    missing = []
    for name, command in commands.choices.items():
        if not (listed.get(name) and command.description):
            missing.append(name)
        missing += [
            f"{name} {'/'.join(action.option_strings) or action.metavar}"
            for action in command._actions
            if not action.help
        ]
    assert missing == []


@pytest.mark.parametrize("command", ["release", "feedback"])
def test_an_unknown_assignment_is_named(capsys, command):
    err = one_line_error(capsys, [command, "99-nope"])
    assert "unknown assignment(s): 99-nope" in err


def _grader_here():
    """The grader's command line as the README has it when run from the repository with the
    environment's Python in it: ``.venv/bin/python -m grader``, else by its full path."""
    python = Path(sys.executable)
    return f"{python.relative_to(course.REPO) if python.is_relative_to(course.REPO) else python}"


def test_feedback_export_and_report_before_autograde_say_what_to_run(tmp_path, capsys, monkeypatch):
    """Nothing collected: feedback given an assignment says to collect it; the others, and
    feedback given none, that nothing was graded."""
    monkeypatch.setenv(
        course.WORKSPACE_ENV, os.environ[course.WORKSPACE_ENV]
    )  # --workspace sets it
    monkeypatch.chdir(course.REPO)
    run = f"run `{_grader_here()} -m grader autograde` first"
    assignment = course.assignments()[0]
    err = one_line_error(capsys, ["--workspace", str(tmp_path), "feedback", assignment])
    collect = f"run `{_grader_here()} -m grader collect` first"
    assert err == f"error: nothing collected for {assignment} yet: {collect}\n"
    err = one_line_error(capsys, ["--workspace", str(tmp_path), "feedback"])
    assert "nothing graded yet" in err and run in err
    for command in ("export", "report"):
        err = one_line_error(capsys, ["--workspace", str(tmp_path), command])
        assert "nothing graded yet" in err and run in err
    assert not (tmp_path / "exports").exists()


def test_autograde_before_collect_says_nothing_was_collected(tmp_path, capsys, monkeypatch):
    """The command to run is named as it was started: from the repository, as the README has
    it; from elsewhere, by the name that finds its Python on the PATH, else by its full path."""
    monkeypatch.setenv(course.WORKSPACE_ENV, os.environ[course.WORKSPACE_ENV])
    assignment = course.assignments()[0]
    bin_folder, name = str(Path(sys.executable).parent), Path(sys.executable).name
    for folder, path, python in (
        (course.REPO, bin_folder, _grader_here()),
        (tmp_path, "", sys.executable),
        (tmp_path, bin_folder, name if name in ("python", "python3") else sys.executable),
    ):
        monkeypatch.chdir(folder)
        monkeypatch.setattr(course, "PATH_AT_START", path)
        for named, which in (([], ""), ([assignment], f" for {assignment}")):
            err = one_line_error(capsys, ["--workspace", str(tmp_path), "autograde", *named])
            run = f"run `{python} -m grader collect` first"
            assert err == f"error: nothing collected{which} yet: {run}\n"


def test_the_workspace_can_be_named_after_the_command_too(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "elsewhere"))  # restored after
    err = one_line_error(capsys, ["autograde", "--workspace", str(tmp_path / "here")])
    assert err.startswith(f"error: no grading workspace at {tmp_path / 'here'}")
    assert course.workspace() == tmp_path / "here"
    argv = [
        "--workspace",
        str(tmp_path / "before"),
        "export",
        "--workspace",
        str(tmp_path / "after"),
    ]
    one_line_error(capsys, argv)
    assert course.workspace() == tmp_path / "after", "the one nearer the command wins"


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["export", "--to", "{workspace}/gradebook.db"], "the grading workspace keeps its own"),
        (["report", "--html", "{workspace}/submitted/r.html"], "the grading workspace keeps its"),
        (["report", "--html", "{tmp}/r.json"], "the report is a web page, name it .html"),
    ],
)
def test_an_output_over_the_graders_own_files_is_refused(graded, tmp_path, capsys, args, why):
    workspace = course.workspace()
    gradebook = (workspace / "gradebook.db").read_bytes()
    args = [a.format(workspace=workspace, tmp=tmp_path) for a in args]
    err = one_line_error(capsys, args)
    assert why in err
    assert (workspace / "gradebook.db").read_bytes() == gradebook
    assert not (tmp_path / "r.json").exists()


def test_the_report_says_where_its_rows_went(graded, tmp_path, capsys):
    assert main(["report", "--html", str(tmp_path / "class.html")]) == 0
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'class.html'} (its rows: {tmp_path / 'class.json'})" in out
    assert json.loads((tmp_path / "class.json").read_text())


def test_export_to_a_folder_is_one_line(graded, tmp_path, capsys):
    err = one_line_error(capsys, ["export", "--to", str(tmp_path)])
    assert str(tmp_path) in err and "directory" in err.lower()


@pytest.mark.parametrize("command", ["export", "report"])
def test_a_read_only_workspace_is_one_line(graded, capsys, monkeypatch, command):
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name == "exports":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    err = one_line_error(capsys, [command])
    assert "Permission denied" in err and "exports" in err


class Bar:
    """A stand-in for ``progress.bar`` that counts."""

    def __init__(self, total, desc, unit):
        self.total, self.desc, self.count = total, desc, 0
        made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        self.count += n

    def set_postfix_str(self, text, refresh=True):
        pass


made = []


@pytest.fixture
def bars(monkeypatch):
    """The progress bars made while the test runs."""
    monkeypatch.setattr(progress, "bar", Bar)
    made.clear()
    return made


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_feedback_counts_its_pages_on_a_progress_bar(feedback_run, bars, jobs):
    assert main(["feedback", "-j", jobs]) == 1  # oscar's page still cannot be rendered
    assert [(b.desc, b.total, b.count) for b in bars] == [("feedback", len(CLASS), len(CLASS))]


def _pages_now():
    return {p: p.read_bytes() for p in course.folder("feedback").glob(f"*/{A}/*.html")}


def test_pages_rendered_in_parallel_are_the_ones_rendered_in_one_process(feedback_run, capsys):
    assert main(["feedback", "-j", "1"]) == 1
    one = _pages_now()
    assert main(["feedback", "-j", "3"]) == 1  # oscar's page still cannot be rendered
    assert _pages_now() == one and len(one) == 4
    out, err = capsys.readouterr()
    assert out.count("4 feedback page(s) written") == 2
    assert [line for line in err.splitlines() if "oscar" in line] == [
        line for line in err.splitlines() if line.startswith("error:")
    ]
    assert err.count("oscar") == 2


def test_a_worker_told_to_stop_leaves_the_next_students_pages_alone(feedback_run):
    """Ctrl+C while pages are rendered in parallel: each worker stops before its next page,
    and the page of the last run stays."""
    import multiprocessing

    stop = multiprocessing.Event()
    stop.set()
    page = next(course.folder("feedback").glob(f"alice/{A}/*.html"))
    before = page.stat().st_mtime_ns
    with pytest.raises(KeyboardInterrupt):
        feedback.render(A, {"alice"}, bar=Bar(1, "feedback", "page"), stop=stop)
    assert page.stat().st_mtime_ns == before


def test_ctrl_c_stops_parallel_feedback_with_whole_pages_and_no_worker_left(
    feedback_run, monkeypatch, capsys
):
    """The parent stops waiting at once (Ctrl+C); each worker ends the student it is writing and
    starts no other: exit code 130, every page on disk is whole, and no student lost the page
    of the last run."""
    import multiprocessing

    real_wait, calls = feedback.wait, []

    def wait(futures, **kwargs):
        calls.append(len(futures))
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_wait(futures, **kwargs)

    monkeypatch.setattr(feedback, "wait", wait)
    with pytest.raises(SystemExit) as stop:
        main(["feedback", "-j", "2"])
    assert stop.value.code == 130
    assert "interrupted: the pages written so far are kept" in capsys.readouterr().out
    assert len(calls) == 2  # and the second waited for the workers
    pages = list(course.folder("feedback").glob(f"*/{A}/*.html"))
    assert sorted(p.parent.parent.name for p in pages) == ["alice", "mallory", "nina", "pablo"]
    for page in pages:
        assert page.read_text().rstrip().endswith("</html>"), page
    assert multiprocessing.active_children() == []


def test_release_check_counts_the_assignments_on_a_progress_bar(bars, monkeypatch):
    monkeypatch.setattr(course, "SOURCE", course.REPO / "solutions")  # not the tiny course's
    assert main(["release", "--check", "01-chain-rule"]) == 0
    assert [(b.desc, b.total, b.count) for b in bars] == [("release", 1, 1)]


def test_ctrl_c_stops_feedback_with_the_pages_written_kept(monkeypatch, capsys):
    """nbgrader's ``capture_log`` catches Ctrl+C as any error: it is not a page that could not
    be written, but the instructor stopping the run (exit code 130, as autograde)."""
    monkeypatch.setattr(
        feedback,
        "capture_log",
        lambda app: {
            "success": False,
            "error": "Traceback (most recent call last):\nKeyboardInterrupt\n",
        },
    )
    with pytest.raises(KeyboardInterrupt):
        feedback.render(A, {"alice"}, bar=None)
    monkeypatch.setattr(feedback, "_assignments", lambda ids: [A])
    monkeypatch.setattr(feedback, "grade_status", lambda aid: {"alice": "graded"})
    with pytest.raises(SystemExit) as stop:
        feedback.feedback()
    assert stop.value.code == 130
    assert "interrupted: the pages written so far are kept" in capsys.readouterr().out


# -- Ctrl+C and folders that cannot be written, at any moment and with any number of jobs ------


@pytest.fixture
def python_handles_ctrl_c():
    """SIGINT raises KeyboardInterrupt in this process, as in a terminal (a test runner's
    worker may have it ignored)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _when_rendering(monkeypatch, student, action):
    """Call ``action()`` as ``student``'s page starts to be rendered, in this process or in a
    worker forked from it."""
    from nbconvert.exporters import HTMLExporter

    real = HTMLExporter.from_notebook_node

    def from_notebook_node(self, nb, resources=None, **kwargs):
        if resources["nbgrader"]["student"] == student:
            action()
        return real(self, nb, resources, **kwargs)

    monkeypatch.setattr(HTMLExporter, "from_notebook_node", from_notebook_node)


def _ctrl_c():
    raise KeyboardInterrupt


def _files_and_stamps():
    """``{path: modification time}`` of every file in the feedback folder."""
    return {p: p.stat().st_mtime_ns for p in course.folder("feedback").rglob("*") if p.is_file()}


def _interrupted(capsys, argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 130
    out = capsys.readouterr().out
    assert "interrupted: the pages written so far are kept; run feedback again" in out


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_while_a_page_is_rendered_keeps_its_old_page(
    feedback_run, monkeypatch, capsys, jobs
):
    """Ctrl+C while mallory's page is rendered (in this process with one job, in a worker with
    two): her page of the last run stays whole; with one job, no later student's page is
    touched. nbgrader removed her pages first, and again on Ctrl+C."""
    before = _files_and_stamps()
    mallory = course.folder("feedback") / "mallory" / A / "tiny.html"
    page = mallory.read_bytes()
    _when_rendering(monkeypatch, "mallory", _ctrl_c)
    _interrupted(capsys, ["feedback", "-j", jobs])
    after = _files_and_stamps()
    assert sorted(after) == sorted(before), "no page lost, no part of one left"
    assert mallory.read_bytes() == page and after[mallory] == before[mallory]
    for path in after:
        assert path.read_text().rstrip().endswith("</html>"), path
    if jobs == "1":  # alice's page was rendered before mallory's, nina's and pablo's were not
        for sid in ("nina", "pablo"):
            path = course.folder("feedback") / sid / A / "tiny.html"
            assert after[path] == before[path], f"{sid}'s page was written after Ctrl+C"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_that_python_drops_still_stops_feedback(
    feedback_run, monkeypatch, capsys, python_handles_ctrl_c
):
    """Ctrl+C while Python runs a weakref callback, as rendering a page often does: Python
    prints "Exception ignored in: ..." and drops the KeyboardInterrupt. The run stops all the
    same, before the next page, with exit code 130 (it went on to the end, exit code 1)."""
    import signal
    import weakref

    class Thing:
        pass

    def ctrl_c_in_a_weakref_callback():
        thing = Thing()
        ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGINT))
        del thing  # the callback runs here
        assert ref() is None

    before = _files_and_stamps()
    _when_rendering(monkeypatch, "alice", ctrl_c_in_a_weakref_callback)
    _interrupted(capsys, ["feedback", "-j", "1"])
    after = _files_and_stamps()
    assert sorted(after) == sorted(before)
    for sid in ("mallory", "nina", "pablo"):
        path = course.folder("feedback") / sid / A / "tiny.html"
        assert after[path] == before[path], f"{sid}'s page was written after Ctrl+C"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_folder_that_cannot_be_written_costs_only_its_own_page(feedback_run, capsys, jobs):
    """alice's feedback folder for the assignment is a file: her page is named with the reason,
    and every other student of her share (with two jobs, nina and pablo) gets a new page. nbgrader
    tried to remove it, and again when that failed, which ended the run for every later student
    of the share; the message named no student."""
    folder = course.folder("feedback") / "alice" / A
    page = (folder / "tiny.html").read_bytes()
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    for path in course.folder("feedback").glob(f"*/{A}/*.html"):
        os.utime(path, ns=(0, 0))
    try:
        assert main(["feedback", "-j", jobs]) == 1
        out, err = capsys.readouterr()
        errors = err.strip().splitlines()
        assert len(errors) == 2 and "Traceback" not in err, err
        assert errors[0].startswith(f"error: no feedback for alice/{A}/tiny: ")
        assert f"{folder}'" in errors[0], "the reason names the folder"
        assert errors[1].startswith(f"error: no feedback for oscar/{A}/tiny: ")
        assert "3 feedback page(s) written" in out and "older" not in out, out
        pages = course.folder("feedback").glob(f"*/{A}/*.html")
        assert sorted(p.parent.parent.name for p in pages) == ["mallory", "nina", "pablo"]
    finally:
        folder.unlink()
        folder.mkdir()
        (folder / "tiny.html").write_bytes(page)


def test_a_page_is_replaced_only_by_a_whole_one(tmp_path, monkeypatch):
    """Ctrl+C (or an error) while a page is written leaves the old page, and no part of the
    new one; a written page has the permissions asked for."""
    page = tmp_path / "tiny.html"
    page.write_text("old")

    def replace(source, destination):
        assert Path(source).read_text() == "new"
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(course.os, "replace", replace)
        with pytest.raises(KeyboardInterrupt):
            feedback.write_whole(page, "new", 0o644)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.html"] and page.read_text() == "old"
    feedback.write_whole(page, "new", 0o640)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.html"] and page.read_text() == "new"
    assert page.stat().st_mode & 0o777 == 0o640


# -- what is collected but not graded, on a class made up without grading ------------------------

ONE, TWO, THREE = "01-chain-rule", "02-computation-graphs", "03-sigmoid"
HANDED_IN = datetime(2026, 11, 2, 9, 30)  # every submission's time, as collect stamps it


@pytest.fixture
def collected_class(tmp_path, monkeypatch, capsys):
    """The course's own assignments, in a workspace where alice's and bob's 01-chain-rule are
    graded, carl's is collected only, and alice's and bob's 02-computation-graphs are collected
    only; nothing else is collected. Made up: the gradebook's scores and the exercises stand in
    for what grading would give, and feedback renders no page."""
    from grader import gradebook, report
    from grader.autograde import result_path

    monkeypatch.setattr(course, "SOURCE", course.REPO / "solutions")  # not the tiny course's
    if not {ONE, TWO} <= set(course.assignments()):
        pytest.skip("the course's first notebooks are not in solutions/")
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    for sid, aid in [("alice", ONE), ("bob", ONE), ("carl", ONE), ("alice", TWO), ("bob", TWO)]:
        folder = course.folder("submitted") / sid / aid
        folder.mkdir(parents=True)
        (folder / "nb.ipynb").write_text("{}")
        course.stamp(folder, HANDED_IN)
    entry = {"score": 1.0, "max_score": 1.0, "needs_manual_grade": False, "grades": {}}
    book = {ONE: {}}
    for sid in ("alice", "bob"):
        graded = course.folder("autograded") / sid / ONE / "nb.ipynb"
        graded.parent.mkdir(parents=True)
        graded.write_text("{}")
        result_path(ONE, sid).parent.mkdir(parents=True, exist_ok=True)
        exercise = {"name": "x", "passed": True, "mistakes": [], "warnings": []}
        result_path(ONE, sid).write_text(json.dumps({"exercises": [exercise], "flags": []}))
        book[ONE][sid] = entry | {"submitted_at": HANDED_IN}
    monkeypatch.setattr(gradebook, "scores", lambda aid: book.get(aid, {}))
    monkeypatch.setattr(report, "exercises", lambda aid: ["x"])
    monkeypatch.setattr(feedback, "render", lambda aid, students, bar, stop=None: [])
    monkeypatch.setattr(feedback, "withhold_leaks", lambda aid: [])
    capsys.readouterr()
    return tmp_path


def not_graded_yet(aid, collected, waiting):
    """The line that says how much of ``aid`` is collected and waits for autograde."""
    run = f"run `{course.command()} autograde {aid}`"
    return f"{aid}: {collected} collected, {waiting} not graded yet: {run}"


def test_feedback_ends_naming_what_is_collected_but_not_graded(collected_class, capsys):
    assert main(["feedback", "-j", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"no page for carl/{ONE}: not graded yet" in out[-3], out
    assert out[-2:] == [not_graded_yet(ONE, 3, 1), not_graded_yet(TWO, 2, 2)], out
    assert main(["feedback", "-j", "1", ONE]) == 0  # only what was named
    assert capsys.readouterr().out.splitlines()[-1] == not_graded_yet(ONE, 3, 1)


def test_the_report_ends_naming_what_is_collected_but_not_graded(collected_class, capsys):
    """A notebook handed in again since it was graded is not graded yet either."""
    course.stamp(course.folder("submitted") / "bob" / ONE, datetime(2026, 11, 3, 8, 0))
    assert main(["report", "--html", str(collected_class / "report.html")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3].startswith("report: "), out
    assert out[-2:] == [not_graded_yet(ONE, 3, 2), not_graded_yet(TWO, 2, 2)], out


def test_feedback_on_assignments_with_nothing_collected_names_them(collected_class, capsys):
    run = f"run `{course.command()} collect` first"
    err = one_line_error(capsys, ["feedback", ONE, THREE, "05-training-loop"])
    assert err == f"error: nothing collected for {THREE}, 05-training-loop yet: {run}\n"
    err = one_line_error(capsys, ["feedback", TWO])  # collected: it is grading that is missing
    assert err.startswith(f"error: nothing graded for {TWO} yet: run `"), err
    assert not course.folder("feedback").exists()


def test_release_starts_no_alembic_process(monkeypatch):
    """nbgrader finds its database schema's version for the release's new gradebook by starting
    ``alembic heads`` (3 s, with nothing to show on the progress bar); release reads it from the
    migration scripts, as the grader's own gradebook does."""
    import nbgrader.api

    def alembic_heads():
        raise AssertionError("release started alembic")

    monkeypatch.setattr(course, "SOURCE", course.REPO / "solutions")  # not the tiny course's
    monkeypatch.setattr(nbgrader.api, "get_alembic_version", alembic_heads)
    assert main(["release", "--check", "01-chain-rule"]) == 0

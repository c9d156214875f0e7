"""Feedback and the instructor's error messages, on the tiny course: submissions that try to get
hidden tests into their feedback, a submission nbgrader cannot render, and commands run with
bad input or in the wrong order (one line on stderr, no traceback, a non-zero exit code)."""

import html
import json
import os
import pathlib
import re
import sys
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
        feedback, "render", lambda aid, students, bar: [f"no feedback for {aid}: disk full"]
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


@pytest.mark.parametrize("command", ["release", "feedback"])
def test_an_unknown_assignment_is_named(capsys, command):
    err = one_line_error(capsys, [command, "99-nope"])
    assert "unknown assignment(s): 99-nope" in err


def _grader_here():
    """The grader's command line as the README has it when run from the repository with the
    environment's Python in it: ``.venv/bin/python -m grader``, else by its full path."""
    python = Path(sys.executable)
    return f"{python.relative_to(course.REPO) if python.is_relative_to(course.REPO) else python}"


def test_feedback_and_export_before_autograde_say_nothing_was_graded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(
        course.WORKSPACE_ENV, os.environ[course.WORKSPACE_ENV]
    )  # --workspace sets it
    monkeypatch.chdir(course.REPO)
    run = f"run `{_grader_here()} -m grader autograde` first"
    assignment = course.assignments()[0]
    err = one_line_error(capsys, ["--workspace", str(tmp_path), "feedback", assignment])
    assert f"nothing graded for {assignment} yet" in err and run in err
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
    assert err.startswith("error: nothing collected yet")
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


def test_a_worker_told_to_stop_leaves_the_next_students_pages_alone(feedback_run, monkeypatch):
    """Ctrl+C while pages are rendered in parallel: each worker stops before its next student,
    whose page of the last run stays (nbgrader removes it before it writes the new one)."""
    import multiprocessing

    stop = multiprocessing.Event()
    stop.set()
    monkeypatch.setattr(feedback, "_STOP", stop)
    page = next(course.folder("feedback").glob(f"alice/{A}/*.html"))
    before = page.stat().st_mtime_ns
    assert feedback.render(A, {"alice"}, bar=Bar(1, "feedback", "page")) == []
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

"""Submissions the grader once mishandled: nbgrader metadata damaged or stripped, a notebook whose
grading fails, a notebook filed under another assignment. Each must be graded or listed, and
every submitted notebook must reach the export, flagged for a human where its grade is unsure."""

import csv
import re
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))

import tiny_course as tiny  # noqa: E402

from grader import course  # noqa: E402
from grader.__main__ import main  # noqa: E402
from grader.autograde import failure_path  # noqa: E402
from grader.master import grade_id  # noqa: E402
from grader.sanitize import sanitize  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grader-repairs")]
A, NAME = tiny.ASSIGNMENT, f"{tiny.NOTEBOOK}.ipynb"
ANSWERS = list(tiny.CORRECT)


def _metadata_a_string(nb):
    next(c for c in nb.cells if grade_id(c) == "relu_backward").metadata["nbgrader"] = "x"


def _grade_id_a_list(nb):
    cell = next(c for c in nb.cells if grade_id(c) == "relu_backward")
    cell.metadata["nbgrader"]["grade_id"] = ["relu_backward"]


def _stripped(nb):
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)


def _stripped_with_scratch_cells(nb):
    """Metadata stripped, and a scratch cell of the learner's own above each test cell."""
    _stripped(nb)
    for i in reversed(range(len(nb.cells))):
        if nb.cells[i].source.startswith(("x = np.array", "assert")):
            nb.cells.insert(i, nbformat.v4.new_code_cell("print('trying it out')"))


DAMAGED = {
    "metadata-a-string": _metadata_a_string,
    "grade-id-a-list": _grade_id_a_list,
    "stripped": _stripped,
    "stripped-with-scratch-cells": _stripped_with_scratch_cells,
}


@pytest.fixture(scope="module")
def tiny_master(tmp_path_factory):
    """The tiny course as the course (``course.SOURCE``) while the module runs; yields its
    master."""
    with tiny.as_the_course(tmp_path_factory.mktemp("repairs")) as master:
        yield master


def submission(master, edit=None, answers=tiny.CORRECT):
    nb = master.released_nb()
    for cell in nb.cells:
        if grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    if edit:
        edit(nb)
    return nb


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_answers_with_damaged_metadata_are_found_by_their_place(tiny_master, damage):
    nb, flags = sanitize(submission(tiny_master, DAMAGED[damage]), tiny_master)
    restored = ANSWERS if damage.startswith("stripped") else ["relu_backward"]
    assert flags == [("restored-cell", gid) for gid in restored]
    cells = {grade_id(c): c for c in nb.cells if grade_id(c)}
    for gid in ANSWERS:
        assert cells[gid].source == tiny.CORRECT[gid], "the learner's answer is graded"
    assert "### BEGIN HIDDEN TESTS" in cells["test_add"].source, "the hidden tests are back"


def test_an_answer_that_cannot_be_told_apart_is_missing(tiny_master):
    """Two cells of the learner's own where the answer should be, neither defining ``add``:
    no guess, the answer cell is put back as released and flagged."""

    def edit(nb):
        _stripped(nb)
        i = next(i for i, c in enumerate(nb.cells) if c.source.startswith("def add"))
        nb.cells[i].source = "def plus(a, b):\n    return a + b"
        nb.cells.insert(i, nbformat.v4.new_code_cell("x = 1"))

    nb, flags = sanitize(submission(tiny_master, edit), tiny_master)
    assert ("missing-cell", "add") in flags
    assert ("restored-cell", "relu_backward") in flags and ("restored-cell", "sigmoid") in flags
    (add,) = [c for c in nb.cells if grade_id(c) == "add"]
    assert add.source == tiny_master.stubs["add"]


def _answer_deleted(nb):
    """The answer cell of ``add`` deleted, its answer written in a new cell at the end."""
    i = next(i for i, c in enumerate(nb.cells) if grade_id(c) == "add")
    nb.cells.append(nbformat.v4.new_code_cell(nb.cells.pop(i).source))


# student: how their notebook is damaged (None: not at all; "corrupt": a file nbformat cannot
# read, put straight into the workspace)
CLASS = {
    "alice": None,
    **{name: name for name in DAMAGED},
    "ulla": "answer-deleted",
    "zed": "corrupt",
}
EDITS = DAMAGED | {"answer-deleted": _answer_deleted}


@pytest.fixture(scope="module")
def exported(tiny_master, tmp_path_factory):
    """The class collected, autograded and exported: ``{student: CSV row}``."""
    folder = tmp_path_factory.mktemp("class")
    for sid, damage in CLASS.items():
        if damage != "corrupt":
            path = folder / sid / A / NAME
            path.parent.mkdir(parents=True)
            nbformat.write(submission(tiny_master, EDITS.get(damage)), path)
    assert main(["collect", str(folder)]) == 0
    corrupt = course.folder("submitted") / "zed" / A / NAME
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text("{not a notebook")
    main(["autograde", "-j", "2", "--cell-timeout", "10", "--notebook-timeout", "120"])
    path = course.folder("exports") / "grades.csv"
    assert main(["export", "--to", str(path)]) == 0
    with open(path, newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


def test_every_submitted_notebook_has_a_row(exported):
    assert sorted(exported) == sorted(CLASS)
    zed = exported["zed"]
    assert (zed["score"], zed["max_score"]) == ("", "4")
    assert zed["flags"] == f"grader-error({NAME})"
    assert zed["needs_manual_grade"] == "yes"
    assert "Error" in failure_path(A, "zed").read_text()  # the message, kept for the instructor
    assert not failure_path(A, "alice").exists()


def test_the_graded_notebook_says_how_an_answer_was_found(exported):
    nb = nbformat.read(course.folder("autograded") / "stripped" / A / NAME, as_version=4)
    assert "`relu_backward` had lost its grading metadata; it was found by its place" in (
        nb.cells[0].source
    )


@pytest.mark.parametrize("student", sorted(DAMAGED))
def test_answers_put_back_together_are_graded_and_checked_by_a_human(exported, student):
    """Checked by a human in the export and in the formgrader alike: the gradebook says the
    exercise's test cells need a human."""
    from grader import gradebook

    row = exported[student]
    assert (row["score"], row["max_score"]) == ("4", "4"), row
    assert row["needs_manual_grade"] == "yes", row
    assert "restored-cell(relu_backward)" in row["flags"] and not row["mistakes"], row
    assert exported["alice"]["needs_manual_grade"] == "no"
    with gradebook.open_gradebook() as gb:
        waiting = {
            sid: {
                g.name
                for g in gb.find_submission_notebook(tiny.NOTEBOOK, A, sid).grades
                if g.needs_manual_grade
            }
            for sid in (student, "alice")
        }
    restored = re.findall(r"restored-cell\((\w+)\)", row["flags"])
    assert waiting == {student: {f"test_{gid}" for gid in restored}, "alice": set()}, waiting


def test_an_answer_cell_lost_is_checked_by_a_human():
    """A deleted answer cell (the flag ``missing-cell``) scores 0 for that exercise: a human
    decides whether the answer is somewhere else in the notebook."""
    from grader.scoring import needs_human

    assert needs_human([("missing-cell", "add")], {"add"})
    assert not needs_human([("missing-cell", "test_add"), ("restored-cell", "x")], {"add"})


def test_a_deleted_answer_cell_is_named_not_called_unanswered(exported):
    """The answer cell put back is the released stub, so the exercise fails; the diagnosis says
    the cell was deleted (the answer may be elsewhere), not that nothing was answered."""
    row = exported["ulla"]
    assert row["flags"] == "missing-cell(add)" and row["needs_manual_grade"] == "yes", row
    assert row["mistakes"] == "add:deleted-answer-cell", row


def test_a_notebook_that_was_never_graded_has_a_row(tiny_master, exported):
    late = course.folder("submitted") / "yann" / A / NAME
    late.parent.mkdir(parents=True)
    nbformat.write(submission(tiny_master), late)
    path = course.folder("exports") / "late.csv"
    assert main(["export", "--to", str(path)]) == 0
    with open(path, newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert rows["yann"]["flags"] == f"not-graded({NAME})"
    assert rows["yann"]["needs_manual_grade"] == "yes"
    late.unlink()


def test_a_notebook_that_removes_its_own_folder_is_graded(tiny_master, exported, tmp_path):
    """A notebook runs in a folder of its own, where its graded copy is written: one that
    removes that folder is graded (the folder is made again), not a grader error."""

    def remove_its_folder(nb):
        nb.cells.append(nbformat.v4.new_code_cell("import os, shutil\nshutil.rmtree(os.getcwd())"))

    path = tmp_path / "class" / "vera" / A / NAME
    path.parent.mkdir(parents=True)
    nbformat.write(submission(tiny_master, remove_its_folder), path)
    assert main(["collect", str(path.parents[2])]) == 0
    main(["autograde", "--cell-timeout", "10"])  # non-zero: zed's notebook cannot be read
    assert not failure_path(A, "vera").exists(), failure_path(A, "vera").read_text()
    assert (course.folder("autograded") / "vera" / A / NAME).exists()
    export = course.folder("exports") / "vera.csv"
    assert main(["export", "--to", str(export)]) == 0
    with open(export, newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["student_id"] == "vera")
    assert (row["score"], row["flags"]) == ("4", ""), row


def _graded_once(tmp_path, master, student):
    """``student``'s correct notebook collected and autograded; the path of its graded copy."""
    path = tmp_path / "class" / student / A / NAME
    path.parent.mkdir(parents=True)
    nbformat.write(submission(master), path)
    assert main(["collect", str(path.parents[2])]) == 0
    assert main(["autograde", "-j", "1", "--cell-timeout", "10"]) == 0
    return course.folder("autograded") / student / A / NAME


def test_a_test_cell_added_after_grading_stops_autograde_before_any_graded_copy_changes(
    tiny_master, tmp_path, capsys
):
    """A test cell added to a notebook in solutions/ after its submissions were graded cannot be
    recorded in the gradebook (nbgrader's SaveCells refuses it too): autograde says so in one
    line and what to do (exit code 2) before any graded copy is replaced, so each stays the one
    the gradebook's grades are for. With the cell taken out again, feedback has every page."""
    with tiny.as_the_course(tmp_path) as master:
        graded = _graded_once(tmp_path, master, "wes")
        before = graded.read_bytes()
        source = course.SOURCE / A / NAME
        original = source.read_bytes()
        nb = nbformat.read(source, as_version=4)
        nb.cells.append(tiny._test("extra", "assert True", "assert add(1, 1) == 2", 1))
        nbformat.write(nb, source)
        capsys.readouterr()
        assert main(["autograde", "-j", "1", "--cell-timeout", "10"]) == 2
        said = capsys.readouterr().err.strip()
        assert "\n" not in said and "(added test_extra)" in said, said
        assert graded.read_bytes() == before
        source.write_bytes(original)
        assert main(["autograde", "-j", "1", "--cell-timeout", "10"]) == 0
        assert main(["feedback", "-j", "1"]) == 0


def test_a_gradebook_that_refuses_the_cells_stops_the_workers_before_they_replace_a_copy(
    tiny_master, tmp_path, monkeypatch, capsys
):
    """The cells are recorded while the first notebooks run: a worker done with its notebook
    waits until they are before it replaces the graded copy, and a gradebook that refuses them
    ends the workers first. Here the refusal comes only once the worker has written its new
    copy, beside the old one."""
    import time

    from grader import autograde

    with tiny.as_the_course(tmp_path) as master:
        graded = _graded_once(tmp_path, master, "vic")
        before = graded.read_bytes(), graded.stat().st_ino
        new_copy = course.grading_folder(graded.parent) / NAME

        def replaced():
            return not graded.exists() or graded.stat().st_ino != before[1]

        def refused_once_graded(jobs):
            deadline = time.monotonic() + 60
            while not (new_copy.exists() or replaced()) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.5)  # time enough for a worker that does not wait to replace the copy
            raise course.UsageError("the gradebook refuses the cells")

        monkeypatch.setattr(autograde, "_record_cells", refused_once_graded)
        capsys.readouterr()
        assert main(["autograde", "-j", "1", "--force", "--cell-timeout", "10"]) == 2
        assert "refuses the cells" in capsys.readouterr().err
        assert not replaced() and graded.read_bytes() == before[0]
        assert not new_copy.parent.exists()


def _hand_in(tmp_path, master, student, answers, name):
    """Collect ``student``'s notebook with ``answers`` (from folder ``name``) and autograde."""
    path = tmp_path / name / student / A / NAME
    path.parent.mkdir(parents=True)
    nbformat.write(submission(master, answers=answers), path)
    assert main(["collect", str(path.parents[2])]) == 0
    main(["autograde", "--cell-timeout", "10"])  # non-zero: zed's notebook cannot be read


def _exported_row(student):
    path = course.folder("exports") / f"{student}.csv"
    assert main(["export", "--to", str(path)]) == 0
    with open(path, newline="") as f:
        return next(r for r in csv.DictReader(f) if r["student_id"] == student)


def _mark_by_hand(student, score):
    from grader import gradebook

    with gradebook.open_gradebook() as gb:
        gb.find_grade("test_add", tiny.NOTEBOOK, A, student).manual_score = score
        gb.db.commit()


def test_a_resubmission_keeps_no_mark_given_by_hand_to_the_old_one(tiny_master, exported, tmp_path):
    """A mark a human gave survives grading the same notebook again, not a new notebook: that
    one's cell is flagged for a human instead. The formgrader counts every graded submission
    as graded: its timestamp.txt holds the time the gradebook has."""
    from grader import gradebook

    def hand_in(answers, name):
        _hand_in(tmp_path, tiny_master, "rita", answers, name)

    def row():
        return _exported_row("rita")

    def stored_timestamp():
        with gradebook.open_gradebook() as gb:
            return gb.find_submission(A, "rita").timestamp

    hand_in(tiny.CORRECT, "first")
    folder = course.folder("submitted") / "rita" / A
    assert course.submitted_at(folder) == stored_timestamp()
    _mark_by_hand("rita", 0.5)
    main(["autograde", "--force", "--cell-timeout", "10"])  # the same notebook again
    kept = row()
    assert kept["score"] == "3.5" and kept["flags"] == "manual-mark-kept(test_add)", kept

    hand_in(tiny.CORRECT | {"relu_backward": tiny.SIGN_FLIPPED}, "again")
    assert course.submitted_at(folder) == stored_timestamp()
    again = row()
    assert again["score"] == "2" and again["needs_manual_grade"] == "yes", again
    assert again["flags"] == "manual-mark-dropped(test_add)", again
    # graded again (the tests changed, say): the cell still waits for a new mark
    main(["autograde", "--force", "--cell-timeout", "10"])
    still = row()
    assert still["flags"] == "manual-mark-dropped(test_add)", still
    assert still["needs_manual_grade"] == "yes", still
    _mark_by_hand("rita", 1.0)
    main(["autograde", "--force", "--cell-timeout", "10"])
    assert row()["flags"] == "manual-mark-kept(test_add)"


def test_a_notebook_handed_in_again_shows_no_grade_until_graded(
    tiny_master, exported, tmp_path, capsys
):
    """Between ``collect`` of a new notebook and ``autograde``, the grades in the gradebook are for
    the old one: the export leaves the score empty, feedback writes no page for it and the
    report does not count it; each says why. Once graded, the new notebook's grade is shown."""

    def hand_in(answers, name):
        path = tmp_path / name / "sam" / A / NAME
        path.parent.mkdir(parents=True)
        nbformat.write(submission(tiny_master, answers=answers), path)
        assert main(["collect", str(path.parents[2])]) == 0

    def row():
        path = course.folder("exports") / "sam.csv"
        assert main(["export", "--to", str(path)]) == 0
        with open(path, newline="") as f:
            return next(r for r in csv.DictReader(f) if r["student_id"] == "sam")

    hand_in(tiny.CORRECT, "first")
    main(["autograde", "--cell-timeout", "10"])  # non-zero: zed's notebook cannot be read
    assert row()["score"] == "4"
    main(["feedback"])
    hand_in(tiny.CORRECT | {"relu_backward": tiny.SIGN_FLIPPED}, "again")
    capsys.readouterr()
    stale = row()
    assert (stale["score"], stale["flags"], stale["needs_manual_grade"]) == (
        "",
        f"not-graded({NAME})",
        "yes",
    ), stale
    main(["feedback"])
    said = capsys.readouterr().out
    assert f"no page for sam/{A}: handed in again since it was graded" in said, said
    assert "(the page there is for the notebook handed in before)" in said, said
    main(["report", "--html", str(tmp_path / "report.html")])
    assert "not counted: 2 submission(s) without a grade of their own" in capsys.readouterr().out
    main(["autograde", "--cell-timeout", "10"])
    assert row()["score"] == "2"


def test_a_dropped_mark_stays_flagged_when_the_grader_dies_before_writing_the_result(
    tiny_master, exported, tmp_path, monkeypatch
):
    """A grader that dies after the gradebook dropped a mark given by hand (the notebook came
    in again) but before the result naming it was written: graded again, the cell still waits
    for a human. The gradebook holds the new notebook's time by then, so only what the grader
    noted before that commit can tell that the mark was dropped."""
    from grader import autograde

    _hand_in(tmp_path, tiny_master, "kim", tiny.CORRECT, "first")
    _mark_by_hand("kim", 0.5)
    write_whole = course.write_whole

    def dies_at_the_result(path, *args, **kwargs):
        if path == autograde.result_path(A, "kim"):
            raise OSError("the grader died here")
        return write_whole(path, *args, **kwargs)

    monkeypatch.setattr(course, "write_whole", dies_at_the_result)
    _hand_in(
        tmp_path, tiny_master, "kim", tiny.CORRECT | {"relu_backward": tiny.SIGN_FLIPPED}, "new"
    )
    monkeypatch.setattr(course, "write_whole", write_whole)
    main(["autograde", "--cell-timeout", "10"])  # graded again: its last grading failed
    row = _exported_row("kim")
    assert row["flags"] == "manual-mark-dropped(test_add)", row
    assert row["needs_manual_grade"] == "yes", row
    _mark_by_hand("kim", 1.0)
    main(["autograde", "--force", "--cell-timeout", "10"])
    assert _exported_row("kim")["flags"] == "manual-mark-kept(test_add)"

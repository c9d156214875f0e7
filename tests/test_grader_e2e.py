"""End to end on the course's own notebooks: a synthetic class is collected, autograded with two
workers, given feedback, exported and reported; the formgrader shows the same workspace.

Students: one with every answer correct per assignment, one with nothing answered, students
carrying the wrong-answer fixtures of ``tests/fixtures/answers`` (one fixture per exercise each),
and the broken cases: a dead kernel, an endless scratch cell, a pasted test cell and a deleted one.
"""

import copy
import csv
import json
import os
import shutil

import nbformat
import nbharness as nh
import pytest

from grader import course
from grader.__main__ import main

pytestmark = pytest.mark.slow
# assignments whose student notebook has been released
IDS = [a for a in nh.assignments() if any((nh.NOTEBOOKS / a).glob("*.ipynb"))]


def _plan():
    """``{student: (assignment, notebook, {exercise: expect}, broken flag or None)}``."""
    plan = {}
    for aid in IDS:
        plan[f"correct-{aid}"] = (aid, nh.student_notebook(aid), {}, None)
        plan[f"blank-{aid}"] = (aid, nh.student_notebook(aid, solved=False), None, None)
        by_exercise = {}
        for fx in nh.fixtures(aid):
            by_exercise.setdefault(fx.exercise, []).append(fx)
        for k in range(max((len(v) for v in by_exercise.values()), default=0)):
            picked = {e: fxs[k] for e, fxs in by_exercise.items() if k < len(fxs)}
            nb = nh.student_notebook(aid, {e: fx.source for e, fx in picked.items()})
            plan[f"fixtures{k}-{aid}"] = (aid, nb, {e: fx.expect for e, fx in picked.items()}, None)
    aid = IDS[0]
    base = nh.student_notebook(aid)
    first_test = next(i for i, c in enumerate(base.cells) if nh.is_test(c))

    def variant(edit):
        nb = copy.deepcopy(base)
        edit(nb.cells)
        return nb

    def scratch_cell(source):
        return lambda cells: cells.insert(first_test, nbformat.v4.new_code_cell(source))

    broken = {
        "crash": (scratch_cell("import os\nos._exit(3)"), "dead-kernel"),
        "endless": (scratch_cell("while True:\n    pass"), "timeout"),
        "pasted": (
            lambda cells: cells.insert(first_test + 1, copy.deepcopy(cells[first_test])),
            "duplicated-cell",
        ),
        "deleted": (lambda cells: cells.pop(first_test), "missing-cell"),
    }
    for sid, (edit, flag) in broken.items():
        plan[sid] = (aid, variant(edit), {}, flag)
    return plan


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    if not IDS:
        pytest.skip("no course notebooks in solutions/ yet")
    root = tmp_path_factory.mktemp("course")
    saved = os.environ.get(course.WORKSPACE_ENV)
    # Inside the repository (git-ignored artifacts/): the formgrader only serves a course
    # folder that lies under the server's root.
    workspace = course.REPO / "artifacts" / f"e2e-grading-{os.getpid()}"
    shutil.rmtree(workspace, ignore_errors=True)
    os.environ[course.WORKSPACE_ENV] = str(workspace)
    plan = _plan()
    for sid, (aid, nb, *_) in plan.items():
        path = root / "class" / sid / aid / nh.notebook_path(aid).name
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
    assert main(["collect", str(root / "class")]) == 0
    # The endless cell is in the first assignment, graded with a short cell limit; the others
    # keep the default limit, which a loaded machine needs for the training notebook's cells.
    assert main(["autograde", "-j", "2", "--cell-timeout", "10", IDS[0]]) == 0
    if IDS[1:]:
        assert main(["autograde", "-j", "2", *IDS[1:]]) == 0
    assert main(["feedback"]) == 0
    assert main(["export"]) == 0
    assert main(["export", "--wide"]) == 0
    assert main(["report"]) == 0
    yield plan
    shutil.rmtree(workspace, ignore_errors=True)
    if saved is None:
        os.environ.pop(course.WORKSPACE_ENV, None)
    else:
        os.environ[course.WORKSPACE_ENV] = saved


def _result(aid, sid):
    return json.loads((course.folder("results") / aid / f"{sid}.json").read_text())


def test_class_is_big_enough(graded_course):
    assert len(graded_course) >= 12


def test_every_student_scored_and_flagged_as_planted(graded_course):
    for sid, (aid, _, planted, broken) in graded_course.items():
        r = _result(aid, sid)
        full = sum(p for _, p, *_ in r["grades"].values())
        score = sum(s or 0 for s, *_ in r["grades"].values())
        kinds = [kind for kind, _ in r["flags"]]
        assert kinds == ([broken] if broken else []), (sid, r["flags"])
        if planted is None:
            assert score == 0, sid
            continue
        exercises = {e["name"]: e for e in r["exercises"]}
        for name, ex in exercises.items():
            expect = planted.get(name, "pass")
            if expect == "pass":
                assert ex["passed"], (sid, name, ex)
            else:
                assert not ex["passed"] and expect in ex["mistakes"], (sid, name, ex)
        if all(v == "pass" for v in planted.values()):
            assert score == full, (sid, score, full)


def test_csv_columns(graded_course):
    with open(course.folder("exports") / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:8] == [
        "student_id", "assignment", "score", "max_score", "needs_manual_grade", "flags",
        "mistakes", "warnings",
    ]  # fmt: skip
    exercises = list(rows[0])[8:]
    assert len({name.casefold() for name in exercises}) == len(exercises), exercises
    assert all(name.split(":")[0] in IDS for name in exercises), exercises
    by = {(r["student_id"], r["assignment"]): r for r in rows}
    for sid, (aid, *_, broken) in graded_course.items():
        row = by[(sid, aid)]
        assert (row["needs_manual_grade"] == "yes") == (broken == "dead-kernel"), row
        if broken:
            assert row["flags"].startswith(broken), row


def test_wide_csv_has_one_row_per_student(graded_course):
    """Each student handed in one assignment: the others are 0 in the wide file, as in the long
    one, and the totals add up."""
    with open(course.folder("exports") / "grades.csv", newline="") as f:
        by = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(f)}
    with open(course.folder("exports") / "grades-wide.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["student_id", *IDS, "total", "max_total"]
    assert [r["student_id"] for r in rows] == sorted(graded_course)
    full = sum(float(by[(rows[0]["student_id"], aid)]["max_score"]) for aid in IDS)
    for row in rows:
        sid, handed_in = row["student_id"], graded_course[row["student_id"]][0]
        assert [row[aid] for aid in IDS] == [by[(sid, aid)]["score"] for aid in IDS], row
        assert all(row[aid] == "0" for aid in IDS if aid != handed_in), row
        assert float(row["total"]) == float(row[handed_in]), row
        assert float(row["max_total"]) == full, row


def test_report_counts_what_was_planted(graded_course):
    rows = json.loads((course.folder("exports") / "report.json").read_text())
    counts = {(r["assignment"], r["exercise"]): r["mistakes"] for r in rows}
    planted = {}
    for aid, _, fixtures, _ in graded_course.values():
        if fixtures is None:  # handed in blank: every exercise is not implemented
            fixtures = {r["exercise"]: "not-implemented" for r in rows if r["assignment"] == aid}
        for name, expect in fixtures.items():
            if expect != "pass":
                planted[(aid, name, expect)] = planted.get((aid, name, expect), 0) + 1
    for (aid, name, key), n in planted.items():
        assert counts[(aid, name)].get(key) == n, (aid, name, key, counts[(aid, name)])


def test_formgrader_lists_the_workspace(graded_course):
    from lab_server import running_lab

    with running_lab(workspace=course.workspace()) as lab:
        names = {a["name"] for a in lab.get_json("formgrader/api/assignments")}
        assert set(IDS) <= names, names
        aid = IDS[0]
        submissions = lab.get_json(f"formgrader/api/submissions/{aid}")
        students = {s["student"] for s in submissions}
        expected = {sid for sid, (a, *_) in graded_course.items() if a == aid}
        assert expected <= students, (expected - students, lab.log_tail())
        # graded, with the grader's scores (nbgrader checks the submission's timestamp.txt)
        for sub in submissions:
            if sub["student"] in expected:
                grades = _result(aid, sub["student"])["grades"].values()
                assert sub["autograded"], sub
                assert sub["score"] == sum(s or 0 for s, *_ in grades), sub

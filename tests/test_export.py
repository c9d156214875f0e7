"""The grades export on a class made up in the test, without grading anything: two assignments
whose exercise names differ only in case (as ``Sigmoid`` in 02 and ``sigmoid`` in 03), a student
who handed in one assignment only, and one whose notebook was never graded."""

import csv
from datetime import datetime

import pytest

from grader import course, export, gradebook, scoring

A2, A3 = "02-computation-graphs", "03-sigmoid"
# {assignment: {grade_id: exercise}}, in notebook order
CELLS = {
    A2: {"Relu": "Relu", "test_Relu": "Relu", "test_Sigmoid": "Sigmoid"},
    A3: {"test_sigmoid": "sigmoid", "test_sigmoid_prime": "sigmoid_prime"},
}
MAX = {A2: 5.0, A3: 6.0}
HANDED_IN = datetime(2026, 11, 2, 9, 30)  # every submission's time, as collect stamps it
# {assignment: {student: gradebook entry}}: bob did not hand in 03, carl's 03 was never graded
# and carl did not hand in 02
BOOK = {
    A2: {
        "alice": {"score": 4.5, "max_score": 5.0, "needs_manual_grade": False,
                  "grades": {"Relu": None, "test_Relu": 2.5, "test_Sigmoid": 2.0}},
        "bob": {"score": 1.0, "max_score": 5.0, "needs_manual_grade": False,
                "grades": {"Relu": None, "test_Relu": 1.0, "test_Sigmoid": 0.0}},
    },
    A3: {
        "alice": {"score": 6.0, "max_score": 6.0, "needs_manual_grade": False,
                  "grades": {"test_sigmoid": 3.0, "test_sigmoid_prime": 3.0}},
    },
}  # fmt: skip


@pytest.fixture
def made_up_class(tmp_path, monkeypatch):
    """The class above as what ``export`` reads, in a workspace of its own."""
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    submitted = {
        (sid, aid): [course.folder("submitted") / sid / aid / "nb.ipynb"]
        for aid, book in BOOK.items()
        for sid in book
    }
    submitted[("carl", A3)] = [course.folder("submitted") / "carl" / A3 / "nb.ipynb"]
    for (sid, aid), (path,) in submitted.items():
        path.parent.mkdir(parents=True)
        course.stamp(path.parent, HANDED_IN)
        (course.folder("autograded") / sid / aid).mkdir(parents=True)
        (course.folder("autograded") / sid / aid / path.name).touch()
    monkeypatch.setattr(export, "submitted_assignments", lambda: list(CELLS))
    monkeypatch.setattr(export, "graded_assignments", lambda: list(CELLS))
    monkeypatch.setattr(export, "cell_exercises", lambda aid: dict(CELLS[aid]))
    monkeypatch.setattr(export, "answer_cells", lambda aid: {"Relu"} if aid == A2 else set())
    monkeypatch.setattr(export, "max_score", lambda aid: MAX[aid])
    monkeypatch.setattr(export, "submissions", lambda: submitted)
    monkeypatch.setattr(export, "results", lambda aid: {})
    monkeypatch.setattr(gradebook, "students", lambda: ["alice", "bob"])
    book = {
        aid: {sid: e | {"submitted_at": HANDED_IN} for sid, e in b.items()}
        for aid, b in BOOK.items()
    }
    monkeypatch.setattr(gradebook, "scores", lambda aid: book[aid])
    return tmp_path


def read(path):
    """``(header, rows)`` of the CSV file at ``path``."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def long_rows(folder):
    """The default export's rows as ``{(student, assignment): row}``."""
    _, rows = read(export.export(folder / "grades.csv", out=lambda line: None))
    return {(r["student_id"], r["assignment"]): r for r in rows}


def test_a_row_without_a_submission_has_the_assignments_maximum(made_up_class):
    rows = long_rows(made_up_class)
    assert rows[("bob", A3)]["flags"] == "not-submitted"
    assert (rows[("bob", A3)]["score"], rows[("bob", A3)]["max_score"]) == ("0", "6")
    assert (rows[("carl", A2)]["score"], rows[("carl", A2)]["max_score"]) == ("0", "5")
    assert rows[("carl", A3)]["max_score"] == "6" and rows[("carl", A3)]["score"] == ""
    assert all(row["max_score"] for row in rows.values())


def test_exercise_columns_are_named_after_their_assignment(made_up_class):
    header, rows = read(export.export(made_up_class / "grades.csv", out=lambda line: None))
    assert header[len(export.FIXED) :] == [
        f"{A2}:Relu", f"{A2}:Sigmoid", f"{A3}:sigmoid", f"{A3}:sigmoid_prime",
    ]  # fmt: skip
    alice = {r["assignment"]: r for r in rows if r["student_id"] == "alice"}
    assert (alice[A2][f"{A2}:Sigmoid"], alice[A2][f"{A3}:sigmoid"]) == ("2", "")
    assert (alice[A3][f"{A2}:Sigmoid"], alice[A3][f"{A3}:sigmoid"]) == ("", "3")


def test_no_two_columns_differ_only_in_case():
    columns = export.exercise_columns({A2: ["Sigmoid", "f", "F"], A3: ["sigmoid"]})
    assert columns == {
        (A2, "Sigmoid"): f"{A2}:Sigmoid",
        (A2, "f"): f"{A2}:f",
        (A2, "F"): f"{A2}:F (2)",
        (A3, "sigmoid"): f"{A3}:sigmoid",
    }


def test_the_readme_names_every_flag_of_the_export():
    from grader import worker

    readme = (course.REPO / "README.md").read_text()
    start = readme.index("-m grader export`")
    paragraph = readme[start : readme.index("\n\n", start)]
    kinds = (
        set(worker.EVENT_NOTES)
        | set(worker.REPAIR_NOTES) - {"restored-answer"}  # a note in the graded notebook only
        | scoring.MANUAL
        | {"not-submitted"}
    )
    assert {kind for kind in kinds if f"`{kind}`" not in paragraph} == set()


def test_the_wide_export_has_one_row_per_student_and_a_column_per_assignment(made_up_class):
    from grader.__main__ import main

    assert main(["export", "--wide"]) == 0
    header, rows = read(course.folder("exports") / "grades-wide.csv")
    assert header == ["student_id", A2, A3, "total", "max_total"]
    assert [list(row.values()) for row in rows] == [
        ["alice", "4.5", "6", "10.5", "11"],
        ["bob", "1", "0", "1", "11"],  # nothing handed in for 03: 0, as an LMS expects
        ["carl", "0", "", "", "11"],  # 03 not graded yet: no score and no total
    ]
    assert not (course.folder("exports") / "grades.csv").exists(), "the long file is left alone"


def test_the_wide_export_for_canvas_names_the_id_column_and_has_no_totals(made_up_class):
    from grader.__main__ import main

    argv = ["export", "--wide", "--no-totals", "--id-column", "SIS Login ID"]
    assert main(argv) == 0
    header, rows = read(course.folder("exports") / "grades-wide.csv")
    assert header == ["SIS Login ID", A2, A3]
    assert [list(row.values()) for row in rows] == [["alice", "4.5", "6"], ["bob", "1", "0"],
                                                    ["carl", "0", ""]]  # fmt: skip


@pytest.mark.parametrize("name", ["Username", "Student_ID"])
def test_the_long_export_takes_a_name_for_the_id_column(made_up_class, name):
    path = export.export(made_up_class / "g.csv", out=lambda line: None, id_column=name)
    header, rows = read(path)
    assert header[:2] == [name, "assignment"]
    assert {row[name] for row in rows} == {"alice", "bob", "carl"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--no-totals"], "--no-totals goes with --wide"),
        (["--wide", "--id-column", " "], "--id-column needs a name"),
        (["--wide", "--id-column", "TOTAL"], "has a column of that name"),
        (["--id-column", "Assignment"], "has a column of that name"),
    ],
)
def test_export_options_that_cannot_work_are_refused_in_one_line(
    made_up_class, capsys, argv, message
):
    from grader.__main__ import main

    assert main(["export", *argv]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not course.folder("exports").exists() or not any(course.folder("exports").iterdir())


def test_a_notebook_handed_in_again_since_it_was_graded_has_no_grade(made_up_class):
    """The gradebook's grades are for the notebook handed in before: until autograde grades the
    new one, neither file shows them (an LMS import would take them for the new work)."""
    from grader.autograde import failure_path

    course.stamp(course.folder("submitted") / "alice" / A2, datetime(2026, 11, 3, 8, 0))
    row = long_rows(made_up_class)[("alice", A2)]
    assert (row["score"], row["max_score"], row["flags"]) == ("", "5", "not-graded(nb.ipynb)")
    assert row["needs_manual_grade"] == "yes" and not row.get("A2:Relu"), row
    # graded again, and that failed: the old grade is still not this notebook's
    failure_path(A2, "alice").parent.mkdir(parents=True)
    failure_path(A2, "alice").write_text("KeyError: 'x'\n")
    row = long_rows(made_up_class)[("alice", A2)]
    assert (row["score"], row["flags"]) == ("", "grader-error(nb.ipynb)"), row
    _, wide = read(export.export(made_up_class / "wide.csv", out=lambda line: None, wide=True))
    alice = next(r for r in wide if r["student_id"] == "alice")
    assert (alice[A2], alice["total"]) == ("", ""), alice


def test_a_failed_regrade_of_the_same_notebook_keeps_its_grade_flagged(made_up_class):
    """The notebook graded is the one handed in (say ``autograde --force`` failed on it): its
    grade stands, flagged for a human."""
    from grader.autograde import failure_path

    failure_path(A2, "bob").parent.mkdir(parents=True)
    failure_path(A2, "bob").write_text("KeyError: 'x'\n")
    row = long_rows(made_up_class)[("bob", A2)]
    assert (row["score"], row["flags"], row["needs_manual_grade"]) == (
        "1",
        "grader-error(nb.ipynb)",
        "yes",
    ), row


@pytest.mark.parametrize("wide", [False, True])
def test_export_names_the_submissions_that_need_a_look(made_up_class, wide):
    """Rows a human must check before an import (carl's 03 has no grade) are named on a line of
    their own, whichever file is written; none when there are none."""
    said = []
    export.export(made_up_class / "grades.csv", out=said.append, wide=wide)
    assert said[1] == (
        "1 submission(s) need a look before you import the grades (needs_manual_grade = yes; "
        f"their flags say why): carl/{A3}"
    ), said
    rows = [
        {"student_id": f"s{k}", "assignment": A2, "needs_manual_grade": "yes"} for k in range(12)
    ]
    assert export.needing_a_look(rows).endswith(f"s9/{A2} and 2 more")
    assert export.needing_a_look(rows[:0]) == ""


@pytest.mark.parametrize(
    "name, message",
    [("grades.xlsx", "the export is CSV, name it .csv"), (" ", "--to needs a file name")],
)
def test_export_refuses_a_file_that_is_not_csv_before_it_writes(
    made_up_class, monkeypatch, name, message
):
    """The library function checks its own file, as the command line does: nothing is written."""
    monkeypatch.chdir(made_up_class)  # where a name without a folder would go
    to = made_up_class / name if name.strip() else name
    with pytest.raises(course.UsageError, match=message):
        export.export(to, out=lambda line: None)
    assert sorted(p.name for p in made_up_class.iterdir()) == ["workspace"]
    assert not course.folder("exports").exists()


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_an_export_stopped_while_written_leaves_the_last_file_whole(
    made_up_class, monkeypatch, stop
):
    """Ctrl+C or a full disk while the file is written leaves the last export as it was, never a
    file cut short that an LMS would import, and no part of the new one beside it."""
    to = made_up_class / "grades.csv"
    to.write_text("the last export\n")

    def replace(source, destination):
        raise stop

    monkeypatch.setattr(course.os, "replace", replace)
    with pytest.raises(type(stop) if isinstance(stop, OSError) else stop):
        export.export(to, out=lambda line: None)
    assert to.read_text() == "the last export\n"
    assert sorted(p.name for p in made_up_class.iterdir()) == ["grades.csv", "workspace"]


def test_two_exports_to_one_file_at_once_both_finish(made_up_class, monkeypatch):
    """Another process writing the same file while this export writes it (two exports run at
    once): each writes a part of its own, and both finish; the file is one of them, whole."""
    import os
    import subprocess
    import sys

    to = made_up_class / "grades.csv"
    other = "from grader import course; import sys; course.write_whole(sys.argv[1], 'theirs\\n')"
    replace = os.replace

    def meanwhile(source, destination):
        subprocess.run([sys.executable, "-c", other, str(to)], check=True)
        replace(source, destination)

    monkeypatch.setattr(course.os, "replace", meanwhile)
    export.export(to, out=lambda line: None)
    assert to.read_text().startswith("student_id,")
    assert sorted(p.name for p in made_up_class.iterdir()) == ["grades.csv", "workspace"]

"""``export [--wide] [--no-totals] [--id-column NAME] [--to FILE]``: grades as CSV, one row per
student and assignment, or with ``--wide`` one row per student and one column per assignment
(``per_student``), as LMS gradebook imports take them. ``--no-totals`` leaves the wide file's
``total`` and ``max_total`` out (Canvas would make them assignments); ``--id-column`` names the
first column as the LMS calls its ids (Canvas: ``SIS Login ID``), instead of ``student_id``.

Columns: ``student_id, assignment, score, max_score, needs_manual_grade, flags, mistakes,
warnings`` and then one column of points per exercise, named ``assignment:exercise`` (empty
when the exercise belongs to another assignment). Scores come from the gradebook, so marks
changed in the formgrader are exported; flags, mistakes and warnings come from the last
autograde. Every row has the assignment's ``max_score``. A student without a submission for an
assignment gets 0 and the flag ``not-submitted``. Every notebook in the workspace's
``submitted/`` has a row: one that has no grade (grading it failed, it was never graded, or it
was handed in again since it was graded: the gradebook's grades are then for the earlier
notebook) gets an empty score and the flag ``grader-error`` or ``not-graded``.

``flags``: ``kind(cell)`` items joined by ``; `` with kind ``timeout``, ``dead-kernel``,
``not-run``, ``restored-cell``, ``missing-cell``, ``duplicated-cell``, ``manual-mark-dropped``
(a mark given by hand to an earlier submission, dropped when the student handed in again; it
stays until the cell is marked again), ``manual-mark-kept`` (a cell graded again that keeps the
mark given by hand: the gradebook asks for a human to check it still fits), or
``kind(notebook)``
with kind ``grader-error`` (the last autograde of the notebook failed; its message is in
autograde's output and in ``results/<assignment>/<student>.error``) or ``not-graded``
(autograde has not graded it).
``mistakes``: ``exercise:key`` items. ``needs_manual_grade`` is ``yes`` when a cell waits for a
human (manually graded answers, cells lost with a dead kernel, answer cells that were missing or
put back together, marks given by hand to an earlier submission) or the notebook has no grade.
"""

import csv
import io

from . import course, gradebook
from .autograde import failure_path
from .classresults import (
    GRADED,
    answer_cells,
    cell_exercises,
    grade_status,
    graded_assignments,
    max_score,
    nothing_graded,
    results,
    submissions,
    submitted_assignments,
    while_in_use,
)
from .scoring import needs_human

FIXED = [
    "student_id",
    "assignment",
    "score",
    "max_score",
    "needs_manual_grade",
    "flags",
    "mistakes",
    "warnings",
]


def grading_flags(paths, status):
    """``[(kind, notebook)]`` for the submitted notebooks ``paths`` of a submission whose
    ``grade_status`` is ``status``: ``grader-error`` when the last autograde of one failed
    (``autograde.failure_path``; a grade of that same notebook from an earlier autograde may
    still be shown), ``not-graded`` when the gradebook has no grade for the notebook handed in
    now, or it has no autograded copy."""
    flags = []
    for path in paths:
        student, aid = path.parent.parent.name, path.parent.name
        if failure_path(aid, student).exists():
            flags.append(("grader-error", path.name))
        elif (
            status != GRADED
            or not (course.folder("autograded") / student / aid / path.name).exists()
        ):
            flags.append(("not-graded", path.name))
    return flags


def exercise_columns(per_assignment):
    """``{(assignment, exercise): column name}`` for ``per_assignment`` (``{assignment: [exercise
    names]}``): ``assignment:exercise``, so that no two names are equal ignoring case, as
    spreadsheets and LMS imports compare them (``02-computation-graphs:Sigmoid`` and
    ``03-sigmoid:sigmoid``). Exercises of one assignment whose names differ only in case get
    `` (2)``, `` (3)``, ... after the later ones."""
    columns, taken = {}, set()
    for aid, names in per_assignment.items():
        for name in names:
            column, n = f"{aid}:{name}", 1
            while column.casefold() in taken:
                n += 1
                column = f"{aid}:{name} ({n})"
            taken.add(column.casefold())
            columns[(aid, name)] = column
    return columns


def rows():
    """``(header, rows)`` of the export, rows as dicts."""
    ids = submitted_assignments()
    cells = {aid: cell_exercises(aid) for aid in ids}
    per_assignment = {aid: list(dict.fromkeys(m.values())) for aid, m in cells.items()}
    columns = exercise_columns(per_assignment)
    header = FIXED + list(columns.values())
    submitted = submissions()
    students = sorted(set(gradebook.students()) | {sid for sid, _ in submitted})
    out = []
    for aid in ids:
        stored = results(aid)
        book = gradebook.scores(aid)
        status = grade_status(aid, book, submitted)
        answers = answer_cells(aid)
        full = f"{max_score(aid):g}"
        for sid in students:
            row = {"student_id": sid, "assignment": aid}
            paths = submitted.get((sid, aid), [])
            ungraded = grading_flags(paths, status.get(sid))
            if sid not in book and not paths:
                row.update(score=0, max_score=full, needs_manual_grade="no", flags="not-submitted")
                out.append(row)
                continue
            if sid not in book or status.get(sid, GRADED) != GRADED:
                # no grade, or grades for what the student handed in before: none for this work
                row.update(
                    score="",
                    max_score=full,
                    needs_manual_grade="yes",
                    flags="; ".join(f"{kind}({where})" for kind, where in ungraded),
                )
                out.append(row)
                continue
            entry, result = book[sid], stored.get(sid, {})
            flags = [tuple(flag) for flag in result.get("flags", [])] + ungraded
            manual = entry["needs_manual_grade"] or needs_human(flags, answers)
            row.update(
                score=f"{entry['score']:g}",
                max_score=f"{entry['max_score']:g}",
                needs_manual_grade="yes" if manual else "no",
                flags="; ".join(f"{kind}({where})" for kind, where in flags),
                mistakes="; ".join(
                    f"{ex['name']}:{key}"
                    for ex in result.get("exercises", [])
                    for key in ex["mistakes"]
                ),
                warnings="; ".join(
                    f"{ex['name']}:{w}"
                    for ex in result.get("exercises", [])
                    for w in ex["warnings"]
                ),
            )
            points = {}
            for gid, score in entry["grades"].items():
                name = cells[aid].get(gid, gid)
                points[name] = points.get(name, 0.0) + (score or 0.0)
            for name, value in points.items():
                if (aid, name) in columns:
                    row[columns[(aid, name)]] = f"{value:g}"
            out.append(row)
    return header, out


def per_student(table):
    """``(header, rows)`` of the wide export, made from the rows ``table`` of ``rows()``: one row
    per student with ``student_id``, the student's score in each assignment (a column named
    after the assignment; 0 when not submitted, empty while a notebook has no grade), then
    ``total`` (empty while one of those scores is) and ``max_total``, the sum of the
    assignments' maxima."""
    assignments = list(dict.fromkeys(row["assignment"] for row in table))
    maxima = {row["assignment"]: float(row["max_score"]) for row in table}
    max_total = f"{sum(maxima.values()):g}"
    students = {}
    for row in table:
        sid = row["student_id"]
        students.setdefault(sid, {"student_id": sid})[row["assignment"]] = str(row["score"])
    for row in students.values():
        scores = [row[aid] for aid in assignments]
        row["total"] = "" if "" in scores else f"{sum(map(float, scores)):g}"
        row["max_total"] = max_total
    header = ["student_id", *assignments, "total", "max_total"]
    return header, [students[sid] for sid in sorted(students)]


TOTALS = ["total", "max_total"]


def rename_id(header, table, name):
    """``(header, table)`` with the ``student_id`` column named ``name``; ``UsageError`` when
    ``name`` is empty or another column has it (ignoring case, as LMS imports compare)."""
    name = name.strip()
    if not name:
        raise course.UsageError("--id-column needs a name, e.g. --id-column 'SIS Login ID'")
    if name == "student_id":
        return header, table
    if name.casefold() in {column.casefold() for column in header if column != "student_id"}:
        raise course.UsageError(f"--id-column {name!r}: the export has a column of that name")
    renamed = [{name if key == "student_id" else key: v for key, v in row.items()} for row in table]
    return [name if column == "student_id" else column for column in header], renamed


def csv_file(to, wide=False):
    """Where the export goes: ``to``, else ``exports/grades.csv`` (with ``wide``
    ``exports/grades-wide.csv``) in the workspace. ``UsageError`` when ``to`` is an empty name
    (as an unset shell variable gives), a place ``course.output_file`` refuses, or a file not
    named ``.csv`` (a folder is left to fail as one when it is written)."""
    if to is not None and not str(to).strip():
        raise course.UsageError("--to needs a file name, e.g. --to grades.csv")
    path = course.output_file(to, "grades-wide.csv" if wide else "grades.csv")
    if not path.is_dir() and path.suffix.lower() != ".csv":
        raise course.UsageError(f"{path}: the export is CSV, name it .csv")
    return path


def export(to=None, out=print, wide=False, totals=True, id_column="student_id"):
    """Write the CSV to ``to`` (see ``csv_file``), or with ``wide`` the one of ``per_student``,
    without its ``total`` and ``max_total`` when ``totals`` is False; the id column is named
    ``id_column``. Returns the file's path. ``UsageError`` when ``to`` cannot be the export's
    file, or nothing has been graded yet. It does not wait for an autograde (or another
    grader command) that is running in the workspace: it says so first (``while_in_use``), and
    exports the grades recorded so far."""
    path = csv_file(to, wide)
    while_in_use("export", out)
    if not graded_assignments():
        raise course.UsageError(nothing_graded())
    if not totals and not wide:
        raise course.UsageError("--no-totals goes with --wide: the long file has no totals")
    header, table = rows()
    attention = needing_a_look(table)
    if wide:
        header, table = per_student(table)
        if not totals:
            header = [column for column in header if column not in TOTALS]
            table = [{k: v for k, v in row.items() if k not in TOTALS} for row in table]
    header, table = rename_id(header, table, id_column)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=header, restval="")
    writer.writeheader()
    writer.writerows(table)
    course.write_whole(path, text.getvalue())  # never half written, to be imported by an LMS
    out(f"wrote {len(table)} row(s) to {path}")
    if attention:
        out(attention)
    return path


SHOWN = 10  # submissions named by ``needing_a_look``; the others are counted


def needing_a_look(table):
    """A line naming the submissions of the long ``table`` with ``needs_manual_grade = yes``
    (no grade, or a cell that waits for a human): what to look at before an import; "" when
    there are none."""
    names = [
        f"{r['student_id']}/{r['assignment']}" for r in table if r["needs_manual_grade"] == "yes"
    ]
    if not names:
        return ""
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return (
        f"{len(names)} submission(s) need a look before you import the grades "
        f"(needs_manual_grade = yes; their flags say why): {', '.join(names[:SHOWN])}{more}"
    )

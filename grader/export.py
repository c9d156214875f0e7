"""``export [--to FILE]``: grades as CSV, one row per student and assignment.

Columns: ``student_id, assignment, score, max_score, needs_manual_grade, flags, mistakes,
warnings`` and then one column of points per exercise (empty when the exercise belongs to
another assignment). Scores come from the gradebook, so marks changed in the formgrader are
exported; flags, mistakes and warnings come from the last autograde. A student without a
submission for an assignment gets 0 and the flag ``not-submitted``.

``flags``: ``kind(cell)`` items joined by ``; `` with kind ``timeout``, ``dead-kernel``,
``not-run``, ``restored-cell``, ``missing-cell``, ``duplicated-cell``. ``mistakes``:
``exercise:key`` items. ``needs_manual_grade`` is ``yes`` when a cell waits for a human
(manually graded answers, or cells lost with a dead kernel).
"""

import csv
from pathlib import Path

from . import course, gradebook
from .classresults import NOTHING_GRADED, cell_exercises, graded_assignments, results

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
MANUAL = {"dead-kernel"}


def _columns(per_assignment):
    """``{(assignment, exercise): column name}``; the assignment is prefixed only on clashes."""
    count = {}
    for names in per_assignment.values():
        for name in names:
            count[name] = count.get(name, 0) + 1
    return {
        (aid, name): name if count[name] == 1 else f"{aid}:{name}"
        for aid, names in per_assignment.items()
        for name in names
    }


def rows():
    """``(header, rows)`` of the export, rows as dicts."""
    ids = graded_assignments()
    cells = {aid: cell_exercises(aid) for aid in ids}
    per_assignment = {aid: list(dict.fromkeys(m.values())) for aid, m in cells.items()}
    columns = _columns(per_assignment)
    header = FIXED + list(columns.values())
    students = gradebook.students()
    out = []
    for aid in ids:
        stored = results(aid)
        book = gradebook.scores(aid)
        for sid in students:
            row = {"student_id": sid, "assignment": aid}
            if sid not in book:
                row.update(score=0, max_score="", needs_manual_grade="no", flags="not-submitted")
                out.append(row)
                continue
            entry, result = book[sid], stored.get(sid, {})
            flags = [f"{kind}({where})" for kind, where in result.get("flags", [])]
            manual = entry["needs_manual_grade"] or any(
                kind in MANUAL for kind, _ in result.get("flags", [])
            )
            row.update(
                score=f"{entry['score']:g}",
                max_score=f"{entry['max_score']:g}",
                needs_manual_grade="yes" if manual else "no",
                flags="; ".join(flags),
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


def export(to=None, out=print):
    """Write the CSV (default ``exports/grades.csv`` in the workspace); returns its path.
    ``UsageError`` when nothing has been graded yet."""
    if not graded_assignments():
        raise course.UsageError(NOTHING_GRADED)
    header, table = rows()
    path = Path(to) if to else course.folder("exports") / "grades.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(table)
    out(f"wrote {len(table)} row(s) to {path}")
    return path

"""The grader's side of nbgrader's gradebook: the only code that writes to it.

Only the parent process of ``autograde`` calls these functions (SQLite wants one writer);
the formgrader and ``export`` read the same database.
"""

import ast
import contextlib
import functools
import json
import warnings
from pathlib import Path

from . import course, nbgrader_parts

COURSE_ID = "backprop-from-scratch"
LOCK_WAIT = 5.0  # seconds a command waits for a program that holds the gradebook (SQLite's default)


@functools.cache
def schema_head():
    """The newest revision of nbgrader's database schema, read from its migration scripts; None
    unless there is exactly one. nbgrader stamps a new gradebook with it, found by running
    ``alembic heads`` in a new process: 3-4 s of the first ``autograde``."""
    nbgrader_parts.load()
    from nbgrader.dbutil import ALEMBIC_DIR

    revisions, parents = set(), set()
    for script in Path(ALEMBIC_DIR, "versions").glob("*.py"):
        found = {}
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                name = getattr(node.targets[0], "id", None)
                if name in ("revision", "down_revision"):
                    found[name] = ast.literal_eval(node.value)
        if "revision" in found:
            revisions.add(found["revision"])
            down = found.get("down_revision")
            parents.update(down if isinstance(down, (tuple, list)) else [down])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def recorded_submissions():
    """``{(assignment, student)}`` of the submissions the gradebook holds, read with SQLite
    alone (fast, no nbgrader): none when there is no gradebook yet, None when it cannot be read
    (the command that opens it says why)."""
    import sqlite3

    path = course.gradebook_file()
    if not path.exists():
        return set()
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            if not {"assignment", "submitted_assignment"} <= tables:
                return set()  # made, not yet set up
            rows = db.execute(
                "SELECT a.name, s.student_id FROM submitted_assignment s "
                "JOIN assignment a ON s.assignment_id = a.id"
            )
            return set(rows)
    except sqlite3.Error:
        return None


def _sqlite_error(error):
    """The ``sqlite3.Error`` that ``error`` comes from (itself, or one it was raised from or
    while handling, as SQLAlchemy and nbgrader wrap them), else None."""
    import sqlite3

    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, sqlite3.Error):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def unusable(error):
    """What the instructor is told when ``error`` says the gradebook cannot be used (another
    program holds it, it cannot be written, it is no database), naming it and what to do; else
    None."""
    import sqlite3

    code = getattr(_sqlite_error(error), "sqlite_errorcode", None)
    if code is None:
        return None
    kind = code & 0xFF  # SQLite's primary result code, without the extended part
    path = course.gradebook_file()
    if kind in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (
            f"{path}: the gradebook is locked by another program (a formgrader or grader "
            "command writing to it, a database tool with unsaved changes): close it or let it "
            "finish, and run this command again"
        )
    if kind in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN):
        return (
            f"{path}: the gradebook cannot be written (read-only): check the permissions of "
            "the file and of its folder"
        )
    if kind in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return (
            f"{path}: not a gradebook, or a damaged one: move it away and run "
            f"`{course.command()} autograde`, which grades every submission again into a new "
            "one (marks given by hand in the formgrader are not in it)"
        )
    return None


def _waiting(db_url):
    """``db_url`` with how long SQLite waits for a program that holds the gradebook (the
    formgrader saving a mark) before it gives up: ``LOCK_WAIT``."""
    return f"{db_url}{'&' if '?' in db_url else '?'}timeout={LOCK_WAIT}"


def stamp_without_alembic():
    """Have nbgrader stamp each gradebook it makes with ``schema_head``, read from its
    migration scripts, instead of running ``alembic heads`` in a new process (3-4 s). Nothing
    changes when the scripts do not name one head."""
    nbgrader_parts.load()
    import nbgrader.api

    if schema_head() is not None:
        nbgrader.api.get_alembic_version = schema_head


@contextlib.contextmanager
def open_gradebook():
    """nbgrader's ``Gradebook`` on the workspace's database, created when missing. It holds
    nbgrader's default course too, the one nbgrader's preprocessors open it with (GetGrades, in
    each of ``feedback``'s renderers at once): without it there, they would race to add it, and
    those that lose would fail."""
    stamp_without_alembic()
    from nbgrader.api import Gradebook

    course.workspace().mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), Gradebook(_waiting(course.db_url()), COURSE_ID) as gb:
        # nbgrader's "object not in session" warning on a new submission is harmless
        warnings.filterwarnings("ignore", message=".*not in session.*")
        gb.check_course()
        yield gb


def sync_assignment(assignment):
    """Record ``assignment``'s notebooks and cells in the gradebook (before its grades) as
    nbgrader's SaveCells does, from the masters in the grader's cache; unless it holds them
    already as its masters have them. Neither nbgrader's preprocessors nor nbconvert are
    imported (half a second of CPU). ``CellsChanged`` when a notebook with submissions would
    gain or lose cells (SaveCells refuses them too)."""
    from .master import Master

    masters = [Master.load(path, assignment) for path in course.source_notebooks(assignment)]
    with open_gradebook() as gb:
        _check_writable(gb)
        gb.update_or_create_assignment(assignment)
        if all(_recorded(gb, master) for master in masters):
            return
        for master in masters:
            _record_notebook(gb, master)


def _check_writable(gb):
    """Raise SQLite's error now (read-only, locked) when the open gradebook ``gb`` cannot be
    written, before ``autograde`` grades notebooks whose results it could not record: a write
    that is rolled back, which leaves the gradebook as it was."""
    from sqlalchemy import text

    try:
        gb.db.execute(text("UPDATE alembic_version SET version_num = version_num"))
    finally:
        gb.db.rollback()


KINDS = ("grade", "solution", "task", "source")  # nbgrader's kinds of cell record


class CellsChanged(course.UsageError):
    """A notebook with submissions in the gradebook whose cells in ``solutions/`` were added,
    removed or made another kind (nbgrader's SaveCells refuses them too): the gradebook cannot
    take them, and the message says what to do."""

    def __init__(self, master, recorded, cells):
        changes = [
            f"{what} {', '.join(sorted(names))}"
            for what, names in (("added", cells - recorded), ("removed", recorded - cells))
            if names
        ] or ["a cell made another kind"]
        source = course.SOURCE / master.assignment / f"{master.name}.ipynb"
        super().__init__(
            f"{source}: its graded cells changed since its submissions were graded "
            f"({'; '.join(changes)}), which the gradebook cannot take: put them back as they "
            f"were, or move {course.gradebook_file()} away and run `{course.command()} "
            "autograde`, which grades every submission again into a new gradebook (marks "
            "given by hand are not in it)"
        )


def _cells_to_record(nb):
    """What nbgrader's SaveCells records of notebook ``nb``'s cells: ``{kind: {grade_id:
    fields}}`` for each of ``KINDS``, ``fields`` the record's ``{field: value}``."""
    from nbgrader import utils

    cells = {kind: {} for kind in KINDS}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if utils.is_grade(cell):
            cells["grade"][gid] = {"max_score": float(meta["points"]), "cell_type": cell.cell_type}
        if utils.is_solution(cell):
            cells["solution"][gid] = {}
        if utils.is_task(cell):
            cells["task"][gid] = {"max_score": float(meta["points"]), "cell_type": cell.cell_type}
        if (
            utils.is_grade(cell)
            or utils.is_solution(cell)
            or utils.is_locked(cell)
            or utils.is_task(cell)
        ):
            cells["source"][gid] = {
                "cell_type": cell.cell_type,
                "locked": utils.is_locked(cell),
                "source": cell.source,
                "checksum": meta.get("checksum"),
            }
    return cells


def _recorded(gb, master):
    """True when the open gradebook ``gb`` holds ``master``'s notebook with its cells as they
    are."""
    from nbgrader.api import MissingEntry

    try:
        notebook = gb.find_notebook(master.name, master.assignment)
    except MissingEntry:
        return False
    for kind, cells in _cells_to_record(master.graded_nb()).items():
        recorded = {c.name: c for c in getattr(notebook, f"{kind}_cells")}
        if recorded.keys() != cells.keys():
            return False
        for gid, fields in cells.items():
            if any(getattr(recorded[gid], f) != value for f, value in fields.items()):
                return False
    return True


def _record_notebook(gb, master):
    """Record ``master``'s notebook and cells in the open gradebook ``gb`` as nbgrader's
    SaveCells preprocessor does (``generate_assignment`` runs it on the graded notebook): a
    notebook without submissions is removed and added again with its kernelspec, keeping its
    other fields (its id); one with submissions keeps its record, and ``CellsChanged`` when it
    would gain or lose cells. Each cell is added or updated with the fields
    ``_cells_to_record`` gives it, keeping the others (its id) from the record it had."""
    from nbgrader.api import MissingEntry

    name, aid = master.name, master.assignment
    nb = master.graded_nb()
    records = {}
    for kind, cells in _cells_to_record(nb).items():
        records[kind] = {}
        for gid, fields in cells.items():
            try:
                kept = getattr(gb, f"find_{kind}_cell")(gid, name, aid).to_dict()
            except MissingEntry:
                kept = {}
            else:
                for key in ("name", "notebook", "assignment"):
                    del kept[key]
            records[kind][gid] = kept | fields

    try:
        notebook = gb.find_notebook(name, aid)
    except MissingEntry:
        info = {}
    else:
        info = None
        if notebook.submissions:
            recorded = {c.name for kind in KINDS for c in getattr(notebook, f"{kind}_cells")}
            if any(
                set(records[kind]) != {c.name for c in getattr(notebook, f"{kind}_cells")}
                for kind in KINDS
            ):
                raise CellsChanged(master, recorded, {gid for r in records.values() for gid in r})
        else:
            info = notebook.to_dict()
            del info["name"]
            gb.remove_notebook(name, aid)
    if info is not None:
        info["kernelspec"] = json.dumps(nb.metadata.get("kernelspec", {}))
        gb.add_notebook(name, aid, **info)

    for kind in KINDS:
        for gid, fields in records[kind].items():
            getattr(gb, f"update_or_create_{kind}_cell")(gid, name, aid, **fields)


def record(gb, result, timestamp, dropped_before=()):
    """Store one graded submission's scores (from ``worker.grade``) in the open gradebook
    ``gb`` (from ``open_gradebook``), with the time it came in (``course.submitted_at``).

    Marks given by hand: a submission that came in again since it was last recorded keeps none
    of the marks given to the old one, and each cell whose mark was dropped waits for a human,
    also through later grading of the same notebook (``dropped_before``: the cells the last
    result named) until it is marked again. A cell that keeps its mark is flagged for review
    too, as nbgrader does: the mark may not fit the new automatic score. Returns ``(dropped,
    kept)``: the grade_ids of the cells whose mark was dropped (or still is), and of those
    with a mark kept. The caller commits (``gb.db.commit()``), once it has noted them where a
    grader that dies next still finds them (``autograde._save``)."""
    from nbgrader.api import MissingEntry

    sid, aid, nb_id = result["student"], result["assignment"], result["notebook"]
    gb.update_or_create_student(sid)
    try:
        submission = gb.find_submission(aid, sid)
    except MissingEntry:
        submission = gb.add_submission(aid, sid, timestamp=timestamp)
    resubmitted = submission.timestamp not in (None, timestamp)
    submission.timestamp = timestamp
    # One query for the notebook's grades (nbgrader's find_grade makes one per cell).
    grades = {g.name: g for g in gb.find_submission_notebook(nb_id, aid, sid).grades}
    dropped, kept = [], []
    for gid, (score, _points, *manual) in result["grades"].items():
        grade = grades[gid]
        if resubmitted and grade.manual_score is not None:
            grade.manual_score = None
            dropped.append(gid)
        elif grade.manual_score is not None:
            kept.append(gid)
        elif not resubmitted and gid in dropped_before:
            dropped.append(gid)  # not marked again yet
        grade.auto_score = score
        grade.needs_manual_grade = (
            score is None or grade.manual_score is not None or bool(manual) or gid in dropped
        )
    return dropped, kept


def scores(assignment):
    """``{student: {"score", "max_score", "needs_manual_grade", "grades": {grade_id: score},
    "submitted_at"}}`` for every submission of ``assignment`` (manual scores from the
    formgrader included); ``submitted_at``: when the submission these grades are for came in
    (``course.submitted_at``)."""
    out = {}
    with open_gradebook() as gb:
        for sub in gb.assignment_submissions(assignment):
            grades = {}
            for nb in sub.notebooks:
                for grade in nb.grades:
                    grades[grade.name] = grade.score
            out[sub.student.id] = {
                "score": sub.score,
                "max_score": sub.max_score,
                "needs_manual_grade": bool(sub.needs_manual_grade),
                "grades": grades,
                "submitted_at": sub.timestamp,
            }
    return out


def students():
    with open_gradebook() as gb:
        return sorted(s.id for s in gb.students)

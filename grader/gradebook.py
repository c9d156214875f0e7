"""The grader's side of nbgrader's gradebook: the only code that writes to it.

Only the parent process of ``autograde`` calls these functions (SQLite wants one writer);
the formgrader and ``export`` read the same database.
"""

import ast
import contextlib
import functools
import logging
import warnings
from pathlib import Path

from . import course, nbgrader_parts

COURSE_ID = "backprop-from-scratch"


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


@contextlib.contextmanager
def open_gradebook():
    """nbgrader's ``Gradebook`` on the workspace's database, created when missing."""
    nbgrader_parts.load()
    import nbgrader.api
    from nbgrader.api import Gradebook

    if schema_head() is not None:
        nbgrader.api.get_alembic_version = schema_head
    course.workspace().mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), Gradebook(course.db_url(), COURSE_ID) as gb:
        # nbgrader's "object not in session" warning on a new submission is harmless
        warnings.filterwarnings("ignore", message=".*not in session.*")
        yield gb


def sync_assignment(assignment):
    """Record ``assignment``'s notebooks and cells in the gradebook (before its grades), unless
    it holds them already as its masters have them: then nbgrader's preprocessors are neither
    imported nor run (half a second of every later ``autograde``)."""
    from .master import Master

    paths = course.source_notebooks(assignment)
    with open_gradebook() as gb:
        gb.update_or_create_assignment(assignment)
        if all(_recorded(gb, Master.load(path, assignment)) for path in paths):
            return
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    for path in paths:
        Master.load(path, assignment, course.db_url())


def _cells_to_record(nb):
    """What nbgrader's SaveCells records of notebook ``nb``'s cells, by kind and grade_id:
    ``{"grade": {id: (points, cell type)}, "solution": {id: ()}, "task": {...} like grade,
    "source": {id: (cell type, locked, source, checksum)}}``."""
    from nbgrader import utils

    cells = {"grade": {}, "solution": {}, "task": {}, "source": {}}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        if utils.is_grade(cell):
            cells["grade"][gid] = (float(meta["points"]), cell.cell_type)
        if utils.is_solution(cell):
            cells["solution"][gid] = ()
        if utils.is_task(cell):
            cells["task"][gid] = (float(meta["points"]), cell.cell_type)
        if (
            utils.is_grade(cell)
            or utils.is_solution(cell)
            or utils.is_locked(cell)
            or utils.is_task(cell)
        ):
            cells["source"][gid] = (
                cell.cell_type,
                utils.is_locked(cell),
                cell.source,
                meta.get("checksum"),
            )
    return cells


def _recorded_cells(notebook):
    """The same as ``_cells_to_record``, read from nbgrader's record of a notebook."""
    return {
        "grade": {c.name: (c.max_score, c.cell_type) for c in notebook.grade_cells},
        "solution": {c.name: () for c in notebook.solution_cells},
        "task": {c.name: (c.max_score, c.cell_type) for c in notebook.task_cells},
        "source": {
            c.name: (c.cell_type, c.locked, c.source, c.checksum) for c in notebook.source_cells
        },
    }


def _recorded(gb, master):
    """True when the open gradebook ``gb`` holds ``master``'s notebook with its cells as they
    are."""
    from nbgrader.api import MissingEntry

    try:
        notebook = gb.find_notebook(master.name, master.assignment)
    except MissingEntry:
        return False
    return _recorded_cells(notebook) == _cells_to_record(master.graded_nb())


def record(gb, result, timestamp, dropped_before=()):
    """Store one graded submission's scores (from ``worker.grade``) in the open gradebook
    ``gb`` (from ``open_gradebook``), with the time it came in (``course.submitted_at``).

    Marks given by hand: a submission that came in again since it was last recorded keeps none
    of the marks given to the old one, and each cell whose mark was dropped waits for a human,
    also through later grading of the same notebook (``dropped_before``: the cells the last
    result named) until it is marked again. A cell that keeps its mark is flagged for review
    too, as nbgrader does: the mark may not fit the new automatic score. Returns ``(dropped,
    kept)``: the grade_ids of the cells whose mark was dropped (or still is), and of those
    with a mark kept."""
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
    gb.db.commit()
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

"""The grader's side of nbgrader's gradebook: the only code that writes to it.

Only the parent process of ``autograde`` calls these functions (SQLite wants one writer);
the formgrader and ``export`` read the same database.
"""

import contextlib
import logging
import warnings

from . import course
from .master import Master

COURSE_ID = "backprop-from-scratch"


@contextlib.contextmanager
def open_gradebook():
    from nbgrader.api import Gradebook

    course.workspace().mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), Gradebook(course.db_url(), COURSE_ID) as gb:
        # nbgrader's "object not in session" warning on a new submission is harmless
        warnings.filterwarnings("ignore", message=".*not in session.*")
        yield gb


def sync_assignment(assignment):
    """Record ``assignment``'s notebooks and cells in the gradebook; returns its ``Master``s."""
    with open_gradebook() as gb:
        gb.update_or_create_assignment(assignment)
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    return [
        Master.load(path, assignment, course.db_url())
        for path in course.source_notebooks(assignment)
    ]


def record(result, timestamp=None):
    """Store one graded submission's scores (from ``worker.grade``) in the gradebook."""
    from nbgrader.api import MissingEntry

    sid, aid, nb_id = result["student"], result["assignment"], result["notebook"]
    with open_gradebook() as gb:
        gb.update_or_create_student(sid)
        try:
            gb.find_submission(aid, sid)
        except MissingEntry:
            gb.add_submission(aid, sid, **({"timestamp": timestamp} if timestamp else {}))
        for gid, (score, _points, *manual) in result["grades"].items():
            grade = gb.find_grade(gid, nb_id, aid, sid)
            grade.auto_score = score
            grade.needs_manual_grade = (
                score is None or grade.manual_score is not None or bool(manual)
            )
        gb.db.commit()


def scores(assignment):
    """``{student: {"score", "max_score", "needs_manual_grade", "grades": {grade_id: score}}}``
    for every submission of ``assignment`` (manual scores from the formgrader included)."""
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
            }
    return out


def students():
    with open_gradebook() as gb:
        return sorted(s.id for s in gb.students)

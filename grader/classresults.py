"""What ``export`` and ``report`` read: every assignment's exercises and stored results."""

import json

from . import course
from .master import Master

NOTHING_GRADED = "nothing graded yet: run `python -m grader autograde` first"


def cell_exercises(assignment):
    """``{grade_id: exercise}`` for every graded cell of ``assignment``, in notebook order."""
    mapping = {}
    for path in course.source_notebooks(assignment):
        master = Master.load(path, assignment)
        for gid, _ in master.graded_cells():
            mapping[gid] = master.exercise_of_cell(gid)
    return mapping


def exercises(assignment):
    """Exercise names of ``assignment`` in notebook order (those with graded cells)."""
    return list(dict.fromkeys(cell_exercises(assignment).values()))


def results(assignment):
    """``{student: result}`` of the last autograde of each submission of ``assignment``."""
    folder = course.folder("results") / assignment
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def graded_assignments():
    """Assignments with at least one stored result, in course order."""
    return [a for a in course.assignments() if results(a)]

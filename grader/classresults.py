"""What ``export``, ``report`` and ``collect`` read: every assignment's masters, exercises,
submissions and stored results."""

import json

from . import course
from .master import Master

NOTHING_GRADED = "nothing graded yet: run `python -m grader autograde` first"


def masters(assignment):
    """The masters of ``assignment``'s notebooks (from the grader's cache)."""
    return [Master.load(path, assignment) for path in course.source_notebooks(assignment)]


def cell_exercises(assignment):
    """``{grade_id: exercise}`` for every graded cell of ``assignment``, in notebook order."""
    mapping = {}
    for master in masters(assignment):
        for gid, _ in master.graded_cells():
            mapping[gid] = master.exercise_of_cell(gid)
    return mapping


def answer_cells(assignment):
    """grade_ids of ``assignment``'s answer cells."""
    return {gid for master in masters(assignment) for gid in master.exercises}


def max_score(assignment):
    """The points of all of ``assignment``'s graded cells."""
    return sum(points for master in masters(assignment) for _, points in master.graded_cells())


def submissions():
    """``{(student, assignment): [notebook path]}`` of every notebook in the workspace's
    ``submitted/`` folder, for the course's assignments."""
    found = {}
    for assignment in course.assignments():
        for path in sorted(course.folder("submitted").glob(f"*/{assignment}/*.ipynb")):
            found.setdefault((path.parent.parent.name, assignment), []).append(path)
    return found


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


def submitted_assignments():
    """Assignments with at least one stored result or submitted notebook, in course order."""
    submitted = {assignment for _, assignment in submissions()}
    return [a for a in course.assignments() if a in submitted or results(a)]

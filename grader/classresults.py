"""What ``export``, ``report``, ``feedback`` and ``collect`` read: every assignment's masters,
exercises, submissions and stored results, and what each submission's grade status is."""

from . import course, gradebook
from .autograde import failure_path, read_result
from .master import Master


def nothing_graded():
    """What a command that needs grades says when there are none yet."""
    return f"nothing graded yet: run `{course.command()} autograde` first"


def while_in_use(command, out):
    """Say with ``out`` what ``command`` (``export``, ``report``), which reads the workspace
    without holding it, says first when another grader command holds it (``course.in_use``):
    what it shows may be part-way (an autograde's grades so far). Nothing when none does."""
    what = course.in_use()
    if what is not None:
        out(
            f"note: {what}, so what this {command} shows may change: {command} again once it is"
            " done"
        )


def nothing_collected(ids):
    """What a command given assignments by name says of those of them, ``ids``, that have
    nothing collected yet."""
    return f"nothing collected for {', '.join(ids)} yet: run `{course.command()} collect` first"


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
    """``{student: result}`` of the last autograde of each submission of ``assignment`` (one
    that cannot be read is left out: the next autograde grades it again)."""
    folder = course.folder("results") / assignment
    stored = {p.stem: read_result(p) for p in sorted(folder.glob("*.json"))}
    return {student: result for student, result in stored.items() if result is not None}


def graded_assignments():
    """Assignments with at least one stored result, in course order."""
    return [a for a in course.assignments() if results(a)]


def submitted_assignments():
    """Assignments with at least one stored result or submitted notebook, in course order."""
    submitted = {assignment for _, assignment in submissions()}
    return [a for a in course.assignments() if a in submitted or results(a)]


GRADED, GRADER_ERROR, NOT_GRADED, HANDED_IN_AGAIN = (
    "graded",
    "grader-error",
    "not-graded",
    "handed-in-again",
)


def grade_status(assignment, book=None, submitted=None):
    """``{student: status}`` for each student with a notebook of ``assignment`` in
    ``submitted/``: ``GRADED`` when the gradebook holds grades for the submission there now,
    else why it has none: ``GRADER_ERROR`` (its last autograde failed), ``HANDED_IN_AGAIN``
    (the grades are for what the student handed in before: collected again since, as nbgrader's
    formgrader also tells, see ``course.stamp``) or ``NOT_GRADED``. ``book`` and
    ``submitted``: the gradebook's ``scores(assignment)`` and ``submissions()``, when the
    caller has them."""
    book = gradebook.scores(assignment) if book is None else book
    submitted = submissions() if submitted is None else submitted
    status = {}
    for (student, aid), paths in submitted.items():
        if aid != assignment:
            continue
        entry = book.get(student)
        if entry is not None and entry["submitted_at"] == course.submitted_at(paths[0].parent):
            status[student] = GRADED
        elif failure_path(assignment, student).exists():
            status[student] = GRADER_ERROR
        elif entry is not None:
            status[student] = HANDED_IN_AGAIN
        else:
            status[student] = NOT_GRADED
    return status


def why_no_grade(status):
    """Why a submission in ``status`` (of ``grade_status``, not ``GRADED``) has no grade, for
    the instructor."""
    run = f"run `{course.command()} autograde`"
    return {
        GRADER_ERROR: "grading it failed (autograde printed why)",
        HANDED_IN_AGAIN: f"handed in again since it was graded: {run}",
        NOT_GRADED: f"not graded yet: {run}",
    }[status]


WAITING_FOR_AUTOGRADE = (NOT_GRADED, HANDED_IN_AGAIN)  # what the next autograde grades


def waiting_for_autograde(ids=None, statuses=None):
    """``{assignment: (collected, waiting)}``, in course order, for each assignment of ``ids``
    (default: every one) with submissions in ``submitted/`` that the next autograde grades:
    ``collected`` submissions, ``waiting`` of them in ``WAITING_FOR_AUTOGRADE`` (never graded,
    or handed in again since they were). ``statuses``: ``{assignment: grade_status(assignment)}``
    for the assignments whose status the caller has already."""
    statuses = statuses or {}
    submitted = submissions()
    collected = {aid for _, aid in submitted}
    found = {}
    for aid in course.assignments():
        if aid not in collected or (ids is not None and aid not in ids):
            continue
        status = statuses.get(aid)
        if status is None:
            status = grade_status(aid, submitted=submitted)
        waiting = sum(1 for state in status.values() if state in WAITING_FOR_AUTOGRADE)
        if waiting:
            found[aid] = (len(status), waiting)
    return found


def not_graded_yet(ids=None, statuses=None):
    """One line per assignment of ``waiting_for_autograde`` (same arguments) for the instructor:
    how many submissions are collected, how many of them are not graded yet, and the autograde
    that grades them."""
    return [
        f"{aid}: {collected} collected, {waiting} not graded yet: "
        f"run `{course.command()} autograde {aid}`"
        for aid, (collected, waiting) in waiting_for_autograde(ids, statuses).items()
    ]

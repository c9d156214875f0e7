"""Scores and diagnoses from an executed notebook: the one place where marks are decided.

The rule for a test cell is deliberately simple: it earns its points when it ran to the end
without raising (the kernel's reply to it says "ok" and it has no error output), and nothing
otherwise. Output on stderr (a numpy ``RuntimeWarning``) is not a
failure; it is reported as a warning. A value displayed by the cell's last line is ignored (a
test states what it checks with ``assert``). A manually graded answer cell is left for a human
unless it is still the untouched stub (0 points).

A failed exercise is diagnosed from the ``[mistake: <key>]`` tags in its test cells' errors
(written by ``backprop.gradcheck``); without a tag the diagnosis says why it failed:
``not-implemented``, ``timeout``, ``dead-kernel``, ``not-run``, ``error-in-answer-cell``,
``raised`` (the learner's code raised when a test called it, as ``gradcheck.call_yours`` names
it) or ``unexplained``. An answer cell the learner deleted (put back from the release, so
unanswered) is ``deleted-answer-cell`` rather than ``not-implemented``: the answer may be in
another cell.
"""

import re
from dataclasses import asdict, dataclass, field

from backprop.gradcheck import mistakes_in

from .master import grade_id, is_answer, is_graded, nbgrader_meta
from .runner import CRASHED, NOT_RUN, TIMEOUT

# A terminal control sequence (colours in IPython's tracebacks). Here rather than nbconvert's
# filter, which would cost every grading worker a second of imports.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def strip_ansi(text):
    return ANSI_ESCAPE.sub("", text)


def errors(cell):
    """The cell's error outputs."""
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def error_text(cell):
    """All error text of the cell, without terminal colours."""
    parts = []
    for out in errors(cell):
        parts += [f"{out.get('ename')}: {out.get('evalue')}", *out.get("traceback", [])]
    return strip_ansi("\n".join(parts))


WARNING = re.compile(r"\w*Warning: .*")


def warning_of(text):
    """The line that names the warning in stderr ``text`` (else its last line), shortened."""
    found = WARNING.search(text)
    return (found.group(0) if found else text.strip().splitlines()[-1])[:200]


def stderr_text(cell):
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stderr"
    )


def unanswered(cell, stub):
    """True when an answer cell is still ``stub``, the source it was released with."""
    return stub is not None and cell.source == stub


def cell_score(cell, stub=None, status="ok"):
    """``(auto_score or None, max_points)`` of a graded cell (``stub``: its released source,
    for an answer cell; ``status``: that of the kernel's reply to a test cell, None when it
    never replied)."""
    points = float(nbgrader_meta(cell).get("points", 0))
    if nbgrader_meta(cell).get("solution") or cell.cell_type != "code":
        return (0.0 if unanswered(cell, stub) else None), points
    return (0.0 if errors(cell) or status != "ok" else points), points


@dataclass
class Exercise:
    name: str
    score: float = 0.0
    max_score: float = 0.0
    passed: bool = False
    mistakes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def _untagged_reason(cell, answer, stub, event):
    """Why a test cell failed when its error carries no ``[mistake: ...]`` tag."""
    if event in (TIMEOUT, CRASHED, NOT_RUN):
        return event
    unchanged = answer is not None and unanswered(answer, stub)
    if unchanged or (answer is not None and "NotImplementedError" in error_text(cell)):
        return "not-implemented"
    if answer is not None and errors(answer):
        return "error-in-answer-cell"
    if _raised_in(cell, answer):
        return "raised"
    return "unexplained"


def _raised_in(cell, answer):
    """True when the error of test ``cell`` came from code of the ``answer`` cell: its traceback
    goes through that cell, whose frames IPython names ``Cell In[<its execution count>]``."""
    count = None if answer is None else answer.get("execution_count")
    return count is not None and f"Cell In[{count}], line " in error_text(cell)


def _diagnose(tests, answer, stub, events):
    """Mistake keys of a failed exercise, from its failing test cells, without repeats."""
    found = []
    for i, cell in tests:
        if not errors(cell):
            continue
        reason = mistakes_in(error_text(cell))
        keys = reason or [_untagged_reason(cell, answer, stub, events.get(i))]
        for key in keys:  # a tag shows in both the message and the traceback: count it once
            if key not in found:
                found.append(key)
    return found


MANUAL = {"dead-kernel", "grader-error", "not-graded", "manual-mark-dropped"}
REPAIRED = {"restored-cell", "missing-cell"}  # on an answer cell, the grade may be wrong


def needs_human(flags, answers):
    """True when one of ``flags`` (``(kind, where)``) asks for a human: a lost cell, an ungraded
    notebook, a mark given by hand to other work, or an answer cell (grade_id in ``answers``)
    that was missing or put back together."""
    return any(kind in MANUAL or (kind in REPAIRED and where in answers) for kind, where in flags)


def ask_for_a_human(grades, flags, master):
    """Mark in ``grades`` (from ``summarise``) each graded cell that one of ``flags`` puts in
    doubt (``needs_human``): the flagged cell itself, or every graded cell of the exercise whose
    answer cell is flagged. A mark is a third item in the cell's entry; the gradebook records it
    as nbgrader's ``needs_manual_grade``, so that the formgrader lists what the export does."""
    for kind, where in flags:
        if not needs_human([(kind, where)], master.exercises):
            continue
        for gid, entry in grades.items():
            if (gid == where or master.exercise_of_cell(gid) == where) and len(entry) == 2:
                entry.append(True)


def summarise(nb, master, events, statuses=None, missing=()):
    """``(grades, exercises)`` for an executed, sanitized notebook; ``statuses``: the status of
    the kernel's reply to each cell by index (``RunLog.statuses``), when known; ``missing``: the
    grade_ids of the cells ``sanitize`` put back because they had been deleted.

    ``grades``: ``{grade_id: [auto_score or None, max_points]}`` for every graded cell.
    ``exercises``: ``[Exercise]`` in notebook order (only those with graded cells).
    """
    grades = {}
    by_exercise = {}
    answers = {}
    for index, cell in enumerate(nb.cells):
        gid = grade_id(cell)
        if gid and is_answer(cell):
            answers[gid] = cell
        if gid and is_graded(cell):
            status = "ok" if statuses is None else statuses.get(index)
            grades[gid] = list(cell_score(cell, master.stubs.get(gid), status))
            by_exercise.setdefault(master.exercise_of_cell(gid), []).append((index, cell))
    exercises = []
    for name, cells in by_exercise.items():
        ex = Exercise(name)
        for _, cell in cells:
            score, points = grades[grade_id(cell)]
            ex.score += score or 0.0
            ex.max_score += points
            if stderr_text(cell).strip():
                ex.warnings.append(warning_of(stderr_text(cell)))
        answer = answers.get(name)
        if answer is not None and stderr_text(answer).strip():
            ex.warnings.append(warning_of(stderr_text(answer)))
        ex.passed = all(grades[grade_id(c)][0] == grades[grade_id(c)][1] for _, c in cells)
        if not ex.passed:
            tests = [(i, c) for i, c in cells if not nbgrader_meta(c).get("solution")]
            ex.mistakes = _diagnose(tests, answer, master.stubs.get(name), events)
            if name in missing:
                ex.mistakes = ["deleted-answer-cell"] + [
                    m for m in ex.mistakes if m != "not-implemented"
                ]
        exercises.append(ex)
    return grades, [asdict(e) for e in exercises]

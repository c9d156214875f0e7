"""Grade one submitted notebook: sanitize, run, score, write the autograded copy.

``grade(job)`` runs in a long-lived worker process of the autograde pool, set up once by
``prepare()``. It touches no database: it returns a plain dict that the parent records in the
gradebook. Any problem caused by the submission ends up in that dict; only a fault of the grader
itself raises.
"""

import os
import re
import shutil
import warnings
from pathlib import Path

import nbformat

from . import course, runner
from .master import grade_id
from .sanitize import sanitize
from .scoring import ask_for_a_human, summarise

EVENT_NOTES = {
    runner.TIMEOUT: "stopped after the time limit",
    runner.CRASHED: "killed the kernel; the rest of the notebook was graded without it",
    runner.NOT_RUN: "not run: the notebook's time limit was used up",
}
REPAIR_NOTES = {
    "restored-cell": "was edited; the original test cell was put back and graded",
    "restored-answer": "had lost its grading metadata; it was found by its place and graded, "
    "and your instructor will check it",
    "missing-cell": "was missing; it was put back from the original and graded",
    "duplicated-cell": "appears more than once; only the first copy was graded",
}


UNNAMED = re.compile(r"cell (\d+)")  # a flag's cell without a grade_id: its place, from 1


def _ordinal(n):
    """``n`` as English counts places: 1st, 2nd, 3rd, 4th, ..., 11th, ..., 21st."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def cell_name(where, cells=()):
    """A flag's cell (``where``: a grade_id, or ``cell N``, the N-th cell of ``cells``, counted
    from 1 with the markdown ones) as a learner can find it in the notebook: ``cell `name```,
    or for a cell without a grade_id, its place among the code cells after the nearest named
    cell above it ("the 2nd code cell after `test_sigmoid`"), else from the top."""
    unnamed = UNNAMED.fullmatch(where)
    if not unnamed:
        return f"cell `{where}`"
    index = int(unnamed[1]) - 1
    if not 0 <= index < len(cells):
        return where
    count, after = 0, None
    for cell in reversed(cells[: index + 1]):
        if grade_id(cell) is not None:
            after = grade_id(cell)
            break
        count += cell.get("cell_type") == "code"
    place = "the code cell" if count == 1 else f"the {_ordinal(count)} code cell"
    return f"{place} after `{after}`" if after else f"{place} from the top"


def _notes(flags, exercises, answers=(), cells=()):
    """A markdown cell for the top of the graded notebook: what the grader did and saw
    (``answers``: the grade_ids of the answer cells; ``cells``: the notebook's, which the
    flags' ``cell N`` count)."""
    lines = []
    for kind, where in flags:
        if kind == "restored-cell" and where in answers:
            kind = "restored-answer"
        note = REPAIR_NOTES.get(kind) or EVENT_NOTES[kind]
        lines.append(f"- {cell_name(where, cells)} {note}")
    for ex in exercises:
        for warning in ex["warnings"]:
            lines.append(
                f"- `{ex['name']}` printed a warning (not counted as a failure; your values "
                f"were graded): `{warning}`"
            )
    if not lines:
        return None
    return nbformat.v4.new_markdown_cell("**Notes from the grader**\n\n" + "\n".join(lines))


_cells_recorded = None  # set by prepare: see there


def prepare(template=True, cells_recorded=None):
    """Set up a new worker process: environment for the kernels, and a kernel started for the
    first submission while the parent is still planning (forked from ``template``, see
    ``runner.prepare``). ``cells_recorded``: an event (``multiprocessing.Event``) that ``grade``
    waits for before it replaces a graded copy, set once the gradebook holds the assignment's
    cells (``autograde._grade_all``)."""
    global _cells_recorded
    _cells_recorded = cells_recorded
    os.environ.update(runner.kernel_env())
    try:
        runner.prepare(template)
    except Exception:  # noqa: BLE001 (only a head start: the first job starts its own kernel
        pass  # and reports what goes wrong)


def grade(job):
    """Grade ``job`` (student, assignment, submitted, outdir, master, limits, key, and
    optionally next_kernel: start a kernel for this worker's next job meanwhile); returns a dict
    with the grades, exercises, flags and timing."""
    master = job["master"]
    outdir = Path(job["outdir"])
    # Graded in a folder of its own, which replaces the last graded copy only when done: a run
    # stopped half-way leaves the last copy as it was.
    workdir = course.grading_folder(outdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for path, relative in master.extra_files:
        (workdir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, workdir / relative)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate cell ids are repaired by sanitize()
        submitted = nbformat.read(job["submitted"], as_version=4)
    nb, flags = sanitize(submitted, master)
    log = runner.run(
        nb, workdir, job["limits"], next_kernel=job.get("next_kernel", False), master=master
    )
    missing = {where for kind, where in flags if kind == "missing-cell"}
    grades, exercises = summarise(nb, master, log.events, log.statuses, missing)
    for index, event in sorted(log.events.items()):
        where = grade_id(nb.cells[index]) or f"cell {index + 1}"
        flags.append((event, where))
    ask_for_a_human(grades, flags, master)
    notes = _notes(flags, exercises, answers=master.exercises, cells=nb.cells)
    if notes is not None:
        notes.pop("id", None)  # the notebook is nbformat 4.4, without cell ids
        nb.cells.insert(0, notes)
    for cell in nb.cells:
        cell.pop("id", None)  # the notebook is nbformat 4.4, without cell ids
    nb.nbformat_minor = 4
    # The notebook ran in this folder, and may have removed it (or the student's folder above).
    workdir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, workdir / f"{master.name}.ipynb")
    if _cells_recorded is not None:
        _cells_recorded.wait()
    if outdir.exists():
        shutil.rmtree(outdir)
    workdir.rename(outdir)
    return {
        "student": job["student"],
        "assignment": job["assignment"],
        "notebook": master.name,
        "key": job["key"],
        "grades": grades,
        "exercises": exercises,
        "flags": [list(f) for f in flags],
        "seconds": round(log.seconds, 3),
        "kernels": log.kernels,
    }

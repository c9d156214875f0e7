"""Grade one submitted notebook: sanitize, run, score, write the autograded copy.

``grade(job)`` runs in a long-lived worker process of the autograde pool, set up once by
``prepare()``. It touches no database: it returns a plain dict that the parent records in the
gradebook. Any problem caused by the submission ends up in that dict; only a fault of the grader
itself raises.
"""

import os
import shutil
import warnings
from pathlib import Path

import nbformat

from . import runner
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


def _notes(flags, exercises, answers=()):
    """A markdown cell for the top of the graded notebook: what the grader did and saw
    (``answers``: the grade_ids of the answer cells)."""
    lines = []
    for kind, where in flags:
        if kind == "restored-cell" and where in answers:
            kind = "restored-answer"
        lines.append(f"- cell `{where}` {REPAIR_NOTES.get(kind) or EVENT_NOTES[kind]}")
    for ex in exercises:
        for warning in ex["warnings"]:
            lines.append(
                f"- `{ex['name']}` printed a warning (not counted as a failure; your values "
                f"were graded): `{warning}`"
            )
    if not lines:
        return None
    return nbformat.v4.new_markdown_cell("**Notes from the grader**\n\n" + "\n".join(lines))


def prepare(template=True):
    """Set up a new worker process: environment for the kernels, and a kernel started for the
    first submission while the parent is still planning (forked from ``template``, see
    ``runner.prepare``)."""
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
    workdir = outdir.with_name(f".{outdir.name}.grading")
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
    notes = _notes(flags, exercises, answers=master.exercises)
    if notes is not None:
        notes.pop("id", None)  # the notebook is nbformat 4.4, without cell ids
        nb.cells.insert(0, notes)
    for cell in nb.cells:
        cell.pop("id", None)  # the notebook is nbformat 4.4, without cell ids
    nb.nbformat_minor = 4
    nbformat.write(nb, workdir / f"{master.name}.ipynb")
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

"""``autograde [ASSIGNMENT...] [-j N]``: grade every new or changed submission in parallel.

A pool of N long-lived worker processes runs ``worker.grade`` on one submission at a time; this
process is the only one that writes the gradebook. A submission is graded again only when its
notebook, the assignment's tests or the time limits changed (the key of its last result in
``results/``). One submission's trouble never stops the others; the return code is non-zero only
when the grader itself failed.

Time goes to the notebooks, not around them: a template process that kernels are forked from
(``forkserver``), started before this process's own heavy imports, and the workers start while
this process plans (with the masters from the grader's cache, see ``master``), each worker has
the kernel for its next submission started and answering while the current one runs, and this
process only records results, in one gradebook session, in a thread of low priority while the
notebooks run (the assignments' cells first).
"""

import gc
import hashlib
import json
import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

from . import course, gradebook, runner
from .runner import Limits
from .table import format_table

GRADER_VERSION = "2"


def result_path(assignment, student):
    return course.folder("results") / assignment / f"{student}.json"


def load_result(assignment, student):
    path = result_path(assignment, student)
    return json.loads(path.read_text()) if path.exists() else None


def _key(path, master, limits):
    digest = hashlib.sha256(Path(path).read_bytes())
    digest.update(f"{master.fingerprint}|{limits}|{GRADER_VERSION}".encode())
    return digest.hexdigest()[:20]


def plan(ids, limits, force=False):
    """``(jobs, unchanged)``: submissions to grade, and how many are already up to date."""
    from .master import Master

    submitted = course.folder("submitted")
    jobs, unchanged = [], 0
    for aid in ids:
        masters = [Master.load(path, aid) for path in course.source_notebooks(aid)]
        for student_dir in sorted(submitted.glob("*")):
            for master in masters:
                path = student_dir / aid / f"{master.name}.ipynb"
                if not path.exists():
                    continue
                key = _key(path, master, limits)
                old = load_result(aid, student_dir.name)
                graded = course.folder("autograded") / student_dir.name / aid / path.name
                if not force and old and old.get("key") == key and graded.exists():
                    unchanged += 1
                    continue
                jobs.append(
                    {
                        "student": student_dir.name,
                        "assignment": aid,
                        "submitted": str(path),
                        "outdir": str(course.folder("autograded") / student_dir.name / aid),
                        "master": master,
                        "limits": limits,
                        "key": key,
                    }
                )
    return jobs, unchanged


def _timestamp(path):
    return datetime.fromtimestamp(os.path.getmtime(path), tz=timezone.utc).replace(tzinfo=None)


def _save(gb, result, job):
    gradebook.record(gb, result, timestamp=_timestamp(job["submitted"]))
    path = result_path(result["assignment"], result["student"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


def _worker_init(template, inherited=()):
    """Runs first in a new worker, which ends with this process even when it is killed.
    ``inherited``: file descriptors of this process's that a forked worker must not keep open
    (the template's standard input: the template exits when the grader closes it)."""
    from .forkserver import die_with

    die_with(os.getppid())
    for fd in inherited:
        os.close(fd)
    from .worker import prepare

    prepare(template)


def _started():
    """A no-op task: submitting one per worker makes the pool start its workers now."""


class _Pool:
    """``jobs_n`` worker processes, and the template process their kernels are forked from, all
    starting up in the background; ``close()`` ends them.

    Where there is a template (Linux), the workers are forked from this process too: they start
    with its imports done (a spawned worker spends 0.5 s of CPU importing them again).
    """

    def __init__(self, jobs_n):
        from .forkserver import Template

        self.template = Template(env=runner.kernel_env())  # first: its imports take longest
        forked = self.template.address is not None
        if forked:
            # What every worker imports and looks up, done once here instead of once per worker,
            # and frozen while they are forked: their garbage collections then leave it alone
            # and its memory stays shared (as the gc module's docs advise before a fork).
            from . import worker  # noqa: F401

            runner.load_kernel_machinery()
            gc.freeze()
        self.executor = ProcessPoolExecutor(
            max_workers=jobs_n,
            mp_context=multiprocessing.get_context("fork" if forked else "spawn"),
            initializer=_worker_init,
            initargs=(self.template.address or False, self.template.inherited()),
        )
        for _ in range(jobs_n):
            self.executor.submit(_started)  # the first submit forks every worker
        if forked:
            gc.unfreeze()

    def close(self):
        self.executor.shutdown(cancel_futures=True)
        self.template.close()


def _probably_work(ids):
    """True when some submission has no result yet, or a result older than the notebook: then
    the workers are started before planning, which takes seconds on its own."""
    for aid in ids:
        for path in course.folder("submitted").glob(f"*/{aid}/*.ipynb"):
            result = result_path(aid, path.parent.parent.name)
            if not result.exists() or result.stat().st_mtime < path.stat().st_mtime:
                return True
    return False


def autograde(ids=None, jobs_n=1, limits=None, force=False, out=print, progress=True):
    """Grade; returns ``(results, failures, unchanged)``."""
    limits = limits or Limits()
    jobs_n = max(1, jobs_n)
    known = course.assignments()
    submitted = course.folder("submitted")
    ids = list(ids or [a for a in known if any(submitted.glob(f"*/{a}/*.ipynb"))])
    unknown = [a for a in ids if a not in known]
    if unknown:
        raise course.UsageError(
            f"unknown assignment(s): {', '.join(unknown)} (known: {', '.join(known)})"
        )
    pool = _Pool(jobs_n) if force or _probably_work(ids) else None
    try:
        todo, unchanged = plan(ids, limits, force)
        if todo and pool is None:
            pool = _Pool(jobs_n)
        results, failures = _grade_all(pool.executor, todo, jobs_n, progress) if todo else ([], [])
    finally:
        if pool is not None:
            pool.close()
    for name, error in failures:
        out(f"grader error on {name}: {error}")
    out(summary(ids, results, unchanged))
    return results, failures, unchanged


def _yield_cpu():
    """Lower this thread's priority (Linux only: elsewhere priority is per process)."""
    if sys.platform.startswith("linux"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def _record_all(futures, bar):
    """The gradebook's side of grading, on the CPU the template and the notebooks leave: it can
    wait, they cannot. Records the assignments' cells (nbgrader's imports and a build: a second
    of CPU), then each result as it comes in, in one session: ``(results, failures)``."""
    _yield_cpu()
    for aid in sorted({job["assignment"] for job in futures.values()}):
        gradebook.sync_assignment(aid)
    results, failures = [], []
    with gradebook.open_gradebook() as gb:
        for future in as_completed(futures):
            job = futures[future]
            name = f"{job['student']}/{job['assignment']}"
            try:
                result = future.result()
                _save(gb, result, job)
                results.append(result)
            except Exception as error:  # a grader fault: report it, go on with the others
                gb.db.rollback()
                failures.append((name, f"{type(error).__name__}: {error}"))
            bar.set_postfix_str(name, refresh=False)
            bar.update()
    return results, failures


def _grade_all(pool, todo, jobs_n, progress):
    """Submit every job to ``pool`` and record the results in a thread of low priority while
    the notebooks run: ``(results, failures)``."""
    from tqdm import tqdm

    from .worker import grade

    # Each worker's last job starts no kernel for a next one.
    for index, job in enumerate(todo):
        job["next_kernel"] = index < len(todo) - jobs_n
    bar = tqdm(
        total=len(todo),
        unit="nb",
        desc="autograde",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    futures = {pool.submit(grade, job): job for job in todo}
    recorder = ThreadPoolExecutor(max_workers=1)
    try:
        return recorder.submit(_record_all, futures, bar).result()
    finally:
        recorder.shutdown(wait=False)  # on Ctrl+C: it ends once the pool is shut down
        bar.close()


def summary(ids, results, unchanged):
    """A plain-text table: per assignment, how many were graded, their mean score and flags."""
    rows = [("assignment", "graded", "mean score", "max", "flagged", "sec/nb")]
    for aid in ids:
        mine = [r for r in results if r["assignment"] == aid]
        if not mine:
            continue
        totals = [sum(s or 0 for s, *_ in r["grades"].values()) for r in mine]
        top = sum(p for _, p, *_ in mine[0]["grades"].values())
        flagged = sum(1 for r in mine if r["flags"])
        seconds = sum(r["seconds"] for r in mine) / len(mine)
        rows.append(
            (
                aid,
                str(len(mine)),
                f"{sum(totals) / len(mine):.2f}",
                f"{top:g}",
                str(flagged),
                f"{seconds:.2f}",
            )
        )
    flagged = sorted(
        f"  {r['student']}/{r['assignment']}: " + ", ".join(f"{k} ({w})" for k, w in r["flags"])
        for r in results
        if r["flags"]
    )
    text = format_table(rows) if len(rows) > 1 else "nothing new to grade"
    text += f"\n{len(results)} graded, {unchanged} unchanged"
    if flagged:
        text += "\nflagged:\n" + "\n".join(flagged)
    return text

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
notebooks run. The assignments' cells are recorded while the first notebooks run, and a worker
replaces a graded copy only once they are: a gradebook that cannot take them stops the run before
any graded copy is replaced (``_record_cells``).

One run at a time in a workspace (``course.workspace_lock``, which ``collect`` takes too): a
second one stops at once and says so.

Ctrl+C stops a run cleanly: the workers ignore it and the grader ends them (their kernels end
with them), the gradebook keeps every result recorded so far and nothing after, and the next run
grades the rest (``GradingInterrupted``).
"""

import gc
import hashlib
import json
import multiprocessing
import os
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from . import children, course, gradebook, runner
from .progress import bar as progress_bar
from .runner import Limits
from .table import format_table

GRADER_VERSION = "3"


def result_path(assignment, student):
    return course.folder("results") / assignment / f"{student}.json"


def failure_path(assignment, student):
    """Where the last autograde of a submission that failed with a grader error left the
    error's message, and the key of what was graded (removed when it is graded)."""
    return result_path(assignment, student).with_suffix(".error")


def _record_failure(job, message):
    path = failure_path(job["assignment"], job["student"])
    course.write_whole(path, f"{message}\nkey: {job['key']}\n")


def _ended_its_grader(assignment, student, key=None):
    """True when the last autograde of this submission found that it ends the process grading
    it (``LOST``), and it has not changed since (its ``key``; any key when None)."""
    try:
        lines = failure_path(assignment, student).read_text().splitlines()
    except OSError:
        return False
    return lines[:1] == [LOST] and (key is None or lines[1:2] == [f"key: {key}"])


def read_result(path):
    """The result (or the note, ``dropped_path``) stored at ``path``; None when there is none, or
    when it cannot be read (one cut short by a grader killed while writing it, before results
    were written whole): that submission is graded again."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_result(assignment, student):
    return read_result(result_path(assignment, student))


def _key(path, master, limits):
    digest = hashlib.sha256(Path(path).read_bytes())
    digest.update(f"{master.fingerprint}|{limits}|{GRADER_VERSION}".encode())
    return digest.hexdigest()[:20]


def plan(ids, limits, force=False):
    """``(jobs, unchanged)``: submissions to grade, and how many are already up to date."""
    from .master import Master

    submitted = course.folder("submitted")
    jobs, unchanged = [], 0
    recorded = gradebook.recorded_submissions()  # None: unknown, trust the results
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
                # A grader error left by the last run is graded again, even where an older
                # result is still up to date.
                failed = failure_path(aid, student_dir.name).exists()
                # A gradebook deleted or replaced since holds no grade of it: graded again.
                kept = recorded is None or (aid, student_dir.name) in recorded
                up_to_date = old and old.get("key") == key and graded.exists() and kept
                if not force and up_to_date and not failed:
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
                        # not graded with the others: see autograde
                        "alone": failed and _ended_its_grader(aid, student_dir.name, key),
                    }
                )
    return jobs, unchanged


def dropped_path(assignment, student):
    """Where grading notes the cells whose mark given by hand the gradebook is about to drop,
    until the result that names them is written (``_save``)."""
    return result_path(assignment, student).with_suffix(".dropped")


def _save(gb, result, job):
    """Record ``result`` in the gradebook ``gb``, then write it, flagged with the marks given by
    hand that were dropped or kept. The cells whose mark is dropped are noted before the
    gradebook commits: a grader that dies before the result is written finds them there when
    it grades the notebook again (the gradebook then holds the new notebook's time, so it no
    longer tells that the marks were dropped)."""
    aid, student = result["assignment"], result["student"]
    old = load_result(aid, student) or {}
    note = dropped_path(aid, student)
    dropped_before = {
        where for kind, where in old.get("flags", []) if kind == "manual-mark-dropped"
    }
    dropped_before |= set(read_result(note) or [])
    timestamp = course.submitted_at(Path(job["submitted"]).parent)
    dropped, kept = gradebook.record(gb, result, timestamp, dropped_before)
    if dropped:
        course.write_whole(note, json.dumps(dropped) + "\n")
    gb.db.commit()
    result["flags"] += [["manual-mark-dropped", gid] for gid in dropped]
    result["flags"] += [["manual-mark-kept", gid] for gid in kept]
    course.write_whole(
        result_path(aid, student), json.dumps(result, indent=1, sort_keys=True) + "\n"
    )
    note.unlink(missing_ok=True)
    failure_path(aid, student).unlink(missing_ok=True)


class GradingInterrupted(KeyboardInterrupt):
    """Ctrl+C while grading; ``recorded``: how many results the gradebook holds from this run."""

    def __init__(self, recorded=0):
        super().__init__(recorded)
        self.recorded = recorded


def _worker_init(template, inherited=(), cells_recorded=None):
    """Runs first in a new worker (see ``children``; the grader handles Ctrl+C and ends the
    workers, ``_Pool.abort``). ``inherited``: file descriptors of this process's that a forked
    worker must not keep open (the template's standard input: the template exits when the
    grader closes it; the workspace lock). ``cells_recorded``: see ``worker.prepare``."""
    children.start(inherited)
    from .worker import prepare

    prepare(template, cells_recorded)


class _Pool:
    """``jobs_n`` worker processes, and the template process their kernels are forked from, all
    starting up in the background; ``close()`` ends them.

    Where there is a template (Linux), the workers are forked from this process too: they start
    with its imports done (a spawned worker spends 0.5 s of CPU importing them again).

    ``cells_recorded``: an event the workers wait for before they replace a graded copy (see
    ``_grade_all``).
    """

    def __init__(self, jobs_n):
        from .forkserver import Template

        before = {process.pid for process in multiprocessing.active_children()}
        self.template = Template(env=runner.kernel_env())  # first: its imports take longest
        self.ended = False
        forked = self.template.address is not None
        context = multiprocessing.get_context("fork" if forked else "spawn")
        self.cells_recorded = context.Event()
        if forked:
            # What every worker imports and looks up, done once here instead of once per worker,
            # and frozen while they are forked: their garbage collections then leave it alone
            # and its memory stays shared (as the gc module's docs advise before a fork).
            from . import worker  # noqa: F401

            runner.load_kernel_machinery()
            gc.freeze()
        # A forked worker closes the workspace's lock too: it must not outlive this process.
        inherited = self.template.inherited() + course.held_locks() if forked else ()
        self.executor = ProcessPoolExecutor(
            max_workers=jobs_n,
            mp_context=context,
            initializer=_worker_init,
            initargs=(self.template.address or False, inherited, self.cells_recorded),
        )
        for _ in range(jobs_n):
            self.executor.submit(children.started)  # the first submit forks every worker
        if forked:
            gc.unfreeze()
        # Its workers (those started so far, where they are spawned as needed), whose kernel
        # folders are removed when the pool ends.
        self.workers = {p.pid for p in multiprocessing.active_children()} - before

    def close(self):
        if not self.ended:
            self.executor.shutdown(cancel_futures=True)
            self._end_template()

    def _end_template(self):
        """End the template and every kernel, then remove what is left of the kernel folders of
        this pool's workers, which are gone: a worker removes its own as it ends, but not when
        it is killed. The kernels go first: one that was starting could still bind its sockets
        in its worker's folder after that folder was removed."""
        self.template.close()
        for pid in self.workers:
            runner.remove_kernel_folders(pid)

    def abort(self):
        """End now: kill the workers, cancel what has not started, then end the template and
        remove the workers' kernel folders (``_end_template``). Also how a pool ends once a
        notebook has killed one of its workers: the others are killed at once, whatever they
        were doing. The workers are killed first: from Python 3.12 a pool that broke holds the
        lock ``shutdown`` takes while it waits for them, and one that survived its SIGTERM
        would be waited for ever."""
        self.ended = True
        workers = multiprocessing.active_children()
        for worker in workers:
            worker.kill()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.join(timeout=5)
        self.workers |= {worker.pid for worker in workers}
        self._end_template()


def _probably_work(ids):
    """True when some submission has no result yet, or a result older than the notebook: then
    the workers are started before planning, which takes seconds on its own."""
    for aid in ids:
        for path in course.folder("submitted").glob(f"*/{aid}/*.ipynb"):
            result = result_path(aid, path.parent.parent.name)
            if _ended_its_grader(aid, path.parent.parent.name):
                continue  # most likely not graded again (see autograde)
            if not result.exists() or result.stat().st_mtime < path.stat().st_mtime:
                return True
    return False


def autograde(ids=None, jobs_n=1, limits=None, force=False, out=print, progress=True):
    """Grade; returns ``(results, failures, unchanged)``.

    A notebook that the last run blamed for ending the process grading it (``LOST``: it did
    so twice, with others and on its own) is not graded again while it has not changed: it
    would do it again, and cost its time on every run. It stays a grader error, named again
    each run. With ``force`` it is graded again, in a pool of its own after the others, so
    that it costs them nothing."""
    limits = limits or Limits()
    submitted = course.folder("submitted")
    named = ids
    ids = course.known(
        ids or [a for a in course.assignments() if any(submitted.glob(f"*/{a}/*.ipynb"))]
    )
    notebooks = sum(1 for aid in ids for _ in submitted.glob(f"*/{aid}/*.ipynb"))
    if not notebooks:
        which = f" for {', '.join(ids)}" if named else ""
        raise course.UsageError(
            f"nothing collected{which} yet: run `{course.command()} collect` first"
        )
    jobs_n = min(max(1, jobs_n), notebooks)  # no more workers than notebooks
    # Held for the whole run: a second run would grade the same notebooks in the same folders
    # (and record grader errors for what the first moved away under it).
    with course.workspace_lock("autograde"):
        try:
            return _autograde(ids, jobs_n, limits, force, out, progress)
        finally:
            course.remove_grading_folders()  # of notebooks whose workers were killed


def _autograde(ids, jobs_n, limits, force, out, progress):
    """``autograde`` once the workspace is this process's."""
    pool = _Pool(jobs_n) if force or _probably_work(ids) else None
    try:
        todo, unchanged = plan(ids, limits, force)
        alone = [job for job in todo if job["alone"]]
        todo = [job for job in todo if not job["alone"]]
        if todo and pool is None:
            pool = _Pool(jobs_n)
        if todo:
            cells = todo + alone
            graded = _grade_all(pool, todo, jobs_n, progress, lambda: _record_cells(cells))
        else:
            _record_cells(alone)
            graded = _Graded()
        if not force:
            graded.failures += [
                (f"{job['student']}/{job['assignment']}", STILL_LOST) for job in alone
            ]
            alone = []
        lost, graded.lost = graded.lost, []
        apart = _apart(lost, alone, out)
        if apart:
            if lost:
                pool.abort()
            elif pool is not None:
                pool.close()  # not needed any more
            pool = None
            _grade_apart(apart, graded, jobs_n, progress)
    except KeyboardInterrupt as stop:
        if pool is not None:
            pool.abort()
            pool = None
        recorded = stop.recorded if isinstance(stop, GradingInterrupted) else 0
        # Without --force, what --force had still to grade would look unchanged: not graded.
        again = "autograde again"
        if force:
            again = "autograde --force again (it grades every one again)"
        out(
            f"interrupted: {recorded} result(s) of this run are in the gradebook; run {again} "
            "to grade the rest"
        )
        raise SystemExit(130) from None
    finally:
        if pool is not None:
            pool.close()
    for name, error in graded.failures:
        out(f"grader error on {name}: {error}")
    out(summary(ids, graded.results, unchanged, failed=len(graded.failures)))
    return graded.results, graded.failures, unchanged


@dataclass
class _Graded:
    """What a grading pass gave: ``results``, ``failures`` ((name, error) of grader errors), and
    ``lost``, the jobs whose worker process ended under them (``BrokenProcessPool``)."""

    results: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    lost: list = field(default_factory=list)


LOST = (
    "the notebook ended the grading process that ran it (it killed that process, say), again "
    "when graded on its own: not graded, have a look at it"
)
STILL_LOST = (
    "the notebook ended the grading process that ran it when last graded, and has not changed: "
    "not graded again (autograde --force grades it again, apart from the others); have a look "
    "at it"
)


def _apart(lost, alone, out):
    """The batches of jobs to grade apart from the others, each in a pool of its own (see
    ``_grade_apart``), saying why: the jobs ``lost`` with a pool that a notebook broke, and
    each job ``alone``, whose notebook ended its grading process when last graded (graded again
    with ``--force``)."""
    batches = [lost] if lost else []
    if lost:
        out(
            "a notebook ended the process grading it: grading again the "
            f"{len(lost)} notebook(s) lost with that process's pool, in smaller pools if it "
            "happens again, to find the one that does it"
        )
    for job in alone:
        out(
            f"{job['student']}/{job['assignment']} ended the process grading it when last "
            "graded: graded in a pool of its own, after the others"
        )
        batches.append([job])
    return batches


def _grade_apart(batches, graded, jobs_n, progress):
    """Grade each of ``batches`` (lists of jobs) in a new pool of its own, adding what it gives
    to ``graded``, with one progress bar. When a pool is lost (a notebook ended a worker
    process: killed it, or the template its kernels come from, and every job of the pool was
    lost with it), the jobs it lost are split in two, each half in a pool of its own, down to
    a single notebook, the one to blame (``LOST``)."""
    bar = progress_bar(sum(len(batch) for batch in batches), "again", "nb", show=progress)
    try:
        while batches:
            batch = batches.pop(0)
            pool = _Pool(min(jobs_n, len(batch)))
            try:
                again = _grade_all(pool, batch, min(jobs_n, len(batch)), progress, bar=bar)
            except KeyboardInterrupt as stop:
                pool.abort()
                recorded = len(graded.results) + getattr(stop, "recorded", 0)
                raise GradingInterrupted(recorded) from None
            if again.lost:
                pool.abort()
            else:
                pool.close()
            graded.results += again.results
            graded.failures += again.failures
            if len(again.lost) == 1 and len(batch) == 1:
                job = batch[0]
                graded.failures.append((f"{job['student']}/{job['assignment']}", LOST))
                _record_failure(job, LOST)
                bar.update()
            elif again.lost:
                half = (len(again.lost) + 1) // 2
                batches[:0] = [part for part in (again.lost[:half], again.lost[half:]) if part]
    finally:
        bar.close()
    return graded


def _yield_cpu():
    """Lower this thread's priority (Linux only: elsewhere priority is per process)."""
    if sys.platform.startswith("linux"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def _record_cells(jobs):
    """Record the cells of the assignments of ``jobs`` in the gradebook
    (``gradebook.sync_assignment``) before any result of them is: a gradebook that cannot take
    them (cells added to or removed from a notebook with submissions, ``gradebook.CellsChanged``;
    read-only; locked) stops the run with one line before the workers replace a graded copy,
    which would then no longer be the one the gradebook's grades are for (see ``_grade_all``)."""
    for aid in sorted({job["assignment"] for job in jobs}):
        gradebook.sync_assignment(aid)


def _record_all(futures, bar, stop, graded, count_lost=True):
    """The gradebook's side of grading, on the CPU the template and the notebooks leave: it can
    wait, they cannot. Records each result as it comes in, in one session, into ``graded`` (a
    ``_Graded``), until every future is done or ``stop`` is set (the cells are recorded before:
    ``_record_cells``). ``count_lost``: a job lost with its pool moves ``bar`` too."""
    _yield_cpu()
    pending = set(futures)
    with gradebook.open_gradebook() as gb:
        while pending and not stop.is_set():
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _record_done(gb, done, futures, bar, graded, count_lost)


def _record_done(gb, done, futures, bar, graded, count_lost=True):
    """Record the finished futures ``done`` (see ``_record_all``)."""
    for future in done:
        job = futures[future]
        name = f"{job['student']}/{job['assignment']}"
        try:
            result = future.result()
            _save(gb, result, job)
            graded.results.append(result)
        except BrokenProcessPool:  # a notebook ended its worker: see _grade_apart
            graded.lost.append(job)
            if not count_lost:
                continue
        except Exception as error:  # a grader fault: report it, go on with the others
            gb.db.rollback()
            graded.failures.append((name, f"{type(error).__name__}: {error}"))
            _record_failure(job, graded.failures[-1][1])
        bar.set_postfix_str(name, refresh=False)
        bar.update()


def _grade_all(pool, todo, jobs_n, progress, record_cells=None, bar=None):
    """Submit every job to ``pool`` (a ``_Pool``) and record the results in a thread of low
    priority while the notebooks run: a ``_Graded``. ``record_cells`` (when given) records the
    cells in the gradebook first, while the first notebooks run; the workers replace no graded
    copy until it has (``_Pool.cells_recorded``), and when it fails the pool is ended before
    they do. With ``bar``, a progress bar of a longer run (which stays open), jobs lost with
    the pool do not move it: they are graded again."""
    from .worker import grade

    # Each worker's last job starts no kernel for a next one.
    for index, job in enumerate(todo):
        job["next_kernel"] = index < len(todo) - jobs_n
    own = bar is None
    if own:
        bar = progress_bar(len(todo), "autograde", "nb", show=progress)
    futures = {pool.executor.submit(grade, job): job for job in todo}
    try:
        if record_cells is not None:
            record_cells()
    except BaseException:
        pool.abort()  # its workers wait to replace their graded copies: they never will
        if own:
            bar.leave = False  # the line that says why is the only one left
            bar.close()
        raise
    pool.cells_recorded.set()
    stop, graded = threading.Event(), _Graded()
    recorder = ThreadPoolExecutor(max_workers=1)
    recording = recorder.submit(_record_all, futures, bar, stop, graded, own)
    try:
        recording.result()
    except KeyboardInterrupt:
        stop.set()  # the result being written is finished, the others are left for next time
        wait([recording])
        raise GradingInterrupted(len(graded.results)) from None
    finally:
        recorder.shutdown(wait=False)
        if own:
            bar.close()
    return graded


def summary(ids, results, unchanged, failed=0):
    """A plain-text table: per assignment, how many were graded, their mean score and flags;
    then the counts (``failed``: submissions that a grader error left without a grade)."""
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
    if len(rows) > 1:
        text = format_table(rows)
    else:
        text = "nothing graded" if failed else "nothing new to grade"
    text += f"\n{len(results)} graded, {unchanged} unchanged"
    if failed:
        text += f", {failed} failed (grader errors above)"
    if flagged:
        text += "\nflagged:\n" + "\n".join(flagged)
    return text

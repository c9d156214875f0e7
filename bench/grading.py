"""Grading throughput on a class of synthetic submissions: plain nbclient execution against
``python -m grader autograde -j 1`` and ``-j 2``.

All three run on the same class, each as a new Python process (start-up included), in turn,
``ROUNDS`` times; the table shows medians and the ratios of the same round. Besides wall time it
shows CPU time per submission: of every process of the run, and of the autograde parent alone (on
two cores, whatever the parent burns is taken from the two workers). ``python -m bench.grading
measure ...`` is the small wrapper each run goes through: it reports its own CPU time.
"""

import contextlib
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader.course import RELEASE, REPO, SOURCE, nbgrader_env, source_notebooks

from .report import section, table

CLASS_SIZE = 20
ROUNDS = 3
FIXTURES = REPO / "tests" / "fixtures" / "answers"
OVERHEAD_TARGET = 1.3  # autograde -j 1 against plain execution, per submission, at most
SPEEDUP_TARGET = 1.6  # throughput of -j 2 against -j 1, at least
MARKER = "BENCH-CPU "
RESULTS = Path(__file__).resolve().parent / "results.md"


def grader_commands():
    """The grader subcommands this checkout has (parsed from ``python -m grader --help``)."""
    out = subprocess.run(
        [sys.executable, "-m", "grader", "--help"], capture_output=True, text=True, cwd=REPO
    )
    return out.stdout


def answers(assignment):
    """Answer sources by exercise: the solution's, and any wrong ones from the fixtures."""
    import nbformat

    source = nbformat.read(next((SOURCE / assignment).glob("*.ipynb")), as_version=4)
    correct = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    wrong = {}
    for fixture in sorted((FIXTURES / assignment).glob("*__*.py")):
        exercise = fixture.name.split("__")[0]
        wrong.setdefault(exercise, []).append(fixture.read_text())
    return correct, wrong


def make_class(assignment, folder):
    """``CLASS_SIZE`` submissions ``folder/student-NN/<assignment>/<notebook>``.

    Student k answers every exercise correctly except, for odd k, the exercise k names in the
    wrong-answer fixtures (cycling through them), so the class mixes passes and diagnoses.
    """
    import nbformat

    student_nb = next((RELEASE / assignment).glob("*.ipynb"))
    correct, wrong = answers(assignment)
    mistakes = [(ex, src) for ex, sources in sorted(wrong.items()) for src in sources]
    paths = []
    for k in range(CLASS_SIZE):
        nb = nbformat.read(student_nb, as_version=4)
        bad = mistakes[k % len(mistakes)] if mistakes and k % 2 else None
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in correct:
                cell.source = bad[1] if bad and bad[0] == grade_id else correct[grade_id]
        path = Path(folder) / f"student-{k:02d}" / assignment / student_nb.name
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def split_class(paths, folder, parts=2):
    """Copy the class of ``paths`` (from ``make_class``) into ``parts`` folders below ``folder``,
    student k into part k mod ``parts``: each part mixes correct and wrong submissions. Returns
    the part folders."""
    folders = [Path(folder) / f"part-{part}" for part in range(parts)]
    for k, path in enumerate(paths):
        student = path.parent.parent
        shutil.copytree(student, folders[k % parts] / student.name)
    return folders


def warm_masters(assignment):
    """Build the assignment's masters into the grader's cache, as any earlier grading run
    leaves them, so that every timed run starts alike."""
    from grader.master import Master

    for source in source_notebooks(assignment):
        Master.load(source, assignment)


# -- one measured run, in its own process ------------------------------------------------------


def _execute_all(folder, done):
    """The plain baseline: every notebook below ``folder``, one after the other, in its folder;
    ``done()`` after each."""
    from .execute import execute_allowing_errors

    for path in sorted(Path(folder).rglob("*.ipynb")):
        execute_allowing_errors(path)
        done()
    return 0


def measure(argv):
    """``measure plain FOLDER`` or ``measure grader ARGS...``: run it, then print this process's
    own CPU seconds (children excluded) and the times, from its start, at which each submission
    was done, on a line of its own."""
    start = time.perf_counter()
    finished = []

    def done():
        finished.append(time.perf_counter() - start)

    # The same import shortcut as the grader's (see grader/__init__.py), so that the baseline
    # does not pay 2 s the grader avoids.
    sys.modules.setdefault("rfc3987_syntax", None)
    if argv[0] == "plain":
        code = _execute_all(argv[1], done)
    else:
        from concurrent.futures import ProcessPoolExecutor

        from grader.__main__ import main

        submit = ProcessPoolExecutor.submit

        def submit_timed(self, fn, /, *args, **kwargs):
            future = submit(self, fn, *args, **kwargs)
            if (fn.__module__, fn.__name__) == ("grader.worker", "grade"):
                # done when its result is back in the grader (recorded in the gradebook later)
                future.add_done_callback(lambda _: done())
            return future

        ProcessPoolExecutor.submit = submit_timed
        code = main(argv[1:])
    gc.freeze()  # as `python -m grader` ends (see grader/__main__.py)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {"cpu": usage.ru_utime + usage.ru_stime, "finished": finished}
    print(MARKER + json.dumps(report), flush=True)
    return code


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(*runs):
    """``{"wall", "cpu", "parent_cpu", "first", "steady"}`` seconds of the ``runs`` (``(args,
    env)`` each) of ``python -m bench.grading measure ARGS``, all started at once: wall time
    until the last ends, CPU of every process of them all, CPU of their main processes alone,
    time to the first result of any, and seconds per submission from the first result to the
    last (of all of them together)."""
    with contextlib.ExitStack() as stack:
        # Output goes to files: a pipe that is not read while the other runs could fill up and
        # hold its run back.
        logs = [
            [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in ("stdout", "stderr")]
            for _ in runs
        ]
        before, start = _children_cpu(), time.perf_counter()
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.grading", "measure", *args],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=err,
                text=True,
            )
            for (args, env), (out, err) in zip(runs, logs, strict=True)
        ]
        for process in processes:
            process.wait()
        wall, cpu = time.perf_counter() - start, _children_cpu() - before
        for log in logs:
            for file in log:
                file.seek(0)
        outputs = [(out.read(), err.read()) for out, err in logs]
    parent_cpu, finished = 0.0, []
    for (args, _), process, (stdout, stderr) in zip(runs, processes, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{stdout[-2000:]}{stderr[-2000:]}")
        line = next(x for x in reversed(stdout.splitlines()) if x.startswith(MARKER))
        report = json.loads(line[len(MARKER) :])
        parent_cpu += report["cpu"]
        finished += report["finished"]
    if len(finished) != CLASS_SIZE:
        raise RuntimeError(f"{len(finished)} of {CLASS_SIZE} submissions were done")
    finished.sort()
    return {
        "wall": wall,
        "cpu": cpu,
        "parent_cpu": parent_cpu,
        "first": finished[0],
        "steady": (finished[-1] - finished[0]) / (len(finished) - 1),
    }


def _plain(folder):
    # The grader's kernels run with nbgrader's NBGRADER_EXECUTION set: so do these, so that
    # both run the same notebook code (the course's explorers draw no PNG while graded).
    env = dict(os.environ) | {"MPLBACKEND": "Agg", "NBGRADER_EXECUTION": "autograde"}
    return _timed((["plain", str(folder)], env))


def _autograde(assignment, folders, jobs):
    """``autograde -j jobs`` of each class folder of ``folders``, all at once, each on a fresh
    workspace of its own (``collect`` first, not timed)."""
    with contextlib.ExitStack() as stack:
        runs = []
        for folder in folders:
            workspace = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-grading-"))
            env = nbgrader_env() | {"BACKPROP_GRADING_DIR": workspace}
            subprocess.run(
                [sys.executable, "-m", "grader", "collect", str(folder)],
                env=env,
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            runs.append((["grader", "autograde", "-j", str(jobs), assignment], env))
        return _timed(*runs)


# -- the table -----------------------------------------------------------------------------------


def _median(samples, how, what):
    return statistics.median(s[how][what] for s in samples)


def _ratio(samples, num, den, what="wall"):
    """Median over rounds of ``what(num) / what(den)``, both of the same round."""
    return statistics.median(s[num][what] / s[den][what] for s in samples)


def _cores(samples, how):
    """Cores a run kept busy on average: CPU seconds of all its processes per wall second."""
    return _median(samples, how, "cpu") / _median(samples, how, "wall")


def _verdicts(samples, scaling=2.0):
    """``(overhead, speedup, notes)``: the two ratios the targets are about, and a sentence on
    each missed target saying what this run's figures show about why (``scaling``: what two
    busy cores give over one, see ``two_core_scaling``)."""
    overhead = _ratio(samples, "j1", "plain")
    speedup = _ratio(samples, "j1", "j2")
    cores = os.cpu_count() or 1
    notes = []
    if overhead > OVERHEAD_TARGET:
        cpu = _median(samples, "j1", "cpu") / _median(samples, "plain", "cpu")
        notes.append(
            f"Target missed: `autograde -j 1` took {overhead:.2f}x the time of plain execution"
            f" (target {OVERHEAD_TARGET}x) for {cpu:.2f}x its CPU time."
        )
    if speedup < SPEEDUP_TARGET:
        per_submission = {how: _median(samples, how, "cpu") / CLASS_SIZE for how in ("j1", "j2")}
        notes.append(
            f"Target missed: `-j 2` gave {speedup:.2f}x the throughput of `-j 1` (target"
            f" {SPEEDUP_TARGET}x). From the first result to the last it graded"
            f" {_ratio(samples, 'j1', 'j2', 'steady'):.2f}x as many submissions per second as"
            f" `-j 1`, which alone keeps {_cores(samples, 'j1'):.2f} of the {cores} cores busy"
            " (the next kernel starts, and results are recorded, while a notebook runs): `-j 2`"
            f" is bound by CPU, {per_submission['j2']:.2f} s per submission of all its processes"
            f" ({per_submission['j1']:.2f} s for `-j 1`). The start-up does not shrink with more"
            f" workers: the first result came after {_median(samples, 'j1', 'first'):.2f} s and"
            f" {_median(samples, 'j2', 'first'):.2f} s. Had `-j 2` cost nothing beyond what"
            " `-j 1` costs (the same start-up and end, then every submission at"
            f" {scaling:.2f}x the pace of `-j 1`, what two busy cores give over one), it would"
            f" have given {_best_speedup(samples, scaling):.2f}x."
        )
        if "halves" in samples[0]:
            notes[-1] += (
                " Two `autograde -j 1` runs at once, each on half the class and sharing nothing,"
                f" gave {_ratio(samples, 'j1', 'halves'):.2f}x the throughput of one `-j 1` on"
                " the whole class: what this machine gives two graders side by side."
            )
    return overhead, speedup, notes


def _best_speedup(samples, scaling=2.0):
    """The throughput of ``-j 2`` over ``-j 1`` had ``-j 2`` cost nothing beyond what ``-j 1``
    costs: ``-j 1``'s start-up and end as measured, and every submission after the first at
    ``scaling`` times ``-j 1``'s pace (what two busy cores give over one: 2.0 at best). The
    median over rounds."""
    after = CLASS_SIZE - 1
    return statistics.median(
        s["j1"]["wall"]
        / (s["j1"]["wall"] - after * s["j1"]["steady"] + after * s["j1"]["steady"] / scaling)
        for s in samples
    )


SPIN = "x = 0\nfor i in range(6_000_000):\n    x += i * i"


def _spin(copies):
    """Wall seconds for ``copies`` processes each running the same pure-Python loop at once."""
    start = time.perf_counter()
    running = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(copies)]
    for process in running:
        process.wait()
    return time.perf_counter() - start


def two_core_scaling(rounds=3):
    """How much more work this machine does with both cores busy than with one: the median over
    ``rounds`` of ``2 * wall(one copy) / wall(two copies at once)`` of a CPU-bound loop (2.0 on
    two cores that share nothing; less where they share a physical core or a busy host)."""
    return statistics.median(2 * _spin(1) / _spin(2) for _ in range(rounds))


def _per_round(samples):
    """The raw wall times, one round after the other."""
    return "; ".join(
        ", ".join(f"{how} {timings['wall']:.1f} s" for how, timings in s.items()) for s in samples
    )


def _rows(samples):
    plain_cpu = _median(samples, "plain", "cpu")

    def row(label, how, relative, target, verdict):
        wall = _median(samples, how, "wall") / CLASS_SIZE
        cpu = _median(samples, how, "cpu") / CLASS_SIZE
        parent = _median(samples, how, "parent_cpu") / CLASS_SIZE
        share = f" ({cpu * CLASS_SIZE / plain_cpu:.2f}x plain)" if how != "plain" else ""
        return [
            label,
            f"{wall:.2f}",
            f"{_median(samples, how, 'first'):.2f}",
            f"{_median(samples, how, 'steady'):.2f}",
            relative,
            f"{cpu:.2f}{share}",
            f"{parent:.3f}",
            target,
            verdict,
        ]

    overhead, speedup, _ = _verdicts(samples)
    j2_plain = _ratio(samples, "j2", "plain")
    rows = [
        row(HOWS["plain"], "plain", "1.00x", "", ""),
        row(
            HOWS["j1"],
            "j1",
            f"{overhead:.2f}x",
            f"<= {OVERHEAD_TARGET}x plain",
            "met" if overhead <= OVERHEAD_TARGET else "missed",
        ),
        row(
            HOWS["j2"],
            "j2",
            f"{j2_plain:.2f}x ({speedup:.2f}x the throughput of -j 1)",
            f">= {SPEEDUP_TARGET}x -j 1",
            "met" if speedup >= SPEEDUP_TARGET else "missed",
        ),
    ]
    if "halves" in samples[0]:
        throughput = _ratio(samples, "j1", "halves")
        relative = f"{_ratio(samples, 'halves', 'plain'):.2f}x ({throughput:.2f}x the throughput"
        relative += " of -j 1)"
        rows.append(row(HOWS["halves"], "halves", relative, "for reference", ""))
    return rows


def run():
    """The grading table, or a row saying which piece has not landed."""
    commands = grader_commands()
    assignments = sorted(p.name for p in RELEASE.glob("*") if any(p.glob("*.ipynb")))
    missing = [c for c in ("collect", "autograde") if c not in commands]
    if missing or not assignments:
        why = f"`python -m grader {'/'.join(missing)}` not available" if missing else ""
        why = why or "no released notebooks in notebooks/"
        body = table(["measure", "value"], [["grading throughput", f"not measured: {why}"]])
        return section("Grading throughput", body)
    assignment = assignments[0]
    load_before = os.getloadavg()[0]
    samples = _rounds(assignment, ROUNDS)
    load_after = os.getloadavg()[0]
    by_assignment = _by_assignment(assignments, samples)
    scaling = two_core_scaling()
    _, _, missed = _verdicts(samples, scaling)
    headers = [
        "how",
        "seconds per submission",
        "first result after, s",
        "seconds per submission after the first",
        "relative to plain",
        "CPU seconds per submission, all processes",
        "parent's CPU seconds per submission",
        "target",
        "",
    ]
    return section(
        "Grading throughput",
        table(headers, _rows(samples)) + "\n\n" + by_assignment,
        notes=[
            f"{CLASS_SIZE} synthetic submissions of `{assignment}`: half correct, half with one"
            " wrong answer from the test fixtures.",
            "Seconds per submission: the whole run's wall time over the class size, start-up"
            " included; the targets are judged on it. The next two columns split it: when the"
            " first submission was done (its result back in the grader, which records it in the"
            " gradebook), and the time per submission from then to the last.",
            f"Each run is a new Python process, start-up included; {ROUNDS} rounds of the four"
            " in turn, medians; ratios are medians of the ratios of the same round. `autograde`"
            " starts on a fresh workspace each time (`collect` first, not timed), with the"
            " assignment's masters in the grader's cache, as an earlier run leaves them.",
            "The last row is not a way to grade, only a yardstick for `-j 2`: the class split"
            " in two (students in turn), each half in a workspace of its own, graded by two"
            " `autograde -j 1` started at once; its times run from their start to the end of"
            " the later one.",
            "CPU seconds: user + system of every process of the run (kernels, workers, the"
            " parent). The parent's CPU is that of the `python -m grader` process alone (for"
            " plain execution: the process that runs the notebooks, kernels excluded).",
            f"Whole class, per round: {_per_round(samples)}. Load average (1 min)"
            f" {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores.",
            "What two busy cores give on this machine: two copies of a pure-Python loop at once"
            f" did {scaling:.2f}x the work per second of one copy alone (2.0 would be two"
            " independent cores): what `-j 2` can gain over a `-j 1` that keeps one core busy.",
            *missed,
        ],
    )


HOWS = {
    "plain": "plain nbclient execution, serial",
    "j1": "`autograde -j 1`",
    "j2": "`autograde -j 2`",
    "halves": "two `autograde -j 1` at once, each on half the class",
}


def _rounds(assignment, rounds, hows=tuple(HOWS)):
    """``rounds`` samples ``{how: timings}`` (see ``_timed``) for each run of ``hows`` (keys of
    ``HOWS``), the runs of a round one after the other, on a new class of ``assignment``."""
    samples = []
    with tempfile.TemporaryDirectory(prefix="bench-class-") as folder:
        whole = Path(folder) / "class"
        halves = split_class(make_class(assignment, whole), Path(folder) / "halves")
        warm_masters(assignment)
        runs = {
            "plain": lambda: _plain(whole),
            "j1": lambda: _autograde(assignment, [whole], 1),
            "j2": lambda: _autograde(assignment, [whole], 2),
            "halves": lambda: _autograde(assignment, halves, 1),
        }
        for _ in range(rounds):
            samples.append({how: runs[how]() for how in hows})
    return samples


def _by_assignment(assignments, judged, rounds=2):
    """A table of ``-j 2`` against ``-j 1`` for a class of each of ``assignments`` (the first
    one's rounds are ``judged``, the samples of the main table; the others get ``rounds`` of
    their own), and a last row for all of them graded one after the other, as over a course."""
    samples = {assignments[0]: judged}
    for assignment in assignments[1:]:
        samples[assignment] = _rounds(assignment, rounds, hows=("j1", "j2"))
    rows = []
    for assignment, runs in samples.items():
        ratios = [s["j1"]["wall"] / s["j2"]["wall"] for s in runs]
        rows.append(
            _speedup_row(
                f"`{assignment}`",
                [_median(runs, how, "wall") / CLASS_SIZE for how in ("j1", "j2")],
                _median(runs, "j1", "steady"),
                ratios,
            )
        )
    # The course: every assignment's class in turn, round by round (the rounds they share).
    shared = min(len(runs) for runs in samples.values())
    course = [
        sum(runs[k]["j1"]["wall"] for runs in samples.values())
        / sum(runs[k]["j2"]["wall"] for runs in samples.values())
        for k in range(shared)
    ]
    walls = [
        sum(_median(runs, how, "wall") for runs in samples.values()) / (CLASS_SIZE * len(samples))
        for how in ("j1", "j2")
    ]
    steady = statistics.median(_median(runs, "j1", "steady") for runs in samples.values())
    rows.append(
        _speedup_row(
            f"all {len(samples)}, one after the other",
            walls,
            steady,
            course,
        )
    )
    headers = [
        "class of",
        "seconds per submission, -j 1",
        "-j 1 after the first",
        "seconds per submission, -j 2",
        "-j 2 throughput over -j 1, median (rounds)",
        "target",
        "",
    ]
    return section(
        "`-j 2` against `-j 1`, assignment by assignment",
        table(headers, rows),
        notes=[
            f"A class of {CLASS_SIZE} of each assignment, made as above; the first row is the"
            f" table's class and rounds, the others {rounds} rounds of `-j 1` and `-j 2` in turn."
            " The more work a notebook does, the less each submission's fixed costs (start-up,"
            " a kernel's start and end, recording the result) weigh, and the closer `-j 2` comes"
            " to what two cores give.",
            "The last row grades every class in turn, as over a course: its seconds per"
            " submission are over all the classes' submissions, its ratio that of the summed"
            " wall times of each round.",
        ],
        level=3,
    )


def _speedup_row(label, walls, steady, ratios):
    """One row of ``_by_assignment``: its ratio is the median of the rounds' ``ratios``."""
    ratio = statistics.median(ratios)
    return [
        label,
        f"{walls[0]:.2f}",
        f"{steady:.2f}",
        f"{walls[1]:.2f}",
        f"{ratio:.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})",
        f">= {SPEEDUP_TARGET}x",
        "met" if ratio >= SPEEDUP_TARGET else "missed",
    ]


def write_section(text, path=RESULTS):
    """Put ``text`` in place of the grading section of ``results.md``, keeping the others."""
    old = path.read_text()
    start = old.find("## Grading throughput")
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text)
        return
    end = old.find("\n## ", start + 1)
    rest = "\n" + old[end + 1 :] if end >= 0 else ""
    path.write_text(old[:start] + text.rstrip("\n") + "\n" + rest)


if __name__ == "__main__":
    # measure ...: one measured run (see measure); --write: also update results.md
    if sys.argv[1:2] == ["measure"]:
        sys.exit(measure(sys.argv[2:]))
    text = run()
    print(text)
    if "--write" in sys.argv[1:]:
        write_section(text)

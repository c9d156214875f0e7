"""The benchmarks' own logic: what they count, how they pair rounds, how they judge a target,
and the class of submissions they grade. No figure is timed here (see ``bench/``)."""

import itertools
import json
import os
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO

from bench import grading, step, timing
from bench.report import blas_threads
from bench.timing import Rounds, interleaved

THREADS_OF_NUMPY = "from backprop.blas import threads; print(threads())"


def _threads_in_new_process(code, **env):
    """What ``code`` prints in a new Python process with ``env`` added to this one's."""
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=os.environ | env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="numpy's bundled OpenBLAS is looked up on Linux"
)
def test_the_benchmarks_run_numpy_on_one_blas_thread():
    """``python -m bench`` asks for one thread itself, whatever the environment says; without
    it, numpy takes what the environment says (so the check can fail)."""
    many = {"OPENBLAS_NUM_THREADS": "2"}
    assert _threads_in_new_process(THREADS_OF_NUMPY, **many) == "2"
    assert _threads_in_new_process(f"import bench; {THREADS_OF_NUMPY}", **many) == "1"
    header = "import bench; from bench.report import header; print(header())"
    assert "| BLAS threads | 1 |" in _threads_in_new_process(header, **many)


def test_the_header_says_what_the_environment_asks_of_another_blas(monkeypatch):
    """Where numpy's bundled OpenBLAS is not found (another BLAS), the header shows the thread
    variables instead of a count."""
    from backprop import blas

    monkeypatch.setattr(blas, "threads", lambda: 5)
    assert blas_threads() == 5
    monkeypatch.setattr(blas, "threads", lambda: None)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    shown = "OPENBLAS_NUM_THREADS=3, OMP_NUM_THREADS=2, MKL_NUM_THREADS=unset"
    assert blas_threads() == shown


# -- the training step -------------------------------------------------------------------------


def test_step_flops_count_every_product_but_the_first_layers_dx():
    n = 128
    first = 2 * n * 784 * 256  # forward, and dW; no dx for the data
    second = 2 * n * 256 * 10  # forward, dW and dx
    assert step.step_flops((784, 256, 10), n) == 2 * first + 3 * second
    deep = step.step_flops((784, 1024, 1024, 10), 256)
    assert deep == 256 * (4 * 784 * 1024 + 6 * 1024 * 1024 + 6 * 1024 * 10)


@pytest.mark.parametrize(
    ("sizes", "n", "against_torch", "share", "expected"),
    [
        ((784, 256, 10), 128, 0.9, 75.0, "met"),
        ((784, 256, 10), 128, 0.9, 74.9, "missed"),
        ((784, 256, 10), 128, 1.01, 90.0, "missed"),
        ((784, 1024, 1024, 10), 256, 1.0, 80.0, "met"),
        ((784, 1024, 1024, 10), 256, None, 80.0, "met"),  # no PyTorch: the share alone
        ((784, 1024, 1024, 10), 256, None, 70.0, "missed"),
        ((64, 64, 10), 32, 0.5, 5.0, "met"),
        ((64, 64, 10), 32, 0.51, 50.0, "missed"),
        ((64, 64, 10), 32, None, 50.0, "not measured"),
        ((64, 64, 10), None, 2.0, 5.0, ""),  # the full batch has no target
    ],
)
def test_step_verdicts_follow_the_targets(sizes, n, against_torch, share, expected):
    assert step.verdict(sizes, n, against_torch, share) == expected


def test_ratios_pair_the_candidates_round_by_round():
    """The ratio is the median of same-round ratios, not a ratio of medians (2.0 here): load
    that changes between rounds cancels out."""
    rounds = Rounds({"a": [1.0, 4.0, 10.0], "b": [2.0, 2.0, 40.0]})
    assert rounds.ratio("a", "b") == 0.5
    assert rounds["a"] == 4.0


def test_interleaved_times_every_candidate_in_every_round():
    calls = {"a": 0, "b": 0}

    def count(name):
        def call():
            calls[name] += 1

        return call

    rounds = interleaved({name: count(name) for name in calls}, rounds=4, block=0.001)
    assert set(rounds.samples) == {"a", "b"}
    assert all(len(times) == 4 for times in rounds.samples.values())
    assert calls["a"] >= 5 and calls["b"] >= 5  # warm-up and calibration call, then 4 rounds


def test_interleaved_groups_alternate_every_group_in_every_round():
    """A burst of load must fall on a few rounds of every group, so no group's rounds run one
    after the other: each round times each candidate of each group, in turn."""
    order = []

    def candidate(name):
        return lambda: order.append(name)

    groups = [{"a": candidate("a"), "b": candidate("b")}, {"c": candidate("c")}]
    timed = timing.interleaved_groups(groups, rounds=3, block=0.001)
    assert [set(rounds.samples) for rounds in timed] == [{"a", "b"}, {"c"}]
    assert all(len(t) == 3 for rounds in timed for t in rounds.samples.values())
    calibration = 2 * 3  # a warm-up and a timed call per candidate, before any round
    blocks = [name for name, _ in itertools.groupby(order[calibration:])]
    assert blocks == ["a", "b", "c"] * 3


def test_interleaved_does_not_charge_a_block_for_the_caches_the_one_before_left(monkeypatch):
    """On a fake clock: a call right after the other candidate's costs 10 (its data is out of
    the caches), any other call 1. Every block must time warm calls only."""
    now, last = [0.0], [None]

    def candidate(name):
        def call():
            now[0] += 1.0 if last[0] == name else 10.0
            last[0] = name

        return call

    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    rounds = interleaved({"a": candidate("a"), "b": candidate("b")}, rounds=3, block=5.0)
    assert rounds.samples == {"a": [1.0] * 3, "b": [1.0] * 3}


# -- grading throughput ------------------------------------------------------------------------


def _sample(wall, first, steady, cpu=10.0):
    return {"wall": wall, "first": first, "steady": steady, "cpu": cpu, "parent_cpu": 1.0}


def _samples(j2_wall, rounds=3):
    """Rounds in which plain execution takes 40 s, ``-j 1`` 6 s, ``-j 2`` ``j2_wall`` s and two
    ``-j 1`` on half the class each 4.8 s."""
    return [
        {
            "plain": _sample(40.0, 2.0, 2.0, cpu=30.0),
            "j1": _sample(6.0, 1.25, 0.25),
            "j2": _sample(j2_wall, 1.5, 0.2),
            "halves": _sample(4.8, 1.6, 0.15),
        }
        for _ in range(rounds)
    ]


@pytest.mark.parametrize("scaling", [2.0, 1.87])
def test_the_bound_is_j1_with_its_submissions_at_the_pace_two_cores_give(scaling):
    """``-j 1``'s start and end (6 s less its 19 submissions after the first at 0.25 s each),
    then those 19 at ``scaling`` times its pace."""
    after = grading.CLASS_SIZE - 1
    expected = 6.0 / (6.0 - after * 0.25 + after * 0.25 / scaling)
    assert grading._best_speedup(_samples(5.0), scaling) == pytest.approx(expected)
    _, _, notes = grading._verdicts(_samples(5.0), scaling)
    assert f"would have given {expected:.2f}x" in notes[0]


def test_a_missed_speedup_is_judged_and_explained():
    overhead, speedup, notes = grading._verdicts(_samples(5.0))
    assert overhead == pytest.approx(6.0 / 40.0) and speedup == pytest.approx(1.2)
    assert len(notes) == 1 and notes[0].startswith("Target missed: `-j 2` gave 1.20x")
    assert "each on half the class and sharing nothing, gave 1.25x the throughput" in notes[0]
    rows = grading._rows(_samples(5.0))
    assert [row[-1] for row in rows] == ["", "met", "missed", ""]
    assert rows[-1][0] == "two `autograde -j 1` at once, each on half the class"
    assert rows[-1][4] == "0.12x (1.25x the throughput of -j 1)"
    assert rows[-1][-2] == "for reference"


def test_a_met_speedup_adds_no_note():
    _, speedup, notes = grading._verdicts(_samples(3.5))
    assert speedup == pytest.approx(6.0 / 3.5) and notes == []
    assert [row[-1] for row in grading._rows(_samples(3.5))] == ["", "met", "met", ""]


def _fake_measure(tmp_path, name, finished, code=0, meets=None):
    """A script that prints what ``measure`` prints for a run whose results came at ``finished``
    seconds, after that long, and exits with ``code``. With ``meets`` (another fake's name), it
    first waits until that one is running too, and fails when it never comes: only runs started
    together can both finish."""
    script = tmp_path / f"{name}.py"
    report = json.dumps({"cpu": 0.5, "finished": finished})
    meeting = ""
    if meets is not None:
        here, there = tmp_path / f"{name}.running", tmp_path / f"{meets}.running"
        meeting = (
            f"open({str(here)!r}, 'w').close()\n"
            "deadline = time.monotonic() + 10\n"
            f"while not os.path.exists({str(there)!r}):\n"
            "    if time.monotonic() > deadline:\n"
            f"        sys.exit('{name} ran without {meets}')\n"
            "    time.sleep(0.01)\n"
        )
    script.write_text(
        f"import os, sys, time\n{meeting}time.sleep({max(finished)})\n"
        f"print({grading.MARKER!r} + {report!r})\nsys.exit({code})\n"
    )
    return script


def test_runs_timed_together_merge_their_results(tmp_path, monkeypatch):
    """Two runs started at once (each waits until the other runs: taken one after the other,
    neither would finish): the results of both are merged in time order, the parents' CPU
    added."""
    monkeypatch.setattr(grading, "CLASS_SIZE", 4)
    a = _fake_measure(tmp_path, "a", [0.2, 0.4], meets="b")
    b = _fake_measure(tmp_path, "b", [0.1, 0.7], meets="a")
    calls = []
    real_popen = grading.subprocess.Popen

    def popen(argv, **kwargs):
        calls.append(argv)
        return real_popen([sys.executable, str(argv[-1])], **kwargs)

    monkeypatch.setattr(grading.subprocess, "Popen", popen)
    timings = grading._timed((["x", str(a)], None), (["x", str(b)], None))
    assert len(calls) == 2
    assert timings["wall"] >= 0.7
    assert timings["parent_cpu"] == pytest.approx(1.0)
    assert timings["first"] == pytest.approx(0.1)
    assert timings["steady"] == pytest.approx((0.7 - 0.1) / 3)


def test_a_failed_run_among_runs_timed_together_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(grading, "CLASS_SIZE", 2)
    a = _fake_measure(tmp_path, "a", [0.1])
    b = _fake_measure(tmp_path, "b", [0.1], code=3)
    real_popen = grading.subprocess.Popen
    monkeypatch.setattr(
        grading.subprocess,
        "Popen",
        lambda argv, **kwargs: real_popen([sys.executable, str(argv[-1])], **kwargs),
    )
    with pytest.raises(RuntimeError, match=f"x {b} failed"):
        grading._timed((["x", str(a)], None), (["x", str(b)], None))


def test_the_class_splits_into_halves_that_each_mix_right_and_wrong(tmp_path):
    paths = grading.make_class("01-chain-rule", tmp_path / "class")
    halves = grading.split_class(paths, tmp_path / "halves")
    students = [sorted(p.name for p in half.iterdir()) for half in halves]
    assert students == [
        [f"student-{k:02d}" for k in range(0, grading.CLASS_SIZE, 2)],
        [f"student-{k:02d}" for k in range(1, grading.CLASS_SIZE, 2)],
    ]
    copied = halves[1] / "student-03" / paths[3].relative_to(paths[3].parent.parent)
    assert copied.read_bytes() == paths[3].read_bytes()


def test_each_assignment_and_the_whole_course_get_a_speedup_row(monkeypatch):
    """The first assignment's row comes from the main table's rounds; the others from rounds of
    their own; the course's ratio is that of the wall times summed over the classes."""
    heavy = [{"j1": _sample(20.0, 2.0, 0.9), "j2": _sample(wall, 2.0, 0.5)} for wall in (10, 11)]
    asked = []

    def rounds(assignment, count, hows):
        asked.append((assignment, count, hows))
        return heavy

    monkeypatch.setattr(grading, "_rounds", rounds)
    text = grading._by_assignment(["01-a", "05-b"], _samples(4.0, rounds=2))
    assert asked == [("05-b", 2, ("j1", "j2"))]
    rows = {line.split(" | ")[0]: line.split(" | ") for line in text.splitlines() if "|" in line}
    light, heavier, course = (
        rows["| `01-a`"],
        rows["| `05-b`"],
        rows["| all 2, one after the other"],
    )
    assert light[4] == "1.50x (1.50, 1.50)" and light[-1].startswith("missed")
    assert heavier[1:5] == ["1.00", "0.90", "0.53", "1.91x (2.00, 1.82)"]
    assert heavier[-1].startswith("met")
    # (6 + 20) / (4 + 10) and (6 + 20) / (4 + 11)
    assert course[4] == "1.80x (1.86, 1.73)" and course[-1].startswith("met")


def _answers(path, master_answers):
    nb = nbformat.read(path, as_version=4)
    return {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in nb.cells
        if cell.metadata.get("nbgrader", {}).get("grade_id") in master_answers
    }


def test_the_class_mixes_correct_submissions_and_one_mistake_each(tmp_path):
    assignment = "01-chain-rule"
    correct, wrong = grading.answers(assignment)
    paths = grading.make_class(assignment, tmp_path)
    assert len(paths) == grading.CLASS_SIZE
    assert len({p.parent.parent.name for p in paths}) == grading.CLASS_SIZE
    fixtures = {source for sources in wrong.values() for source in sources}
    mistakes = []
    for k, path in enumerate(paths):
        given = _answers(path, correct)
        assert set(given) == set(correct)
        differ = [gid for gid in correct if given[gid] != correct[gid]]
        if k % 2 == 0:
            assert differ == [], f"student {k} should be all correct"
        else:
            assert len(differ) == 1, f"student {k} should make exactly one mistake"
            assert given[differ[0]] in fixtures
            mistakes.append(given[differ[0]])
    assert len(set(mistakes)) > 1, "the wrong answers should vary across the class"


def test_writing_the_grading_section_keeps_the_others(tmp_path):
    results = tmp_path / "results.md"
    results.write_text(
        "# Results\n\n## Step\n\nstep table\n\n## Grading throughput\n\nold\n\n## Next\n\nnext\n"
    )
    grading.write_section("## Grading throughput\n\nnew\n", results)
    text = results.read_text()
    assert text.index("step table") < text.index("new") < text.index("## Next\n\nnext")
    assert "old" not in text


# -- the command ----------------------------------------------------------------------------------


@pytest.fixture
def sections(monkeypatch, tmp_path):
    """The benchmark command with every section replaced by one that only says its name, and
    its results file in ``tmp_path``: returns the command's module."""
    from bench import __main__ as command

    for module, name in zip(command.SECTIONS, command.NAMES, strict=True):
        monkeypatch.setattr(module, "run", lambda name=name: f"## {name} ran\n")
    monkeypatch.setattr(command, "RESULTS", tmp_path / "results.md")
    return command


def test_a_named_section_runs_alone_and_writes_no_results(sections, capsys):
    assert sections.main(["loop"]) == 0
    out = capsys.readouterr().out
    assert "## loop ran" in out and "## step ran" not in out
    assert not sections.RESULTS.exists()


def test_all_sections_run_and_are_written(sections):
    assert sections.main([]) == 0
    text = sections.RESULTS.read_text()
    assert text.startswith("# Benchmark results")
    assert all(f"## {name} ran" in text for name in sections.NAMES)


def test_an_unknown_section_is_an_error_that_lists_them(sections, capsys):
    with pytest.raises(SystemExit) as stop:
        sections.main(["stpe"])
    assert stop.value.code == 2
    assert "no section stpe (sections: step, loop, gradcheck, notebooks, grading)" in (
        capsys.readouterr().err
    )

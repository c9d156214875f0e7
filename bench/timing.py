"""Timing helpers: medians of repeated runs, and interleaved runs so that ratios between two
candidates are measured under the same machine load."""

import statistics
import time


def _per_call(fn, number):
    """Seconds per call of ``fn`` over ``number`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def calibrate(fn, block=0.02):
    """How many calls of ``fn`` fill about ``block`` seconds (at least 1); warms ``fn`` up."""
    fn()
    once = _per_call(fn, 1)
    return max(1, int(block / max(once, 1e-7)))


def median_time(fn, rounds=7, block=0.02):
    """Median over ``rounds`` blocks of the seconds one call of ``fn`` takes."""
    number = calibrate(fn, block)
    return statistics.median(_per_call(fn, number) for _ in range(rounds))


class Rounds:
    """Seconds per call of each candidate, round by round: ``samples[name][i]`` is round i.

    ``rounds[name]`` is the median; ``ratio(a, b)`` the median over rounds of a's time over
    b's in the same round, so a change of machine load between rounds cancels out.
    """

    def __init__(self, samples):
        self.samples = samples

    def __getitem__(self, name):
        return statistics.median(self.samples[name])

    def ratio(self, a, b):
        pairs = zip(self.samples[a], self.samples[b], strict=True)
        return statistics.median(x / y for x, y in pairs)


def interleaved(fns, rounds=9, block=0.02):
    """``Rounds`` of ``fns`` (name -> callable), each timed in turn in every round.

    Alternating the candidates spreads any change in machine load over all of them, so the
    ratio of two candidates is fair even when the absolute figures drift. Each candidate's
    block starts with one call that is not timed: the candidate before it has filled the CPU's
    caches with its own data, and without that call the first call of every block would be
    charged for refilling them (a training step run in a loop never pays it).
    """
    return interleaved_groups([fns], rounds, block)[0]


def interleaved_groups(groups, rounds=9, block=0.02):
    """``interleaved`` for several groups of candidates at once: a list of ``Rounds``, one per
    group (name -> callable). Each round times every candidate of every group in turn, so a
    burst of load on a shared machine falls on a few rounds of each group rather than on every
    round of one, and the medians of each group can pass over it."""
    numbers = [{name: calibrate(fn, block) for name, fn in fns.items()} for fns in groups]
    samples = [{name: [] for name in fns} for fns in groups]
    for _ in range(rounds):
        for fns, calls, times in zip(groups, numbers, samples, strict=True):
            for name, fn in fns.items():
                fn()
                times[name].append(_per_call(fn, calls[name]))
    return [Rounds(times) for times in samples]


def wall_time(fn):
    """Seconds one call of ``fn`` takes, and its result: ``(seconds, result)``."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result

"""Progress bars for the instructor's commands that take a while."""

import sys


def bar(total, desc, unit, show=None):
    """A tqdm bar on stderr, shown when ``show``, or when None, only when stderr is a terminal
    (logs and tests stay clean).

    It starts no thread: tqdm's monitor thread (which only acts on a bar left unmoved for 10 s)
    would be running while ``autograde`` forks the workers of a new pool, and a fork copies no
    thread but its own, whatever lock the others held (from Python 3.12 ``fork()`` warns of the
    deadlocks that can follow)."""
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0

    return Bar(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=None if show is None else not show,
    )

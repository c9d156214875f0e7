"""Progress bars for the instructor's commands that take a while."""

import sys


def bar(total, desc, unit):
    """A tqdm bar on stderr, shown only when stderr is a terminal (logs and tests stay clean)."""
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, disable=None
    )

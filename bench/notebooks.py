"""Execution time of each solution notebook, headless, kernel start included."""

import statistics

from grader.course import SOURCE

from .execute import execute
from .report import section, table
from .timing import wall_time

RUNS = 3


def run():
    """One row per ``solutions/NN-topic/*.ipynb``: median of ``RUNS`` executions."""
    paths = sorted(SOURCE.glob("*/*.ipynb"))
    rows = []
    for path in paths:
        try:
            seconds = statistics.median(
                wall_time(lambda p=path: execute(p))[0] for _ in range(RUNS)
            )
            rows.append([f"{path.parent.name}/{path.name}", f"{seconds:.2f}"])
        except Exception as error:  # noqa: BLE001 (a broken notebook is a row, not a crash)
            rows.append([f"{path.parent.name}/{path.name}", f"fails: {type(error).__name__}"])
    if not rows:
        rows.append(["(no solution notebooks yet)", ""])
    return section(
        "Solution notebooks executed headless",
        table(["notebook", "seconds (median of 3, kernel start included)"], rows),
        notes=["nbclient, fresh python3 kernel per run, matplotlib Agg backend."],
    )

"""Grading throughput on a class of synthetic submissions: plain nbclient execution against
``python -m grader autograde -j 1`` and ``-j 2``."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from grader.course import RELEASE, REPO, SOURCE, nbgrader_env

from .execute import execute_allowing_errors
from .report import section, table
from .timing import wall_time

CLASS_SIZE = 20
FIXTURES = REPO / "tests" / "fixtures" / "answers"


def grader_commands():
    """The grader subcommands this checkout has (parsed from ``python -m grader --help``)."""
    out = subprocess.run(
        [sys.executable, "-m", "grader", "--help"], capture_output=True, text=True, cwd=REPO
    )
    return out.stdout


def answers(assignment):
    """Answer sources by exercise: the solution's, and any wrong ones from the fixtures."""
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


def autograde_seconds(assignment, submissions, jobs):
    """Seconds ``python -m grader autograde -j jobs`` takes on a fresh workspace."""
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as workspace:
        env = nbgrader_env() | {"BACKPROP_GRADING_DIR": workspace}
        run = lambda *args: subprocess.run(  # noqa: E731
            [sys.executable, "-m", "grader", *args],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        run("collect", str(submissions))
        seconds, _ = wall_time(lambda: run("autograde", "-j", str(jobs), assignment))
        return seconds


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
    os.environ.setdefault("MPLBACKEND", "Agg")
    with tempfile.TemporaryDirectory(prefix="bench-class-") as folder:
        paths = make_class(assignment, folder)
        plain, _ = wall_time(lambda: [execute_allowing_errors(p) for p in paths])
        one = autograde_seconds(assignment, folder, 1)
        two = autograde_seconds(assignment, folder, 2)
    per = [plain / CLASS_SIZE, one / CLASS_SIZE, two / CLASS_SIZE]
    rows = [
        ["plain nbclient execution, serial", f"{per[0]:.2f}", "1.00x", ""],
        ["`autograde -j 1`", f"{per[1]:.2f}", f"{per[1] / per[0]:.2f}x", "<= 1.3x plain"],
        [
            "`autograde -j 2`",
            f"{per[2]:.2f}",
            f"{per[2] / per[0]:.2f}x ({per[1] / per[2]:.2f}x the throughput of -j 1)",
            ">= 1.6x -j 1",
        ],
    ]
    return section(
        "Grading throughput",
        table(["how", "seconds per submission", "relative to plain", "target"], rows),
        notes=[
            f"{CLASS_SIZE} synthetic submissions of `{assignment}`: half correct, half with one"
            " wrong answer from the test fixtures. `collect` is not timed.",
        ],
    )

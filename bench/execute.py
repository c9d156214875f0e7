"""Headless notebook execution with nbclient, as the grader's plain baseline."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path, timeout=120):
    """Run every cell of the notebook at ``path`` in a fresh kernel, in its folder.

    Raises ``nbclient.exceptions.CellExecutionError`` when a cell fails (unless the caller
    passes a notebook meant to fail and catches it). Returns the executed notebook.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    return client.execute()


def execute_allowing_errors(path, timeout=120):
    """Like ``execute``, but a failing cell is recorded in the outputs and the run goes on,
    as an autograder must do with a wrong submission."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    return client.execute()

"""Worker processes of a grader command (autograde's graders, feedback's page renderers).

A worker ends with the command that started it, even when that command is killed; it has a
process group of its own, which a Ctrl+C in the terminal does not reach (the command handles it
and ends or stops its workers its own way); and it closes the file descriptors it must not keep
open, such as the workspace lock (``course.held_locks``), which must not outlive the command.
"""

import os


def start(inherited=()):
    """Runs first in a new worker: see the module's docstring. ``inherited``: file descriptors
    of the command's that a forked worker must close."""
    from .forkserver import die_with

    die_with(os.getppid())
    os.setpgrp()
    for fd in inherited:
        os.close(fd)


def started():
    """A no-op task: submitting one per worker makes a pool start its workers now."""

"""Worker processes of a grader command (autograde's graders, feedback's page renderers).

A worker ends with the command that started it, even when that command is killed; it has a
process group of its own, which a Ctrl+C in the terminal does not reach (the command handles it
and ends or stops its workers its own way); it ends on SIGTERM and SIGHUP, which the command
handles as Ctrl+C (``__main__.StopSignals``; a worker pool ends its workers with SIGTERM); and
it closes the file descriptors it must not keep open, such as the workspace lock
(``course.held_locks``), which must not outlive the command.
"""

import os
import signal


def start(inherited=()):
    """Runs first in a new worker: see the module's docstring. ``inherited``: file descriptors
    of the command's that a forked worker must close."""
    from .forkserver import die_with

    die_with(os.getppid())
    os.setpgrp()
    for name in ("SIGTERM", "SIGHUP"):  # __main__.STOP_SIGNALS: a forked worker has its handlers
        signum = getattr(signal, name, None)
        if signum is not None and callable(signal.getsignal(signum)):
            signal.signal(signum, signal.SIG_DFL)  # one ignored (nohup) stays ignored
    for fd in inherited:
        os.close(fd)


def started():
    """A no-op task: submitting one per worker makes a pool start its workers now."""

"""``python -m grader <command>``: the instructor's command line.

Grading state lives in the workspace: ``--workspace DIR``, else $BACKPROP_GRADING_DIR, else
``.grading/`` in the repository; only ``collect`` creates it (``course.check_workspace``). Bad
input (``course.UsageError``), files that cannot be read or written (``OSError``) and a gradebook
that cannot be used (``gradebook.unusable``: locked, read-only, damaged) end the command with one
line on stderr and exit code 2; Ctrl+C with one line and exit code 130. SIGTERM (``kill``) and
SIGHUP (its terminal closed) stop a command as Ctrl+C does, with the same cleanup, then a line
that names the signal and exit code 128 + its number (``StopSignals``). ``--help`` says the same
to the instructor (``DESCRIPTION``).
"""

import argparse
import gc
import math
import os
import signal
import sys
import threading

from . import course, gradebook


def _seconds(text):
    """A time limit given on the command line: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _count(text):
    """A number of worker processes given on the command line: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} workers cannot do the work: give 1 or more")
    return value


def _folder(text):
    """A folder given on the command line: not empty (an unset shell variable, say)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name is no folder")
    return text


DESCRIPTION = """\
The instructor's commands: release the student notebooks; then, for each batch of
submissions, collect, autograde, feedback and export (and report, to see what the class
got right and wrong). "%(prog)s COMMAND --help" tells more about each.

Grading state (the gradebook, submissions, graded copies, feedback pages, exports) goes to
the workspace folder: --workspace DIR, else $BACKPROP_GRADING_DIR, else .grading/ in the
repository; collect creates it. A command that cannot go on (bad input, a file it cannot read
or write, a missing workspace or one another command is using, a gradebook that is locked,
read-only or damaged) says why in one line and exits with code 2; Ctrl+C stops it with exit
code 130, and SIGTERM or SIGHUP (kill, a closed terminal) the same way, with 128 + the
signal's number (143, 129).
"""


def _jobs(parser, what):
    """``-j N``: how many worker processes a command runs at once, ``what`` they do."""
    parser.add_argument(
        "-j",
        "--jobs",
        type=_count,
        default=os.cpu_count() or 1,
        metavar="N",
        help=f"{what} (default: one per core, %(default)s here)",
    )


def _parser():
    parser = argparse.ArgumentParser(
        prog=course.command(),
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workspace", type=_folder, metavar="DIR", help="grading workspace folder")
    # --workspace also after the command; there it wins, and without it the one before stays
    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument(
        "--workspace",
        type=_folder,
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="grading workspace folder",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help):
        """A command's parser; ``help`` says what it does, in the list of commands and, as a
        sentence, in its own ``--help``."""
        description = f"{help[0].upper()}{help[1:]}."
        return sub.add_parser(name, parents=[workspace], help=help, description=description)

    p = command("release", help="generate notebooks/ from solutions/")
    p.add_argument(
        "assignments", nargs="*", metavar="ASSIGNMENT", help="default: every one of the course"
    )
    p.add_argument("--check", action="store_true", help="fail and name notebooks that drifted")

    p = command("collect", help="import submissions from a folder or a zip")
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="folder or zip: student_id/assignment/*.ipynb, or a Moodle or Canvas download",
    )
    p.add_argument(
        "--take-older",
        action="store_true",
        help="take a notebook older than the one collected for its student and assignment "
        "(skipped without it); it counts as handed in again",
    )

    p = command("autograde", help="grade new or changed submissions in parallel")
    p.add_argument(
        "assignments", nargs="*", metavar="ASSIGNMENT", help="default: every one collected"
    )
    _jobs(p, "notebooks graded at once")
    p.add_argument(
        "--cell-timeout",
        type=_seconds,
        default=30.0,
        metavar="SEC",
        help="time limit of a cell (default: %(default)g)",
    )
    p.add_argument(
        "--notebook-timeout",
        type=_seconds,
        default=600.0,
        metavar="SEC",
        help="time limit of a whole notebook (default: %(default)g)",
    )
    p.add_argument("--force", action="store_true", help="grade again even if unchanged")

    p = command("feedback", help="one HTML page per student and assignment")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: every one graded")
    _jobs(p, "pages rendered at once")

    p = command("export", help="grades as CSV")
    p.add_argument(
        "--wide",
        action="store_true",
        help="one row per student, one column per assignment (for LMS gradebook imports)",
    )
    p.add_argument(
        "--no-totals",
        dest="totals",
        action="store_false",
        help="with --wide: leave out total and max_total (Canvas would make them assignments)",
    )
    p.add_argument(
        "--id-column",
        default="student_id",
        metavar="NAME",
        help="name of the student id column, as your LMS calls it (Canvas: 'SIS Login ID')",
    )
    p.add_argument(
        "--to",
        metavar="FILE",
        help="the CSV file to write (default: exports/grades.csv, with --wide "
        "exports/grades-wide.csv, in the workspace)",
    )

    p = command("report", help="what the class got right and wrong, per exercise")
    p.add_argument(
        "--html",
        metavar="FILE",
        help="the page to write, its rows as .json beside it (default: exports/report.html in "
        "the workspace)",
    )

    p = command("doctor", help="check that JupyterLab has what the notebooks need")
    p.add_argument("--quiet", action="store_true", help="say nothing when all is in place")
    return parser


USE_WORKSPACE = {"collect", "autograde", "feedback", "export", "report"}  # only collect makes it


def run(args):
    if getattr(args, "assignments", None):
        course.known(args.assignments)  # a mistyped name is told before a missing workspace
    if args.command in USE_WORKSPACE:
        course.check_workspace(create=args.command == "collect")
    if args.command == "release":
        from .release import release

        return 1 if release(args.assignments, check=args.check) else 0
    if args.command == "collect":
        from .collect import collect

        _, problems = collect(args.source, take_older=args.take_older)
        return 1 if problems else 0
    if args.command == "autograde":
        from .autograde import autograde
        from .runner import Limits

        limits = Limits(cell=args.cell_timeout, notebook=args.notebook_timeout)
        _, failures, _ = autograde(args.assignments, args.jobs, limits, force=args.force)
        return 1 if failures else 0
    if args.command == "feedback":
        from .feedback import feedback

        return feedback(args.assignments, jobs_n=args.jobs)
    if args.command == "export":
        from .export import export

        export(args.to, wide=args.wide, totals=args.totals, id_column=args.id_column)
        return 0
    if args.command == "report":
        from .report import report

        report(args.html)
        return 0
    if args.command == "doctor":
        from .doctor import doctor

        return doctor(quiet=args.quiet)
    return 2


def message(error):
    """``error`` as the one line the instructor sees."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def say(line):
    """Print ``line`` on stderr, if it can still be shown (a closed pipe says nothing)."""
    try:
        print(line, file=sys.stderr)
    except OSError:
        pass


STOP_SIGNALS = {"SIGTERM": "kill, or a shutdown", "SIGHUP": "its terminal was closed"}


class StopSignals:
    """Within the block, SIGTERM and SIGHUP (``STOP_SIGNALS``, those the system has) stop the
    command as Ctrl+C does: the handler Ctrl+C has at that moment runs (Python's raises
    ``KeyboardInterrupt``), so the same cleanup follows (files written whole, the workspace's
    lock let go, workers and kernels ended), and ``signum`` notes the signal. Only the first
    signal counts: more of them while the command cleans up are ignored. On SIGHUP, standard
    output and error that went to the closed terminal go nowhere from then on: writing to it
    would fail, and break off the cleanup. A signal ignored when the command started (``nohup``)
    stays ignored, and the workers set them back (``children.start``)."""

    def __init__(self):
        self.signum = None  # the signal that stopped the command
        self._before = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                signum = getattr(signal, name, None)
                if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
                    self._before[signum] = signal.signal(signum, self._stop)
        return self

    def __exit__(self, *error):
        for signum, handler in self._before.items():
            signal.signal(signum, handler)
        return False

    def _stop(self, signum, frame):
        """The handler of the stop signals: see the class's docstring."""
        if self.signum is not None:
            return
        self.signum = signum
        if signum == getattr(signal, "SIGHUP", None):
            _away_from_a_closed_terminal()
        ctrl_c = signal.getsignal(signal.SIGINT)
        if not callable(ctrl_c):  # Ctrl+C ignored (a background job): stop all the same
            raise KeyboardInterrupt
        ctrl_c(signal.SIGINT, frame)

    def stopped(self, command):
        """The line that says that ``command`` was stopped by the signal."""
        name = signal.Signals(self.signum).name
        return f"stopped by signal {name} ({STOP_SIGNALS[name]}): {command} ended as on Ctrl+C"


def _away_from_a_closed_terminal():
    """Send standard output and error to the null device when writing to them fails (their
    terminal was closed)."""
    for fd in (1, 2):
        try:
            os.write(fd, b"")
        except OSError:
            nowhere = os.open(os.devnull, os.O_WRONLY)
            os.dup2(nowhere, fd)
            os.close(nowhere)


def main(argv=None):
    args = _parser().parse_args(argv)
    # nbgrader starts `alembic` by name: this environment's executables come first.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
    if args.workspace is not None:
        os.environ[course.WORKSPACE_ENV] = os.path.abspath(args.workspace)
    with StopSignals() as stop:
        try:
            code = _command(args)
        except SystemExit:  # how autograde and feedback end on Ctrl+C, having said how far
            if stop.signum is None:
                raise
    if stop.signum is not None:
        say(stop.stopped(args.command))
        return 128 + stop.signum
    return code


def _command(args):
    """Run the command of ``args``; its exit code (see the module's docstring)."""
    try:
        return run(args)
    except KeyboardInterrupt:
        say(f"interrupted: {args.command} stopped; run it again to finish")
        return 130
    except (course.UsageError, OSError) as error:
        say(f"error: {message(error)}")
        return 2
    except Exception as error:
        why = gradebook.unusable(error)
        if why is None:
            raise
        say(f"error: {why}")
        return 2


if __name__ == "__main__":
    code = main()
    # What is left is freed by the operating system when the process ends: skip Python's last
    # garbage collection over every loaded module (0.2-0.3 s with nbgrader's loaded).
    gc.freeze()
    sys.exit(code)

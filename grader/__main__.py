"""``python -m grader <command>``: the instructor's command line.

Grading state lives in the workspace: ``--workspace DIR``, else $BACKPROP_GRADING_DIR, else
``.grading/`` in the repository; only ``collect`` creates it (``course.check_workspace``). Bad
input (``course.UsageError``), files that cannot be read or written (``OSError``) and a gradebook
that cannot be used (``gradebook.unusable``: locked, read-only, damaged) end the command with one
line on stderr and exit code 2; Ctrl+C with one line and exit code 130. ``--help`` says the same
to the instructor (``DESCRIPTION``).
"""

import argparse
import gc
import math
import os
import sys

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
code 130.
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


def main(argv=None):
    args = _parser().parse_args(argv)
    # nbgrader starts `alembic` by name: this environment's executables come first.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
    if args.workspace is not None:
        os.environ[course.WORKSPACE_ENV] = os.path.abspath(args.workspace)
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"interrupted: {args.command} stopped; run it again to finish", file=sys.stderr)
        return 130
    except (course.UsageError, OSError) as error:
        print(f"error: {message(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        why = gradebook.unusable(error)
        if why is None:
            raise
        print(f"error: {why}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    # What is left is freed by the operating system when the process ends: skip Python's last
    # garbage collection over every loaded module (0.2-0.3 s with nbgrader's loaded).
    gc.freeze()
    sys.exit(code)

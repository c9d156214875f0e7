"""``python -m grader <command>``: the instructor's command line."""

import argparse
import sys

from . import release as release_mod


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate notebooks/ from solutions/")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT")
    p.add_argument("--check", action="store_true", help="fail and name notebooks that drifted")

    p = sub.add_parser("doctor", help="check that JupyterLab has what the notebooks need")
    p.add_argument("--quiet", action="store_true")

    args = parser.parse_args(argv)
    if args.command == "release":
        drifted = release_mod.release(args.assignments, check=args.check)
        return 1 if drifted else 0
    if args.command == "doctor":
        from .doctor import doctor

        return doctor(quiet=args.quiet)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench [SECTION...]``: run every benchmark (or the sections named), print the
tables, and write ``bench/results.md`` when every section ran."""

import argparse
import sys
from pathlib import Path

from . import gradcheck, grading, loop, notebooks, step
from .report import header

RESULTS = Path(__file__).resolve().parent / "results.md"
SECTIONS = [step, loop, gradcheck, notebooks, grading]
NAMES = [module.__name__.rsplit(".", 1)[-1] for module in SECTIONS]


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the library and the grader, on one BLAS thread. With no"
        " section named, runs them all and writes bench/results.md.",
    )
    parser.add_argument(
        "sections", nargs="*", metavar="SECTION", help=f"one of: {', '.join(NAMES)}"
    )
    return parser


def main(argv=None):
    """Run the sections named in ``argv`` (default all) and write the results."""
    parser = _parser()
    names = parser.parse_args(argv).sections
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        parser.error(f"no section {', '.join(unknown)} (sections: {', '.join(NAMES)})")
    chosen = [m for m, name in zip(SECTIONS, NAMES, strict=True) if not names or name in names]
    parts = [header()]
    print(parts[0], flush=True)
    for module in chosen:
        text = module.run()
        print(text, flush=True)
        parts.append(text)
    if chosen == SECTIONS:
        RESULTS.write_text("\n".join(parts))
        print(f"written to {RESULTS.relative_to(RESULTS.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench``: run every benchmark, print the tables, write ``bench/results.md``."""

import sys
from pathlib import Path

from . import gradcheck, grading, loop, notebooks, step
from .report import header

RESULTS = Path(__file__).resolve().parent / "results.md"
SECTIONS = [step, loop, gradcheck, notebooks, grading]


def main(argv=None):
    """Run the sections named in ``argv`` (module names; default all) and write the results."""
    names = argv if argv is not None else sys.argv[1:]
    chosen = [m for m in SECTIONS if not names or m.__name__.rsplit(".", 1)[-1] in names]
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

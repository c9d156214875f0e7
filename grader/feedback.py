"""``feedback``: one HTML page per student and assignment, with hidden tests removed.

nbgrader's ``generate_feedback`` renders the autograded notebooks (``GenerateFeedback``
preprocessors in ``nbgrader_config.py`` clear hidden tests and scrub tracebacks); every page is
then checked for hidden-test lines, and a page that still shows one is deleted and reported.
"""

import sys

from . import course
from .master import Master
from .scrub import leaks


def feedback(ids=None, out=print):
    """Write the pages; returns 0, or 1 when nbgrader failed or a page had to be withheld."""
    from nbgrader.apps import NbGraderAPI

    autograded = course.folder("autograded")
    ids = list(ids or [a for a in course.assignments() if any(autograded.glob(f"*/{a}"))])
    api = NbGraderAPI(config=course.load_config())
    status = 0
    pages = 0
    for aid in ids:
        result = api.generate_feedback(aid)
        if not result["success"]:
            print(f"error: feedback for {aid} failed: {result.get('error', '')}", file=sys.stderr)
            status = 1
            continue
        for source in course.source_notebooks(aid):
            hidden = Master.load(source, aid).hidden_lines()
            for page in sorted(course.folder("feedback").glob(f"*/{aid}/{source.stem}.html")):
                found = leaks(page.read_text(encoding="utf-8"), hidden)
                if found:
                    page.unlink()
                    print(
                        f"error: withheld {page}: it shows the hidden test line {found[0]!r}",
                        file=sys.stderr,
                    )
                    status = 1
                else:
                    pages += 1
    out(f"{pages} feedback page(s) in {course.folder('feedback')}")
    return status

"""Keep hidden tests out of feedback: scrub tracebacks, and check the pages that come out.

nbgrader's ``ClearHiddenTests`` removes hidden tests from the cells' source, but a traceback
still quotes the failing hidden line (and the lines around it). ``ScrubHiddenTracebacks`` (in
``GenerateFeedback.preprocessors``, after ``ClearHiddenTests``) replaces every traceback or
error line that contains a hidden-test line. ``leaks(html, lines)`` is the final check on a page.
"""

import html
import re

from nbgrader.preprocessors import NbGraderPreprocessor

from . import course
from .master import Master

PLACEHOLDER = "    (a line of a hidden test)"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TAGS = re.compile(r"<[^>]+>")


def _hidden(assignment, notebook):
    path = course.SOURCE / assignment / f"{notebook}.ipynb"
    return Master.load(path, assignment).hidden_lines() if path.exists() else []


def scrub_text(text, lines):
    """``text`` with every line that contains one of ``lines`` replaced by a placeholder."""
    out = []
    for line in text.split("\n"):
        plain = ANSI.sub("", line)
        out.append(PLACEHOLDER if any(h in plain for h in lines) else line)
    return "\n".join(out)


def scrub_notebook(nb, lines):
    """Scrub every error output of ``nb`` in place."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["evalue"] = scrub_text(output.get("evalue", ""), lines)
                output["traceback"] = [scrub_text(t, lines) for t in output.get("traceback", [])]
    return nb


def leaks(page, lines):
    """The hidden-test lines that can be read in an HTML ``page`` (tags and entities removed)."""
    text = html.unescape(TAGS.sub("", page))
    return [h for h in lines if h in text]


class ScrubHiddenTracebacks(NbGraderPreprocessor):
    """nbgrader preprocessor: remove hidden-test lines from error outputs."""

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        lines = _hidden(info.get("assignment"), info.get("notebook"))
        return scrub_notebook(nb, lines), resources

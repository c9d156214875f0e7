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
from .scoring import strip_ansi

PLACEHOLDER = "    (a line of a hidden test)"
TAGS = re.compile(r"<[^>]+>")


def _hidden(assignment, notebook):
    path = course.SOURCE / assignment / f"{notebook}.ipynb"
    return Master.load(path, assignment).hidden_lines() if path.exists() else []


# What a traceback puts before a quoted source line: "---> 12 " or "     12 ".
TRACEBACK_PREFIX = re.compile(r"^\s*(?:-*>\s*)?\d+\s")


def _as_code(line):
    """A line of a page or traceback as the source line it shows: ANSI colours, the traceback's
    arrow and line number, and surrounding blanks removed."""
    return TRACEBACK_PREFIX.sub("", strip_ansi(line), count=1).strip()


def scrub_text(text, lines):
    """``text`` with every line that shows one of the hidden ``lines`` replaced by a placeholder.

    A whole line must match: a hidden ``relu.forward(x)`` does not hide a visible
    ``y = relu.forward(x)``, which is the learner's own code.
    """
    hidden = set(lines)
    return "\n".join(PLACEHOLDER if _as_code(line) in hidden else line for line in text.split("\n"))


def scrub_notebook(nb, lines):
    """Scrub every error output of ``nb`` in place."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["evalue"] = scrub_text(output.get("evalue", ""), lines)
                output["traceback"] = [scrub_text(t, lines) for t in output.get("traceback", [])]
    return nb


def leaks(page, lines):
    """The hidden-test lines that can be read as a line of an HTML ``page`` (tags and entities
    removed, traceback prefixes ignored)."""
    hidden = set(lines)
    text = html.unescape(TAGS.sub("", page))
    return sorted({code for code in map(_as_code, text.split("\n")) if code in hidden})


class ScrubHiddenTracebacks(NbGraderPreprocessor):
    """nbgrader preprocessor: remove hidden-test lines from error outputs."""

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        lines = _hidden(info.get("assignment"), info.get("notebook"))
        return scrub_notebook(nb, lines), resources

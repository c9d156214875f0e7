"""Keep hidden tests out of feedback: scrub what a graded notebook shows, and check the pages.

nbgrader's ``ClearHiddenTests`` removes hidden tests from the cells' source, but outputs can still
show them: a traceback quotes the failing hidden line (and the lines around it), and a submission
can print them (``print(In)`` prints every executed cell's source, hidden tests included, as one
line). ``ScrubHiddenOutputs`` (in ``GenerateFeedback.preprocessors``, after ``ClearHiddenTests``)
replaces them in every output; ``leaks(page, hidden)`` is the final check on a page. It also
replaces the grading machine's folders that outputs show (a traceback's file names, a printed
``__file__``) by short names (``hide_paths``).

What shows a hidden-test line (``Hidden``): a line that is that line once a traceback's arrow and
line number are removed, or a line that holds it anywhere, as it is or quoted the way a Python or
JSON string literal quotes it. Only lines the learner was not given count inside a longer line: a
hidden ``relu.forward(x)`` does not make the visible ``y = relu.forward(x)`` a leak.
"""

import functools
import html
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor

from . import course
from .master import Master
from .scoring import strip_ansi

PLACEHOLDER = "    (a line of a hidden test)"
TAGS = re.compile(r"<[^>]+>")
# What a traceback puts before a quoted source line: "---> 12 " or "     12 ".
TRACEBACK_PREFIX = re.compile(r"^\s*(?:-*>\s*)?\d+\s")


def _quoted(line):
    """The ways ``line`` shows inside a longer one: as it is, in a Python string literal (``'``
    and ``\\`` escaped) and in a JSON one."""
    return {line, line.replace("\\", "\\\\").replace("'", "\\'"), json.dumps(line)[1:-1]}


@dataclass(frozen=True)
class Hidden:
    """The hidden-test lines of a notebook: ``lines`` must not show as a line, ``fragments``
    (those the released notebook does not contain) not even inside one."""

    lines: frozenset = frozenset()
    fragments: tuple = ()  # ((line, its quoted forms), ...)

    @classmethod
    def of_lines(cls, lines, released_text):
        """From the hidden-test ``lines`` and the text of the notebook learners were given."""
        inside = sorted(line for line in set(lines) if line not in released_text)
        return cls(frozenset(lines), tuple((line, tuple(_quoted(line))) for line in inside))

    @classmethod
    def of_notebook(cls, assignment, notebook):
        """Of a notebook of ``solutions/`` (nothing hidden when there is no such notebook)."""
        path = course.SOURCE / str(assignment) / f"{notebook}.ipynb"
        if not path.exists():
            return cls()
        master = Master.load(path, assignment)
        released = "\n".join(cell["source"] for cell in master.released["cells"])
        return cls.of_lines(master.hidden_lines(), released)

    def shown(self, text):
        """The hidden-test lines that ``text`` shows, sorted."""
        whole = {code for code in map(_as_code, text.split("\n")) if code in self.lines}
        inside = {line for line, forms in self.fragments if any(form in text for form in forms)}
        return sorted(whole | inside)


def _as_code(line):
    """A line of a page or traceback as the source line it shows: ANSI colours, the traceback's
    arrow and line number, and surrounding blanks removed."""
    return TRACEBACK_PREFIX.sub("", strip_ansi(line), count=1).strip()


def scrub_text(text, hidden):
    """``text`` with every line that is a hidden-test line, and every hidden-test line inside a
    longer line, replaced by the placeholder."""
    text = "\n".join(
        PLACEHOLDER if _as_code(line) in hidden.lines else line for line in text.split("\n")
    )
    for _, forms in hidden.fragments:
        for form in forms:
            text = text.replace(form, PLACEHOLDER.strip())
    return text


def leaks(page, hidden):
    """The hidden-test lines a page (HTML, or any text) shows: read as it is, without colour
    codes, and as a browser shows it (tags removed, entities decoded)."""
    readings = {page, strip_ansi(page), html.unescape(TAGS.sub("", page))}
    return sorted({line for text in readings for line in hidden.shown(text)})


@functools.cache
def _library_folders():
    """The folder of the course library (``backprop``) that this environment imports, which the
    kernels import too, as the import system names it and with links resolved; none when there
    is none. It need not be this repository's ``lib/``: an environment shared by several
    checkouts imports it from the one it was installed from."""
    try:
        spec = importlib.util.find_spec("backprop")
    except (ImportError, ValueError):
        return ()
    if spec is None or not spec.submodule_search_locations:
        return ()
    folder = list(spec.submodule_search_locations)[0]
    return tuple({folder, os.path.realpath(folder)})


def _machine_folders():
    """``(folder + separator, short name)`` of the grading machine's folders, longest first: the
    repository's files are shown by their path in it, the course library's as in it
    (``lib/backprop/...``) wherever it was imported from, the others by a name."""
    folders = {
        sys.base_prefix: "python",
        sys.prefix: "python",
        str(Path.home()): "~",
        str(course.workspace()): "workspace",
        str(course.REPO): "",
    }
    for library in _library_folders():
        folders[library] = "lib/backprop"
    named = [(path + os.sep, name + os.sep if name else "") for path, name in folders.items()]
    return sorted(named, key=lambda pair: -len(pair[0]))


def hide_paths(text):
    """``text`` without the grading machine's folders (``_machine_folders``)."""
    for folder, name in _machine_folders():
        text = text.replace(folder, name)
    return text


def scrub_output(text, hidden):
    """``scrub_text``, and ``hide_paths``; an output that still shows a hidden-test line (split
    by colour codes or HTML) is replaced as a whole."""
    text = hide_paths(scrub_text(text, hidden))
    return PLACEHOLDER.strip() if leaks(text, hidden) else text


def scrub_notebook(nb, hidden):
    """Scrub every output of ``nb`` in place: errors, streams and every text of rich outputs."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "error":
                output["evalue"] = scrub_output(output.get("evalue", ""), hidden)
                output["traceback"] = [scrub_output(t, hidden) for t in output.get("traceback", [])]
            elif kind == "stream":
                output["text"] = scrub_output(_joined(output.get("text", "")), hidden)
            for mime, value in output.get("data", {}).items():
                if isinstance(value, (str, list)):
                    output["data"][mime] = scrub_output(_joined(value), hidden)
    return nb


def _joined(value):
    """An output's text, which a notebook may store as a list of lines."""
    return value if isinstance(value, str) else "".join(value)


class ScrubHiddenOutputs(NbGraderPreprocessor):
    """nbgrader preprocessor: remove hidden-test lines from every output."""

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        hidden = Hidden.of_notebook(info.get("assignment"), info.get("notebook"))
        return scrub_notebook(nb, hidden), resources

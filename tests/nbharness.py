"""Run course notebooks in tests: execute them, fill their answer cells, validate with nbgrader.

Conventions the course notebooks keep (see DESIGN.md and CURRICULUM.md):

- an exercise's answer cell has nbgrader ``grade_id`` equal to the exercise name;
- its test cells have grade_ids starting with ``test_<exercise>``;
- wrong and alternative answers live in
  ``tests/fixtures/answers/<assignment>/<exercise>__<label>.py``,
  starting with the comment lines ``# exercise: <name>`` and ``# expect: <mistake key or pass>``,
  followed by the whole source of the answer cell.
"""

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from backprop.gradcheck import mistakes_in  # noqa: F401 (the tests use it from here)

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
NOTEBOOKS = REPO / "notebooks"
FIXTURES = REPO / "tests" / "fixtures" / "answers"


def assignments():
    """Assignment ids present in ``solutions/`` (``NN-topic``), sorted."""
    return sorted(p.name for p in SOLUTIONS.glob("*") if any(p.glob("*.ipynb")))


def notebook_path(assignment, folder=NOTEBOOKS):
    """The one notebook of ``assignment`` in ``folder`` (``solutions/`` or ``notebooks/``)."""
    (path,) = sorted((folder / assignment).glob("*.ipynb"))
    return path


def grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_answer(cell):
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("solution", False) and not meta.get("grade", False)


def is_test(cell):
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade", False) and not meta.get("solution", False)


def exercise_of(test_id, exercises):
    """The exercise a test cell belongs to: the longest name with ``test_<name>`` as prefix."""
    matches = [e for e in exercises if test_id == f"test_{e}" or test_id.startswith(f"test_{e}_")]
    return max(matches, key=len) if matches else None


def solution_source(cell_source):
    """An answer cell's source from the solutions notebook, without the solution markers."""
    lines = [
        line
        for line in cell_source.splitlines()
        if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
    ]
    return "\n".join(lines)


def solution_answers(assignment):
    """{exercise: source} for every answer cell of ``assignment``'s solutions notebook."""
    nb = nbformat.read(notebook_path(assignment, SOLUTIONS), as_version=4)
    return {grade_id(c): solution_source(c.source) for c in nb.cells if is_answer(c)}


def student_notebook(assignment, answers=None, solved=True, folder=NOTEBOOKS):
    """The student notebook of ``assignment`` with answer cells filled in (with ``folder`` =
    ``SOLUTIONS``: the instructor's, whose test cells hold the hidden tests too).

    ``solved``: first fill every answer cell with the solution; ``answers``: {exercise: source}
    replacing those cells afterwards. Returns a NotebookNode.
    """
    nb = nbformat.read(notebook_path(assignment, folder), as_version=4)
    fill = dict(solution_answers(assignment)) if solved else {}
    fill.update(answers or {})
    for cell in nb.cells:
        if is_answer(cell) and grade_id(cell) in fill:
            cell.source = fill[grade_id(cell)]
    return nb


@dataclass
class Fixture:
    """A wrong or alternative answer kept in ``tests/fixtures/answers``."""

    assignment: str
    exercise: str
    label: str
    expect: str  # a mistake key, or "pass"
    source: str
    path: Path
    only: str | None = None  # the one test cell a wrong answer may fail (a slip is marked once)

    @property
    def id(self):
        return f"{self.assignment}/{self.exercise}__{self.label}"


def load_fixture(path):
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    header = dict(re.findall(r"^# (exercise|expect|fails-only): *(\S+)", text, flags=re.M))
    exercise, _, label = path.stem.partition("__")
    assert header.get("exercise") == exercise, f"{path}: header must say '# exercise: {exercise}'"
    assert "expect" in header, f"{path}: header must say '# expect: <mistake key or pass>'"
    only = header.get("fails-only")
    return Fixture(path.parent.name, exercise, label, header["expect"], text, path, only)


def fixtures(assignment=None):
    """Every fixture (of one assignment, or all), sorted by path."""
    pattern = f"{assignment}/*.py" if assignment else "*/*.py"
    return [load_fixture(p) for p in sorted(FIXTURES.glob(pattern))]


def workdir_for(assignment, nb):
    """A temporary copy of the assignment's folder with ``nb`` written in it; returns its path."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{assignment}-"))
    src = notebook_path(assignment)
    for extra in src.parent.iterdir():
        if extra.suffix != ".ipynb":
            (shutil.copytree if extra.is_dir() else shutil.copy)(extra, tmp / extra.name)
    path = tmp / src.name
    nbformat.write(nb, path)
    return path


def execute_in_copy(assignment, nb, timeout=120):
    """Execute ``nb`` in a temporary copy of the assignment's folder; returns the notebook."""
    path = workdir_for(assignment, nb)
    try:
        return execute(nb, path.parent, timeout)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def kernel_config():
    """Configuration for a kernel on sockets of its own, as the grader's (``own_sockets``): the
    test processes start kernels at the same time, and one that loses its TCP port to another
    dies at start. The sockets go in this process's Jupyter runtime folder."""
    from traitlets.config import Config

    from grader.runner import own_sockets

    folder = os.environ.get("JUPYTER_RUNTIME_DIR") or tempfile.gettempdir()
    return Config({"KernelManager": own_sockets(folder)})


def execute(nb, cwd, timeout=120):
    """Execute ``nb`` in ``cwd`` with nbclient, continuing after errors; returns the notebook."""
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
        config=kernel_config(),
    )
    client.execute()
    return nb


def cell_errors(nb):
    """{grade_id or cell index: error text} for every code cell that raised."""
    errors = {}
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                key = grade_id(cell) or i
                errors[key] = f"{out.ename}: {out.evalue}\n" + "\n".join(out.traceback)
    return errors


def validate(nb, assignment):
    """Run nbgrader's Validator on ``nb`` (written to a copy of the assignment's folder).

    Returns {test grade_id: error text} for the failing test cells, plus the key
    ``"__changed__"`` when nbgrader reports changed (tampered) cells.
    """
    from nbgrader.validator import Validator

    path = workdir_for(assignment, nb)
    try:
        results = Validator(ignore_checksums=False, config=kernel_config()).validate(str(path))
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    by_source = {c.source.strip(): grade_id(c) for c in nb.cells if is_test(c)}
    failed = {
        by_source.get(r["source"], r["source"][:40]): r["raw_error"]
        for r in results.get("failed", [])
    }
    if results.get("changed") or results.get("type_changed"):
        failed["__changed__"] = repr(results.get("changed") or results.get("type_changed"))
    return failed

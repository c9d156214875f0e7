"""The instructor's copy of each notebook: what a submission is graded against.

From a source notebook in ``solutions/`` nbgrader's own preprocessors (the ones
``generate_assignment`` runs) produce two versions:

- ``graded``: solutions replaced by stubs, test cells *with* their hidden tests, checksums set.
  Test cells of a submission are replaced by these before it runs.
- ``released``: the same with hidden tests removed: what learners were given. A test cell of a
  submission that differs from it was edited.

``Master`` also knows the exercises (answer cells' grade_ids), which exercise each test cell
belongs to, and the hidden-test lines that must never reach a learner.
"""

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import course, nbgrader_parts

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


def nbgrader_meta(cell):
    """The cell's nbgrader metadata: an empty dict when it has none, or when what it has is not
    a dict (a damaged submission: ``"nbgrader": "x"``)."""
    metadata = cell.get("metadata")
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def grade_id(cell):
    """The cell's nbgrader grade_id; None when it has none, or one that is not a string."""
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def is_answer(cell):
    """An autograded answer cell: solution, not graded itself."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("solution")) and not meta.get("grade")


def is_test(cell):
    """An autograder test cell: graded, not a solution."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def is_graded(cell):
    return bool(nbgrader_meta(cell).get("grade"))


def exercise_of(test_id, exercises):
    """The exercise a test cell belongs to: the longest name with ``test_<name>`` as prefix."""
    matches = [e for e in exercises if test_id == f"test_{e}" or test_id.startswith(f"test_{e}_")]
    return max(matches, key=len) if matches else None


def hidden_lines(graded_nb, released_nb):
    """Lines of hidden tests a learner never saw: stripped, at least 8 characters with a letter
    or digit, and not also present in the released notebook."""
    visible = {line.strip() for cell in released_nb.cells for line in cell.source.splitlines()}
    lines = set()
    for cell in graded_nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if HIDDEN_BEGIN in line:
                inside = True
            elif HIDDEN_END in line:
                inside = False
            elif inside:
                text = line.strip()
                if len(text) >= 8 and re.search(r"\w", text) and text not in visible:
                    lines.add(text)
    return sorted(lines)


def _preprocessors(config, names):
    nbgrader_parts.load()
    from nbgrader import preprocessors as pp

    return [getattr(pp, name)(config=config) for name in names]


def build(source_path, assignment):
    """``(graded, released)`` notebooks of the source notebook at ``source_path`` (its cells
    are recorded in the gradebook from ``graded``: ``gradebook.sync_assignment``)."""
    config = course.load_config()
    nb = nbformat.read(source_path, as_version=4)
    resources = {"nbgrader": {"notebook": Path(source_path).stem, "assignment": assignment}}
    names = ["LockCells", "ClearSolutions", "ClearOutput", "CheckCellMetadata", "ComputeChecksums"]
    for processor in _preprocessors(config, names):
        nb, resources = processor.preprocess(nb, resources)
    graded = copy.deepcopy(nb)
    for processor in _preprocessors(config, ["ClearHiddenTests", "ComputeChecksums"]):
        nb, resources = processor.preprocess(nb, resources)
    return graded, nb


def _build_key(source_path, assignment):
    """What a master is built from, hashed: the source notebook, nbgrader's version, the
    course's nbgrader config and this module."""
    from importlib.metadata import version

    digest = hashlib.sha256(Path(source_path).read_bytes())
    for part in (assignment, version("nbgrader")):
        digest.update(f"|{part}".encode())
    digest.update(Path(course.GRADER_DIR, "nbgrader_config.py").read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:20]


def _cached_build(source_path, assignment):
    """``build(source_path, assignment)``, kept in the grader's cache (``course.cache``)."""
    name = Path(source_path).stem
    key = _build_key(source_path, assignment)
    path = course.cache() / "masters" / f"{assignment}--{name}--{key}.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return saved["graded"], saved["released"]
        except (ValueError, KeyError):
            pass  # a damaged copy: built again below
    graded, released = build(source_path, assignment)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"{assignment}--{name}--*.json"):
            old.unlink()  # built from an older source
        course.write_whole(path, json.dumps({"graded": graded, "released": released}))
    except OSError:
        pass  # a cache folder that cannot be written: built each time
    return graded, released


@dataclass
class Master:
    """One notebook of an assignment, as the grader needs it (picklable for the workers)."""

    assignment: str
    name: str  # notebook name without .ipynb
    graded: dict
    released: dict
    extra_files: list = field(default_factory=list)  # [(path, relative path)] beside it

    @classmethod
    def load(cls, source_path, assignment):
        """The master of the source notebook at ``source_path``, taken from the grader's cache
        when the source notebook, nbgrader, the course's nbgrader config and this module are
        what it was built from (building imports nbgrader and nbconvert: about 1 s)."""
        graded, released = _cached_build(source_path, assignment)
        folder = Path(source_path).parent
        extras = [
            (str(p), str(p.relative_to(folder)))
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".ipynb" and ".ipynb_checkpoints" not in p.parts
        ]
        return cls(assignment, Path(source_path).stem, graded, released, extras)

    def graded_nb(self):
        return nbformat.from_dict(copy.deepcopy(self.graded))

    def released_nb(self):
        return nbformat.from_dict(copy.deepcopy(self.released))

    @property
    def fingerprint(self):
        """A hash of what grading depends on: changes when the tests or points change."""
        text = json.dumps(self.graded["cells"], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def exercises(self):
        """Answer-cell grade_ids in notebook order."""
        return [grade_id(c) for c in self.graded["cells"] if is_answer(c)]

    @property
    def stubs(self):
        """``{grade_id: source}`` of the answer cells as learners were given them."""
        return {grade_id(c): c["source"] for c in self.released["cells"] if is_answer(c)}

    def exercise_of_cell(self, gid):
        """The exercise a graded cell counts towards (the cell's own id when none matches)."""
        if gid in self.exercises:
            return gid
        return exercise_of(gid, self.exercises) or gid

    def graded_cells(self):
        """``[(grade_id, points)]`` of every graded cell, in notebook order."""
        return [
            (grade_id(c), float(nbgrader_meta(c).get("points", 0)))
            for c in self.graded["cells"]
            if is_graded(c)
        ]

    def hidden_lines(self):
        return hidden_lines(self.graded_nb(), self.released_nb())

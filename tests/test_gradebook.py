"""The grader's own reading of nbgrader's schema version stays what ``alembic`` reports, the
gradebook opens without nbgrader's server extensions, and an assignment's notebooks and cells
are recorded as nbgrader's SaveCells records them (without importing nbconvert), again only
when they changed."""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))

import tiny_course as tiny  # noqa: E402

from grader import course, gradebook, master  # noqa: E402
from grader.master import Master  # noqa: E402


def test_schema_head_is_what_alembic_reports(tmp_path):
    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini(f"sqlite:///{tmp_path / 'gradebook.db'}") as ini:
        out = subprocess.check_output([sys.executable, "-m", "alembic", "-c", ini, "heads"])
    assert out.decode().split()[0] == gradebook.schema_head()


def test_a_new_gradebook_is_stamped_with_it(tmp_path, monkeypatch):
    import sqlite3

    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path))
    with gradebook.open_gradebook() as gb:
        gb.add_student("ann")
    (db,) = tmp_path.rglob("gradebook.db")
    (version,) = sqlite3.connect(db).execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == gradebook.schema_head()


PARTS = """
import json, sys
from grader import gradebook, master

with gradebook.open_gradebook() as gb:
    gb.add_student("ann")
master._preprocessors(None, ["ComputeChecksums"])  # what building a master imports
heavy = ("nbgrader.server_extensions", "pkg_resources", "urllib3")
loaded = sorted(m for m in sys.modules if m.startswith(heavy))
# each package is whole again on its first use
import nbgrader, requests, setuptools

points = nbgrader._jupyter_server_extension_points()
print(json.dumps({"loaded": loaded, "version": nbgrader.__version__,
                  "extensions": [p["module"] for p in points],
                  "ok": requests.codes.ok, "setup": callable(setuptools.setup)}))
"""


def test_the_gradebook_opens_without_nbgraders_server_extensions(tmp_path):
    """Nor setuptools' start-up (pkg_resources) or requests' (urllib3), which nbgrader's own
    modules import for code the grader never runs; each package works when it is used."""
    env = course.nbgrader_env() | {course.WORKSPACE_ENV: str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", PARTS], env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["loaded"] == [], "opening the gradebook ran a package start-up it does not need"
    assert seen["version"] and seen["extensions"] == ["nbgrader"]
    assert seen["ok"] == 200 and seen["setup"]


@pytest.fixture
def tiny_source(tmp_path, monkeypatch):
    """The tiny course's source notebook, a cache and a workspace of this test's own."""
    monkeypatch.setenv(course.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    monkeypatch.setattr(course, "SOURCE", tmp_path / "solutions")
    return tiny.write_source(course.SOURCE)


@pytest.fixture
def recordings(monkeypatch):
    """The notebooks recorded in the gradebook while the test runs, one name per recording."""
    recorded = []
    real = gradebook._record_notebook

    def record_notebook(gb, master_):
        recorded.append(master_.name)
        return real(gb, master_)

    monkeypatch.setattr(gradebook, "_record_notebook", record_notebook)
    return recorded


def recorded_points(grade_id):
    with gradebook.open_gradebook() as gb:
        return gb.find_grade_cell(grade_id, tiny.NOTEBOOK, tiny.ASSIGNMENT).max_score


def test_cells_already_in_the_gradebook_are_not_recorded_again(tiny_source, recordings):
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    assert recordings == [tiny.NOTEBOOK], "the second sync recorded unchanged cells again"


def change_source(path, change):
    """Change the source notebook at ``path``: ``{grade_id: points}`` set, ``{grade_id:
    "+line"}`` a line added to the cell, ``{grade_id: None}`` the cell removed."""
    nb = nbformat.read(path, as_version=4)
    for gid, what in change.items():
        cell = next(c for c in nb.cells if master.grade_id(c) == gid)
        if what is None:
            nb.cells.remove(cell)
        elif isinstance(what, str):
            cell.source += "\n" + what[1:]
        else:
            cell.metadata["nbgrader"]["points"] = what
    nbformat.write(nb, path)


@pytest.mark.parametrize("change", [{"test_add": 5}, {"setup": "+import math"}])
def test_changed_cells_are_recorded_again(tiny_source, recordings, change):
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    change_source(tiny_source, change)
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    assert len(recordings) == 2
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    assert len(recordings) == 2
    if "test_add" in change:
        assert recorded_points("test_add") == 5


# What grading records, next to what nbgrader itself records: its SaveCells preprocessor (which
# the grader ran on each master until it recorded the cells itself) on the same notebooks.


def save_cells(db_url, assignment):
    """nbgrader's own record of ``assignment``'s notebooks and cells in the gradebook at
    ``db_url``: its SaveCells preprocessor run on the graded notebook of each master."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        gb.update_or_create_assignment(assignment)
    for path in course.source_notebooks(assignment):
        master_ = Master.load(path, assignment)
        (save,) = master._preprocessors(course.load_config(), ["SaveCells"])
        resources = {
            "nbgrader": {"notebook": master_.name, "assignment": assignment, "db_url": db_url}
        }
        save.preprocess(master_.graded_nb(), resources)


def _fields(record):
    """A gradebook record's fields: its ``to_dict()`` and its columns, ids left out."""
    import sqlalchemy

    columns = sqlalchemy.inspect(record).mapper.column_attrs
    fields = record.to_dict() | {c.key: getattr(record, c.key) for c in columns}
    return {k: v for k, v in fields.items() if k != "id" and not k.endswith("_id")}


def snapshot(db_url, assignment, ids=False):
    """``{notebook: {"notebook": fields, kind: {grade_id: fields}}}`` of every notebook of
    ``assignment`` in the gradebook at ``db_url``, for each of ``gradebook.KINDS``; with
    ``ids``, each record's id instead of its fields."""
    from nbgrader.api import Gradebook

    what = (lambda record: record.id) if ids else _fields
    with Gradebook(db_url) as gb:
        return {
            nb.name: {"notebook": what(nb)}
            | {
                kind: {c.name: what(c) for c in getattr(nb, f"{kind}_cells")}
                for kind in gradebook.KINDS
            }
            for nb in gb.find_assignment(assignment).notebooks
        }


def courses(db_url):
    """The courses in the gradebook at ``db_url``, read without nbgrader's ``Gradebook`` (which
    adds its default course)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db:
        return {course_id for (course_id,) in db.execute("SELECT id FROM course")}


def with_task_cells(nb):
    """``nb`` with cells of the kinds the course has none of: a task, and a written answer
    graded by hand."""
    meta = {"grade": False, "solution": False, "locked": True, "schema_version": 3}
    task = {"task": True, "points": 2, "grade_id": "task_explain"}
    written = {"grade": True, "solution": True, "locked": False, "points": 1.5}
    nb.cells += [
        nbformat.v4.new_markdown_cell(
            "Explain why the gradient vanishes.", metadata={"nbgrader": meta | task}
        ),
        nbformat.v4.new_markdown_cell(
            "YOUR ANSWER HERE", metadata={"nbgrader": meta | written | {"grade_id": "why"}}
        ),
    ]
    return nb


@pytest.mark.parametrize("assignment", [*course.assignments(), "tiny with a task"])
def test_cells_are_recorded_as_nbgraders_savecells_records_them(assignment, tmp_path, monkeypatch):
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    if assignment == "tiny with a task":
        monkeypatch.setattr(course, "SOURCE", tmp_path / "solutions")
        nbformat.write(with_task_cells(tiny.source_notebook()), tiny.write_source(course.SOURCE))
        assignment = tiny.ASSIGNMENT
    gradebook.sync_assignment(assignment)
    theirs = f"sqlite:///{tmp_path / 'savecells.db'}"
    save_cells(theirs, assignment)

    # SaveCells also leaves nbgrader's default course, which feedback's renderers need there
    assert courses(theirs) <= courses(course.db_url())
    recorded = snapshot(course.db_url(), assignment)
    assert recorded == snapshot(theirs, assignment)
    assert recorded.keys() == {p.stem for p in course.source_notebooks(assignment)}
    for nb in recorded.values():
        assert json.loads(nb["notebook"]["kernelspec"])["name"], "no kernelspec recorded"
        assert nb["grade"] and nb["solution"] and nb["source"]
        assert all(cell["checksum"] for cell in nb["source"].values())
    if assignment == tiny.ASSIGNMENT:
        (task,) = recorded[tiny.NOTEBOOK]["task"].values()
        assert (task["max_score"], task["cell_type"]) == (2.0, "markdown")


@pytest.fixture
def savecells(tiny_source, tmp_path):
    """The tiny course recorded by ``sync_assignment`` in the workspace's gradebook and by
    nbgrader's SaveCells in one of its own: ``record()`` records it again in both, and gives
    the gradebooks' ``snapshot``s, their ids too."""
    theirs = f"sqlite:///{tmp_path / 'savecells.db'}"

    def record():
        gradebook.sync_assignment(tiny.ASSIGNMENT)
        save_cells(theirs, tiny.ASSIGNMENT)
        return [
            (snapshot(db, tiny.ASSIGNMENT), snapshot(db, tiny.ASSIGNMENT, ids=True))
            for db in (course.db_url(), theirs)
        ]

    record.db_urls = (course.db_url(), theirs)
    return record


def test_changed_points_are_recorded_as_savecells_records_them(tiny_source, savecells):
    (_, ours_before), (_, theirs_before) = savecells()
    change_source(tiny_source, {"test_add": 5, "test_sigmoid": 0.5})
    (ours, ours_ids), (theirs, theirs_ids) = savecells()
    assert ours == theirs
    assert ours[tiny.NOTEBOOK]["grade"]["test_add"]["max_score"] == 5
    assert ours[tiny.NOTEBOOK]["grade"]["test_sigmoid"]["max_score"] == 0.5
    # removed and added again, the notebook and its cells keep their ids (SaveCells's way)
    assert ours_ids == ours_before and theirs_ids == theirs_before


@pytest.mark.filterwarnings("ignore:.*not in session")  # nbgrader's, on a new submission
def test_cells_of_a_notebook_with_submissions(tiny_source, savecells):
    """Points change, as with SaveCells; a cell removed: refused as SaveCells refuses it, in one
    line that names the cell and says what to do, and nothing changed."""
    from nbgrader.api import Gradebook

    savecells()
    for db in savecells.db_urls:
        with Gradebook(db, gradebook.COURSE_ID) as gb:
            gb.add_student("ann")
            gb.add_submission(tiny.ASSIGNMENT, "ann")
    change_source(tiny_source, {"test_add": 3})
    (ours, ours_ids), (theirs, _) = savecells()
    assert ours == theirs and ours[tiny.NOTEBOOK]["notebook"]["num_submissions"] == 1
    assert ours[tiny.NOTEBOOK]["grade"]["test_add"]["max_score"] == 3

    change_source(tiny_source, {"test_add": None})
    with pytest.raises(gradebook.CellsChanged) as raised:
        gradebook.sync_assignment(tiny.ASSIGNMENT)
    with pytest.raises(RuntimeError, match="submissions associated with it"):
        save_cells(savecells.db_urls[1], tiny.ASSIGNMENT)
    said = str(raised.value)
    assert "\n" not in said and "(removed test_add)" in said, said
    assert "move" in said and "gradebook.db away" in said, said
    our_db = savecells.db_urls[0]
    assert snapshot(our_db, tiny.ASSIGNMENT) == ours
    assert snapshot(our_db, tiny.ASSIGNMENT, ids=True) == ours_ids


SYNC = """
import json, sys
from grader import gradebook

gradebook.sync_assignment(sys.argv[1])
with gradebook.open_gradebook() as gb:
    notebooks = gb.find_assignment(sys.argv[1]).notebooks
    cells = sum(len(nb.source_cells) for nb in notebooks)
heavy = ("nbconvert", "nbgrader.preprocessors", "bs4", "mistune", "jinja2")
print(json.dumps({"cells": cells, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def test_recording_a_new_assignment_does_not_import_nbconvert(tmp_path):
    assignment = course.assignments()[0]
    for path in course.source_notebooks(assignment):
        Master.load(path, assignment)  # in the grader's cache, as autograde's plan leaves it
    env = course.nbgrader_env() | {course.WORKSPACE_ENV: str(tmp_path / "workspace")}
    out = subprocess.run(
        [sys.executable, "-c", SYNC, assignment],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["cells"] > 0, "nothing was recorded"
    assert seen["loaded"] == [], "recording an assignment's cells imported nbconvert"

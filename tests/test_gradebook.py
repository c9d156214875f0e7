"""The grader's own reading of nbgrader's schema version stays what ``alembic`` reports, the
gradebook opens without nbgrader's server extensions, and an assignment's cells are recorded
again only when they changed."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))

import tiny_course as tiny  # noqa: E402

from grader import course, gradebook, master  # noqa: E402


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
master._preprocessors(None, ["SaveCells"])  # what recording a master's cells imports
loaded = sorted(m for m in sys.modules if m.startswith("nbgrader.server_extensions"))
import nbgrader  # the package itself is whole again on its first use

points = nbgrader._jupyter_server_extension_points()
print(json.dumps({"loaded": loaded, "version": nbgrader.__version__,
                  "extensions": [p["module"] for p in points]}))
"""


def test_the_gradebook_opens_without_nbgraders_server_extensions(tmp_path):
    import json

    env = course.nbgrader_env() | {course.WORKSPACE_ENV: str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", PARTS], env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["loaded"] == [], "opening the gradebook loaded nbgrader's server extensions"
    assert seen["version"] and seen["extensions"] == ["nbgrader"]


@pytest.fixture
def tiny_source(tmp_path, monkeypatch):
    """The tiny course's source notebook, a cache and a workspace of this test's own."""
    monkeypatch.setenv(course.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    monkeypatch.setattr(course, "SOURCE", tmp_path / "solutions")
    return tiny.write_source(course.SOURCE)


def recordings(builds):
    """How many builds recorded a master's cells in a gradebook (nbgrader's SaveCells)."""
    return sum(1 for db_url in builds if db_url)


def recorded_points(grade_id):
    with gradebook.open_gradebook() as gb:
        return gb.find_grade_cell(grade_id, tiny.NOTEBOOK, tiny.ASSIGNMENT).max_score


def test_cells_already_in_the_gradebook_are_not_recorded_again(tiny_source, builds):
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    assert recordings(builds) == 1, "the second sync recorded unchanged cells again"


@pytest.mark.parametrize("change", ["points", "locked source"])
def test_changed_cells_are_recorded_again(tiny_source, builds, change):
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    nb = nbformat.read(tiny_source, as_version=4)
    if change == "points":
        cell = next(c for c in nb.cells if master.grade_id(c) == "test_add")
        cell.metadata["nbgrader"]["points"] = 5
    else:
        cell = next(c for c in nb.cells if master.grade_id(c) == "setup")
        cell.source += "\nimport math"
    nbformat.write(nb, tiny_source)
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    assert recordings(builds) == 2
    gradebook.sync_assignment(tiny.ASSIGNMENT)
    assert recordings(builds) == 2
    if change == "points":
        assert recorded_points("test_add") == 5

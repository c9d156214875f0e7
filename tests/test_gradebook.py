"""The grader's own reading of nbgrader's schema version stays what ``alembic`` reports, and the
gradebook opens without nbgrader's server extensions."""

import subprocess
import sys

from grader import course, gradebook


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

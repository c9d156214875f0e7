"""The grader's own reading of nbgrader's schema version stays what ``alembic`` reports."""

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

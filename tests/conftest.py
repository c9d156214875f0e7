"""Shared test setup: Jupyter and matplotlib write only into a temporary folder, never the home
directory; nbgrader finds the course config and the venv's executables (it starts `alembic`)."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_home = Path(tempfile.mkdtemp(prefix="backprop-tests-"))
atexit.register(shutil.rmtree, _home, ignore_errors=True)
for var, sub in [
    ("JUPYTER_CONFIG_DIR", "jupyter-config"),
    ("JUPYTER_DATA_DIR", "jupyter-data"),
    ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
    ("IPYTHONDIR", "ipython"),
    ("MPLCONFIGDIR", "matplotlib"),
]:
    os.environ[var] = str(_home / sub)
    (_home / sub).mkdir()
os.environ["MPLBACKEND"] = "Agg"
os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
os.environ["JUPYTER_CONFIG_PATH"] = str(REPO / "grader")
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
# Grading state of tests never lands in the repository's own workspace, nor the grader's cache
# in the home directory.
os.environ["BACKPROP_GRADING_DIR"] = str(_home / "grading")
os.environ["BACKPROP_CACHE_DIR"] = str(_home / "grader-cache")


@pytest.fixture
def rng():
    """A fresh, seeded generator for each test."""
    import numpy as np

    return np.random.default_rng(12345)


@pytest.fixture
def builds(monkeypatch):
    """The masters built with nbgrader's preprocessors while the test runs, one entry per build:
    the source notebook it was built from."""
    from grader import master

    made = []
    real = master.build

    def build(source_path, assignment):
        made.append(source_path)
        return real(source_path, assignment)

    monkeypatch.setattr(master, "build", build)
    return made

"""`python -m grader doctor` (run by `make lab`) finds and re-enables a disabled extension."""

import subprocess
import sys

from grader.course import REPO, WORKSPACE_ENV, nbgrader_env
from grader.doctor import doctor, lab_status

WIDGETS = "@jupyter-widgets/jupyterlab-manager"


def test_doctor_finds_and_fixes_a_disabled_widget_extension(capsys):
    assert lab_status() == {WIDGETS: True, "@jupyter/nbgrader": True}
    subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "disable", "--level=user", WIDGETS],
        check=True,
        capture_output=True,
        env=nbgrader_env(),
    )
    try:
        assert lab_status()[WIDGETS] is False
        assert doctor(fix=False) == 1
        assert "is disabled" in capsys.readouterr().out
        assert doctor(fix=True) == 0
        assert lab_status()[WIDGETS] is True
        assert f"enabled {WIDGETS}; a JupyterLab that is already running" in capsys.readouterr().out
    finally:
        subprocess.run(
            [sys.executable, "-m", "jupyter", "labextension", "enable", "--level=user", WIDGETS],
            capture_output=True,
            env=nbgrader_env(),
        )


def test_doctor_says_when_the_formgrader_cannot_open_the_workspace(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path))  # outside the folder JupyterLab serves
    doctor(quiet=True, fix=False)
    assert "the formgrader cannot open it" in capsys.readouterr().out
    monkeypatch.setenv(WORKSPACE_ENV, str(REPO / ".grading"))
    doctor(quiet=True, fix=False)
    assert "formgrader" not in capsys.readouterr().out

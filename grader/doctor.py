"""Check that a JupyterLab installation has what the course needs: widgets and nbgrader."""

import json
import subprocess
import sys

from .course import nbgrader_env

NEEDED = {
    "@jupyter-widgets/jupyterlab-manager": "ipywidgets (sliders)",
    "@jupyter/nbgrader": "nbgrader (Validate button, formgrader)",
}


def lab_extensions():
    """Names of the JupyterLab extensions installed in this environment."""
    from jupyterlab.commands import get_app_info

    return set(get_app_info()["extensions"])


def doctor(quiet=False):
    """Print what is missing; returns 0 when everything is there, 1 otherwise."""
    found = lab_extensions()
    missing = [f"{name} ({what})" for name, what in NEEDED.items() if name not in found]
    server = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        env=nbgrader_env(),
    )
    if "nbgrader" not in server.stdout + server.stderr:
        missing.append("nbgrader server extension (formgrader)")
    for item in missing:
        print(f"missing: {item}: run `make lab` again, or `pip install -e .` in the venv")
    if not missing and not quiet:
        print(json.dumps({"lab extensions": sorted(NEEDED), "server": "nbgrader"}, indent=1))
    return 1 if missing else 0

"""Check, and with ``fix`` enable, what JupyterLab needs for the course: the widgets and
nbgrader lab extensions and nbgrader's server extensions (Validate button, formgrader)."""

import os
import subprocess
import sys

from .course import REPO, WORKSPACE_ENV, nbgrader_env, workspace

LAB_EXTENSIONS = {
    "@jupyter-widgets/jupyterlab-manager": "ipywidgets (sliders and dashboards)",
    "@jupyter/nbgrader": "nbgrader (Validate button, formgrader)",
}
SERVER_EXTENSIONS = [
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.validate_assignment",
]


def lab_status():
    """{lab extension: True when installed and enabled, False when disabled, None if absent}."""
    from jupyter_core.paths import jupyter_config_path, jupyter_path
    from jupyterlab_server.config import get_federated_extensions, get_page_config

    installed = get_federated_extensions(jupyter_path("labextensions"))
    dirs = [os.path.join(p, "labconfig") for p in jupyter_config_path()]
    disabled = get_page_config(dirs, ".").get("disabledExtensions", [])
    if isinstance(disabled, dict):
        disabled = [name for name, off in disabled.items() if off]
    return {name: (name not in disabled) if name in installed else None for name in LAB_EXTENSIONS}


def server_enabled():
    """The nbgrader server extensions that Jupyter's config files enable."""
    from jupyter_core.paths import jupyter_config_path
    from jupyter_server.extension.config import ExtensionConfigManager

    config = ExtensionConfigManager(read_config_path=jupyter_config_path())
    enabled = config.get_jpserver_extensions()
    return {name for name in SERVER_EXTENSIONS if enabled.get(name)}


def _jupyter(*args):
    subprocess.run(
        [sys.executable, "-m", "jupyter", *args],
        check=True,
        capture_output=True,
        env=nbgrader_env(),
    )


def doctor(quiet=False, fix=True):
    """Report (and with ``fix``, enable) what is missing; 0 when all is in place, else 1."""
    problems, enabled = [], []
    for name, state in lab_status().items():
        if state is None:
            problems.append(f"lab extension {name} ({LAB_EXTENSIONS[name]}) is not installed")
        elif not state and fix:
            for level in ("user", "sys_prefix"):  # a disable at either level hides it
                _jupyter("labextension", "enable", f"--level={level}", name)
            enabled.append(name)
        elif not state:
            problems.append(f"lab extension {name} is disabled")
    missing = [name for name in SERVER_EXTENSIONS if name not in server_enabled()]
    for name in missing:
        if fix:
            _jupyter("server", "extension", "enable", "--sys-prefix", name)
            enabled.append(name)
        else:
            problems.append(f"server extension {name} is not enabled")
    if enabled:
        print(
            f"doctor: enabled {', '.join(enabled)}; a JupyterLab that is already running sees "
            "it once restarted (stop it, then `make lab`)"
        )
    for problem in problems:
        print(f"doctor: {problem}; run `make lab` again, or `pip install -e .` in .venv")
    if not workspace().is_relative_to(REPO):
        print(
            f"doctor: the grading workspace {workspace()} is outside {REPO}, which JupyterLab "
            f"serves: the formgrader cannot open it (set {WORKSPACE_ENV} to a folder in there "
            "to review marks by hand; grading itself works anywhere)"
        )
    if not problems and not quiet:
        print("doctor: widgets and nbgrader are installed and enabled in JupyterLab")
    return 1 if problems else 0

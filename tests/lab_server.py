"""Start JupyterLab the way a learner does (``make lab``), on a free port, for tests.

``running_lab()`` runs ``make lab`` with a random token, ``--no-browser``, the loopback address
and a settings override that turns off JupyterLab's news pop-up, waits until ``/api/status``
answers, yields a ``Lab`` (url, token, log), and stops the whole process group at the end.
Jupyter's config, data and runtime folders come from the environment (``tests/conftest.py``
points them at a temporary folder), so nothing is written into the home directory. The grading
workspace is a fresh folder under the git-ignored ``artifacts/``: nbgrader's formgrader only
works when the course root lies inside the server's root (the repository).
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PORT_ATTEMPTS = 3

# Settings every test server gets: no news or update pop-up over the notebook, and no autosave
# (a test that runs a tracked notebook must never write its outputs back into the repository).
SETTINGS_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
}


@dataclass
class Lab:
    """A running JupyterLab: base ``url`` (ends in ``/``), ``token`` and the server's ``log``."""

    url: str
    token: str
    log: Path

    def get(self, path, timeout=10):
        """GET ``path`` (relative to the base url) with the token; returns ``(status, body)``."""
        request = urllib.request.Request(
            self.url + path.lstrip("/"), headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    def get_json(self, path):
        """GET ``path`` and decode the JSON body; raises AssertionError on a non-200 answer."""
        status, body = self.get(path)
        assert status == 200, f"GET {path} answered {status}: {body[:500]}"
        return json.loads(body)

    def page(self, path="lab", **query):
        """Browser URL of ``path`` with the token (and ``query``) in the query string."""
        pairs = [f"token={self.token}"] + [f"{k}={v}" if v != "" else k for k, v in query.items()]
        return f"{self.url}{path.lstrip('/')}?{'&'.join(pairs)}"

    def log_tail(self, chars=3000):
        """The end of the server's output, for failure messages."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def free_port():
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """The server could not listen on its port: another process took it after ``free_port``."""


def _wait_until_up(lab, process, timeout):
    """Poll ``/api/status`` until it answers 200; raise with the server log if it never does
    (``PortTaken`` when its port was taken)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = PortTaken if "is not available" in lab.log_tail() else RuntimeError
            raise error(
                f"`make lab` exited with {process.returncode} before answering:\n{lab.log_tail()}"
            )
        try:
            if lab.get("api/status", timeout=2)[0] == 200:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"JupyterLab did not answer within {timeout} s:\n{lab.log_tail()}")


def _stop(process, grace=10):
    """SIGTERM the process group of ``process`` (make, jupyter, kernels), then SIGKILL it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def running_lab(extra_args=(), startup_timeout=60, workspace=None):
    """Run ``make lab`` on a free port; yield a ``Lab``; stop every process it started.

    ``workspace``: the grading workspace the formgrader shows (it must lie inside the
    repository); by default a fresh one that is removed afterwards. The port is picked free, and
    another process can take it before the server listens on it: the server then stops at once
    (no port retries) and is started again on another port.
    """
    token = os.urandom(16).hex()
    with tempfile.TemporaryDirectory(prefix="lab-") as tmp:
        tmp = Path(tmp)
        settings = tmp / "app-settings"
        settings.mkdir()
        (settings / "overrides.json").write_text(json.dumps(SETTINGS_OVERRIDES))
        lab_args = [
            "--no-browser",
            "--ip",
            "127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--LabApp.app_settings_dir={settings}",
            f"--LabApp.user_settings_dir={tmp / 'user-settings'}",
            f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
            # An absolute checkpoint folder takes the place of each notebook folder's own
            # .ipynb_checkpoints: opening a notebook leaves nothing in the repository.
            f"--FileCheckpoints.checkpoint_dir={tmp / 'checkpoints'}",
            *extra_args,
        ]
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = free_port()
            grading = Path(workspace) if workspace else REPO / "artifacts" / f"lab-grading-{port}"
            log = tmp / f"server-{attempt}.log"
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [
                        "make",
                        "--no-print-directory",
                        "lab",
                        f"PORT={port}",
                        f"LAB_ARGS={' '.join(lab_args)}",
                    ],
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=os.environ | {"BACKPROP_GRADING_DIR": str(grading)},
                )
            lab = Lab(url=f"http://127.0.0.1:{port}/", token=token, log=log)
            try:
                _wait_until_up(lab, process, startup_timeout)
            except BaseException as error:
                _end(process, None if workspace else grading)
                if isinstance(error, PortTaken) and attempt < PORT_ATTEMPTS:
                    continue
                raise
            try:
                yield lab
            finally:
                _end(process, None if workspace else grading)
            return


def _end(process, grading):
    """Stop ``make lab``'s processes and remove its fresh ``grading`` workspace (None: keep)."""
    _stop(process)
    if grading is not None:
        shutil.rmtree(grading, ignore_errors=True)

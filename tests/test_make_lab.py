"""``make lab`` starts a JupyterLab that serves the course and the extensions it needs; a re-run
of ``make install`` on an installed checkout does not reinstall anything."""

import html
import json
import re
import subprocess

import pytest
from lab_server import REPO, running_lab

# Lab extensions the course needs in the learner's browser (sliders; Validate and formgrader).
NEEDED_EXTENSIONS = ["@jupyter-widgets/jupyterlab-manager", "@jupyter/nbgrader"]


def page_config(page_html):
    """The ``jupyter-config-data`` JSON that JupyterLab embeds in its page."""
    match = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
        page_html,
        re.S,
    )
    assert match, "the /lab page has no jupyter-config-data block"
    return json.loads(html.unescape(match.group(1)))


pytestmark = pytest.mark.xdist_group("make-lab")  # one worker: the tests share one server


@pytest.fixture(scope="module")
def lab():
    with running_lab() as server:
        yield server


def test_status_answers(lab):
    status = lab.get_json("api/status")
    assert "started" in status


def test_course_folders_listed(lab):
    names = {item["name"] for item in lab.get_json("api/contents")["content"]}
    missing = {"notebooks", "solutions", "lib"} - names
    assert not missing, f"/api/contents lacks {sorted(missing)}; it lists {sorted(names)}"


def test_widgets_and_nbgrader_extensions_served(lab):
    status, body = lab.get("lab")
    assert status == 200, f"/lab answered {status}"
    config = page_config(body)
    served = {ext["name"] for ext in config.get("federated_extensions", [])}
    missing = [name for name in NEEDED_EXTENSIONS if name not in served]
    assert not missing, f"/lab does not load {missing}; it loads {sorted(served)}"
    disabled = config.get("disabledExtensions", [])
    blocked = [d for d in disabled if any(d.startswith(name) for name in NEEDED_EXTENSIONS)]
    assert not blocked, f"needed extensions are disabled: {blocked}"
    for name in NEEDED_EXTENSIONS:
        ext = next(e for e in config["federated_extensions"] if e["name"] == name)
        code, _ = lab.get(f"lab/extensions/{name}/{ext['load']}")
        assert code == 200, f"the bundle of {name} answered {code}"


def test_news_popup_turned_off(lab):
    settings = lab.get_json("lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert settings["schema"]["properties"]["fetchNews"]["default"] == "false"


def test_formgrader_served(lab):
    status, body = lab.get("formgrader")
    assert status == 200, f"/formgrader answered {status}: {body[:300]}"


def test_reinstall_is_a_no_op():
    """On an installed checkout, ``make install`` has nothing to do: it would not run pip."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "install"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "pip" not in dry.stdout, f"`make install` would reinstall:\n{dry.stdout}"
    up_to_date = subprocess.run(["make", "-q", "install"], cwd=REPO, capture_output=True)
    assert up_to_date.returncode == 0, "`make -q install` says the install is out of date"


def test_a_port_taken_before_the_server_listens_is_replaced(monkeypatch):
    """The first port ``free_port`` gives is taken by the time the server starts: the server
    must stop at once (not move to a port the test does not know) and start on another."""
    import socket

    import lab_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], lab_server.free_port()])
        monkeypatch.setattr(lab_server, "free_port", lambda: next(ports))
        with lab_server.running_lab() as server:
            assert "started" in server.get_json("api/status")
            first_log = server.log.with_name("server-1.log").read_text(errors="replace")
            assert "is not available" in first_log

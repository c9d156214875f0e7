"""The learner's and the instructor's path in a real browser: JupyterLab started by ``make lab``,
driven by Playwright in headless Chromium (Debian's ``chromium`` package).

Skipped with a message when Chromium or Playwright is missing; ``.ci/run`` installs Chromium,
so CI always runs them. Screenshots of every step go to ``artifacts/browser/``.
"""

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from lab_server import REPO, running_lab

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TRAINING = "solutions/05-training-loop/training_loop.ipynb"
GRAPHS = "solutions/02-computation-graphs/computation_graphs.ipynb"
STUDENT_GRAPHS = "notebooks/02-computation-graphs/computation_graphs.ipynb"
WRONG_ANSWER = "tests/fixtures/answers/02-computation-graphs/MulLayer__not_swapped.py"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("browser"),  # one worker: the tests share one JupyterLab
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed: apt-get install chromium"),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed: make install-test"
)


def require(*paths):
    """Skip the test, naming what is missing, unless every repository path exists."""
    missing = [p for p in paths if not (REPO / p).exists()]
    if missing:
        pytest.skip(f"not in the repository yet: {', '.join(missing)}")


def checkpoint_folders():
    """The .ipynb_checkpoints folders of the course's notebook folders."""
    return {
        p for top in ("solutions", "notebooks") for p in REPO.glob(f"{top}/*/.ipynb_checkpoints")
    }


@pytest.fixture(scope="module")
def lab():
    before = checkpoint_folders()
    with running_lab(extra_args=["--LabApp.expose_app_in_browser=True"]) as server:
        yield server
    left = checkpoint_folders() - before
    assert not left, f"JupyterLab left checkpoints in the repository: {sorted(map(str, left))}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        yield context
        context.close()


class Shots:
    """Numbered screenshots of one test's steps in ``artifacts/browser/<test>/``."""

    def __init__(self, page, name):
        self.page, self.folder, self.count = page, ARTIFACTS / name, 0
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    def __call__(self, step):
        self.count += 1
        self.page.screenshot(path=str(self.folder / f"{self.count:02d}-{step}.png"), full_page=True)


@pytest.fixture
def page(browser, request):
    """A fresh tab; its screenshots are taken with ``page.shot(step)``; closed afterwards."""
    tab = browser.new_page()
    tab.set_default_timeout(30_000)
    tab.shot = Shots(tab, request.node.name)
    failed_before = request.session.testsfailed
    yield tab
    if request.session.testsfailed > failed_before:
        tab.shot("failure")
    tab.close()


KERNEL_STATUS = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return k ? k.status : null;
}"""


def wait_for_idle_kernel(page, timeout=60_000):
    """Wait until the current notebook's kernel reports idle."""
    page.wait_for_function(f"() => ({KERNEL_STATUS})() === 'idle'", timeout=timeout)


def open_notebook(page, lab, path):
    """Open ``path`` in JupyterLab (without restoring a previous workspace); wait for the kernel."""
    page.goto(lab.page(f"lab/tree/{path}", reset=""))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    wait_for_idle_kernel(page)


def run_all(page, timeout=120_000):
    """Run every cell (JupyterLab's Run All) and wait until the last one has finished."""
    page.evaluate(
        "() => { window.__ranAll = false; window.jupyterapp.commands"
        ".execute('notebook:run-all-cells').then(() => { window.__ranAll = true; }); }"
    )
    page.wait_for_function("() => window.__ranAll === true", timeout=timeout)
    page.wait_for_function(
        "() => !Array.from(document.querySelectorAll('.jp-InputPrompt'))"
        ".some(p => p.textContent.includes('*'))",
        timeout=timeout,
    )


def press_slider(page, slider_class, key, times):
    """Focus the handle of the first slider of ``slider_class`` and press ``key`` ``times``."""
    handle = page.locator(f".{slider_class} .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(times):
        handle.press(key)
    handle.blur()


def number(text):
    """The first number in ``text`` as a float."""
    match = re.search(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text.replace(",", ""))
    assert match, f"no number in {text!r}"
    return float(match.group())


def wait_for_number(page, selector, expected, timeout=20_000):
    """Wait until the first element matching ``selector`` shows ``expected`` (to 1e-6)."""
    page.wait_for_function(
        """([sel, want]) => {
            const el = document.querySelector(sel);
            if (!el) return false;
            const m = el.textContent.replace(/,/g, "").match(/-?\\d+(\\.\\d+)?(e[-+]?\\d+)?/);
            return m && Math.abs(parseFloat(m[0]) - want) < 1e-6 * Math.max(1, Math.abs(want));
        }""",
        arg=[selector, expected],
        timeout=timeout,
    )


def assert_live_widget(output):
    """``output``, the cell output that holds an explorer, shows the live widget and not the
    static PNG that the explorer's display bundle also carries for viewers without a kernel."""
    classes = output.evaluate("el => Array.from(el.classList)")
    assert "jp-RenderedImage" not in classes, f"the static picture is shown: {classes}"
    stray = output.evaluate(
        "el => [...el.querySelectorAll('img')]"
        ".filter(i => !i.closest('.bp-plot, .bp-loss-plot')).length"
    )
    assert stray == 0, "a picture outside the widget's own plot"


def test_training_dashboard_trains(page, lab):
    require(TRAINING)
    open_notebook(page, lab, TRAINING)
    page.shot("opened")
    run_all(page)
    page.shot("ran-all")
    dashboard = page.locator(".jp-OutputArea-output", has=page.locator(".bp-train")).first
    dashboard.scroll_into_view_if_needed()
    assert_live_widget(dashboard)
    plot = dashboard.locator(".bp-loss-plot")
    before = plot.locator("img").evaluate_all("imgs => imgs.map(i => i.src)")
    assert before, "the dashboard shows no axes before Train is pressed"
    lr_readout = dashboard.locator(".bp-slider-lr .widget-readout").first
    lr_before = number(lr_readout.text_content())
    press_slider(page, "bp-slider-lr", "ArrowLeft", 3)
    page.wait_for_function(
        "([el, old]) => parseFloat(el.textContent) !== old",
        arg=[lr_readout.element_handle(), lr_before],
    )
    lr_after = number(lr_readout.text_content())
    assert lr_after < lr_before, f"learning rate {lr_before} -> {lr_after}"
    page.shot("lr-moved")

    bar = dashboard.locator(".bp-progress .progress-bar").first
    # Every width the bar takes, however briefly: a short run can fill it between two samples.
    bar.evaluate(
        "el => { window.bpWidths = [];"
        " new MutationObserver(() => window.bpWidths.push(el.style.width || '0'))"
        ".observe(el, {attributes: true, attributeFilter: ['style']}); }"
    )
    button = dashboard.locator(".bp-train button, button.bp-train").first
    button.click()
    frames, widths = set(), []
    for _ in range(600):  # sample the picture and the bar while it trains (up to ~60 s)
        frames.update(plot.locator("img").evaluate_all("imgs => imgs.map(i => i.src)"))
        widths.append(number(bar.evaluate("el => el.style.width || '0'")))
        if widths[-1] >= 100 and "epoch" in dashboard.locator(".bp-status").text_content():
            break
        page.wait_for_timeout(100)
    assert widths[-1] >= 100, f"progress bar stopped at {widths[-1]} %"
    observed = [number(w) for w in page.evaluate("window.bpWidths")]
    assert observed and any(w < 100 for w in observed[:-1]) and observed[-1] >= 100, (
        f"the bar did not advance during the run: {observed}"
    )
    # A short run draws only its last frame, which JupyterLab may show a moment after the bar.
    try:
        page.wait_for_function(
            "([el, old]) => [...el.querySelectorAll('img')].some(i => !old.includes(i.src))",
            arg=[plot.element_handle(), before],
            timeout=10_000,
        )
    except sync_api.TimeoutError:
        pass  # the assertion below says what is missing
    # The button comes back once the last frame is drawn: the screenshot shows the whole run.
    page.wait_for_function("el => !el.disabled", arg=button.element_handle(), timeout=10_000)
    page.shot("trained")
    frames.update(plot.locator("img").evaluate_all("imgs => imgs.map(i => i.src)"))
    new_frames = frames - set(before)
    assert new_frames, "the loss plot was not redrawn after pressing Train"
    status = dashboard.locator(".bp-status").text_content()
    assert "error" not in status.lower(), status


def test_computation_graph_sliders_update_gradients(page, lab):
    require(GRAPHS)
    open_notebook(page, lab, GRAPHS)
    run_all(page)
    explorer = page.locator(".jp-OutputArea-output", has=page.locator(".bp-slider-apple")).first
    explorer.scroll_into_view_if_needed()
    page.shot("ran-all")
    assert_live_widget(explorer)
    scope = "#" + explorer.evaluate("el => el.id || (el.id = 'bp-explorer-under-test')")
    # Seed numbers: apple 100, 2 apples, orange 150, 3 oranges, tax 1.1.
    wait_for_number(page, f"{scope} .bp-price", 715)
    wait_for_number(page, f"{scope} .bp-grad-apple_num", 110)
    wait_for_number(page, f"{scope} .bp-grad-tax", 650)
    drawing = explorer.locator(".bp-plot img").first.get_attribute("src")
    press_slider(page, "bp-slider-apple", "ArrowRight", 5)  # step 10: 100 -> 150
    readout = explorer.locator(".bp-slider-apple .widget-readout").first
    page.wait_for_function("el => parseFloat(el.textContent) === 150", arg=readout.element_handle())
    # d price / d apple_num = apple * tax; d price / d tax = apple * n + orange * m.
    wait_for_number(page, f"{scope} .bp-grad-apple_num", 150 * 1.1)
    wait_for_number(page, f"{scope} .bp-grad-tax", 150 * 2 + 150 * 3)
    wait_for_number(page, f"{scope} .bp-grad-apple", 2 * 1.1)
    wait_for_number(page, f"{scope} .bp-price", (150 * 2 + 150 * 3) * 1.1)
    wait_for_idle_kernel(page)  # every slider step redraws: wait for the last frame
    redrawn = explorer.locator(".bp-plot img").first.get_attribute("src")
    assert redrawn != drawing, "the graph drawing was not redrawn after moving the slider"
    page.shot("apple-150")


def wrong_submission():
    """The student notebook with the wrong ``MulLayer`` fixture in its answer cell, saved under
    ``artifacts/browser/`` (git-ignored, inside the server's root); returns its repo path."""
    nb = nbformat.read(REPO / STUDENT_GRAPHS, as_version=4)
    answer = (REPO / WRONG_ANSWER).read_text()
    expect = re.search(r"^# expect: (\S+)", answer, re.M).group(1)
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "MulLayer"]
    assert cells, "the student notebook has no answer cell with grade_id MulLayer"
    cells[0].source = answer
    target = ARTIFACTS / "submission" / Path(STUDENT_GRAPHS).name
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return str(target.relative_to(REPO)), expect


SCROLL_TO_TEXT = """(root, text) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (node.textContent.includes(text)) {
            const mark = document.createElement("span");
            node.parentNode.insertBefore(mark, node);
            mark.scrollIntoView({block: "center"});
            mark.remove();
            return;
        }
    }
}"""


def scroll_to_text(locator, text):
    """Scroll the boxes around ``text`` (inside ``locator``) so that its line shows: a locator
    of the text itself would scroll to the element that holds it, here a whole traceback."""
    locator.evaluate(SCROLL_TO_TEXT, text)


def test_validate_shows_the_diagnosis(page, lab):
    require(STUDENT_GRAPHS, WRONG_ANSWER)
    path, expect = wrong_submission()
    open_notebook(page, lab, path)
    page.shot("opened")
    page.locator(".validate-button").first.click()
    dialog = page.locator(".validation-failed")
    dialog.wait_for(timeout=120_000)
    page.shot("validated")
    scroll_to_text(dialog, f"[mistake: {expect}]")
    page.shot("diagnosis")
    text = dialog.text_content()
    assert f"[mistake: {expect}]" in text, f"the Validate dialog does not name {expect}:\n{text}"


def test_formgrader_lists_assignments(page, lab):
    assignments = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
    if not assignments:
        pytest.skip("no assignments in solutions/ yet")
    page.goto(lab.page("formgrader"))
    for name in assignments:
        page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    page.shot("assignments")
    listed = json.dumps(page.content())
    assert all(name in listed for name in assignments)

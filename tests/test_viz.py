"""Pictures and explorers: the numbers behind them, that every plot draws something, that moving
a slider changes what is shown to the right values, and the training dashboard's live updates,
restarts and learner-written training loops."""

import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from backprop import graphs, plots, widgets
from backprop.data import digits_split, spiral
from backprop.functions import sigmoid, sigmoid_prime
from backprop.train import train as reference_train
from nbharness import execute

REFERENCE = {"apple": 2.2, "apple_num": 110, "orange": 3.3, "orange_num": 165, "tax": 650}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def digits():
    return digits_split()


def slope(hs, err, lo, hi):
    """Least-squares slope of log(err) against log(h) for lo <= h <= hi."""
    keep = (hs >= lo) & (hs <= hi) & (err > 0)
    return np.polyfit(np.log10(hs[keep]), np.log10(err[keep]), 1)[0]


def cell(html, css_class):
    """Text of the table cell with class ``css_class`` in an explorer's HTML."""
    match = re.search(rf"class='{css_class}'>([^<]*)<", html)
    assert match, f"no cell with class {css_class}"
    return match.group(1)


# --- numbers behind the pictures ---------------------------------------------------------------


def test_apple_orange_reference_numbers():
    result = graphs.apple_orange_values()
    assert result["price"] == pytest.approx(715)
    for name, expected in REFERENCE.items():
        assert result["grads"][name] == pytest.approx(expected), name
    assert result["values"]["total"] == pytest.approx(650)
    assert graphs.format_value(result["grads"]["apple"]) == "2.2"
    assert graphs.format_value(result["grads"]["apple_num"]) == "110"
    assert graphs.format_value(result["price"]) == "715"


def test_apple_orange_with_a_learners_graph():
    def doubled(apple, apple_num, orange, orange_num, tax):  # a wrong answer on purpose
        price = (apple * apple_num + orange * orange_num) * tax
        return price, {
            "apple": 2 * apple_num * tax,
            "apple_num": apple * tax,
            "orange": orange_num * tax,
            "orange_num": orange * tax,
            "tax": apple * apple_num + orange * orange_num,
        }

    result = graphs.apple_orange_values(graph_fn=doubled)
    assert result["grads"]["apple"] == pytest.approx(4.4)  # the learner's number is shown
    assert result["grads"]["tax"] == pytest.approx(650)
    with pytest.raises(KeyError, match="orange_num"):
        graphs.apple_orange_values(graph_fn=lambda *a: (715.0, {"apple": 2.2}))


def test_numerical_error_falls_like_h_squared_then_rises():
    hs, central, forward = plots.numerical_error_curve(np.sin, np.cos, 1.0)
    assert hs.shape == central.shape == forward.shape == (45,)
    assert hs.min() == pytest.approx(1e-12) and hs.max() == pytest.approx(1e-1)
    assert slope(hs, central, 1e-3, 1e-1) == pytest.approx(2.0, abs=0.15)
    assert slope(hs, forward, 1e-4, 1e-1) == pytest.approx(1.0, abs=0.15)
    assert slope(hs, central, 1e-12, 1e-8) < -0.5  # rounding: error grows as h shrinks
    best = hs[np.argmin(central)]
    assert 1e-7 <= best <= 1e-3
    assert central.min() < 1e-9 < forward.min()


def test_gradient_fades_with_depth_for_sigmoid_not_relu():
    norms = plots.gradient_vs_depth(8, activation="sigmoid")
    assert norms.shape == (8,)
    assert np.all(np.diff(norms) > 0), "gradients should grow from the input towards the output"
    assert norms[0] / norms[-1] < 1e-3
    relu = plots.gradient_vs_depth(8, activation="relu")
    assert relu[0] / relu[-1] > 0.1
    assert np.array_equal(norms, plots.gradient_vs_depth(8))  # seeded


def _lines_have_data(ax):
    return any(len(line.get_xdata()) for line in ax.get_lines()) or len(ax.patches) > 0


def test_every_plot_draws_data(digits):
    X_train, y_train, X_val, y_val = digits
    history = {
        "loss": list(np.linspace(2, 0.1, 30)),
        "train_acc": [0.8, 0.9, 0.95],
        "val_acc": [0.7, 0.85, 0.9],
    }
    X, y = spiral(n_per_class=20)
    axes = [
        plots.plot_numerical_error(np.sin, np.cos, 1.0),
        plots.plot_sigmoid(1.0),
        plots.plot_sigmoid(),
        plots.plot_gradient_vs_depth(5),
        plots.plot_gradient_vs_depth(5, activation="relu"),
        *plots.plot_history(history),
        plots.plot_rel_errors({"W1": 1e-9, "b1": 0.0, "W2": 3e-6}),
        plots.plot_timings([1, 32, 256], [1e-4, 3e-3, 2.5e-2], [1e-5, 2e-4, 1e-3]),
        graphs.draw_apple_orange(),
    ]
    for ax in axes:
        assert isinstance(ax, matplotlib.axes.Axes)
        assert _lines_have_data(ax) or ax.texts, ax.get_title()
    ax = plots.plot_decision_boundary(lambda Z: np.column_stack([Z[:, 0], -Z[:, 0], Z[:, 1]]), X, y)
    assert len(ax.collections) >= 2  # filled contour and points
    ax = plots.plot_rel_errors({"W1": 1e-9, "W2": 3e-6}, tol=1e-7)
    assert [p.get_facecolor() for p in ax.patches][0] != ax.patches[1].get_facecolor()
    ax = plots.plot_timings([1, 32], [1e-3, 3.2e-2], [1e-3, 1e-3])
    assert "×32" in [t.get_text() for t in ax.texts]


def test_draw_graph_writes_forward_above_and_gradient_below():
    nodes = {"x": (0, 0, "x"), "f": (2, 0, "f")}
    ax = graphs.draw_graph(nodes, [("x", "f", 3.0, -0.5), ("f", "f", None, None)])
    texts = {t.get_text(): t for t in ax.texts}
    assert {"3", "-0.5", "x", "f"} <= set(texts)
    assert texts["3"].get_position()[1] > 0 and texts["-0.5"].get_position()[1] < 0  # offsets
    assert texts["3"].get_color() != texts["-0.5"].get_color()


# --- explorers ---------------------------------------------------------------------------------


def _png(explorer):
    (frame,) = explorer.output.outputs
    return frame["data"]["image/png"]


def test_apple_orange_explorer_follows_its_sliders():
    e = widgets.apple_orange_explorer()
    assert set(e.sliders) == set(REFERENCE)
    assert cell(e.table.value, "bp-price") == "715"
    assert cell(e.table.value, "bp-grad-apple") == "2.2"
    assert cell(e.table.value, "bp-grad-apple_num") == "110"
    before = _png(e)
    e.sliders["apple"].value = 200
    assert cell(e.table.value, "bp-grad-apple_num") == "220"
    assert cell(e.table.value, "bp-grad-tax") == "850"
    assert cell(e.table.value, "bp-price") == "935"
    assert e.values["grads"]["apple_num"] == pytest.approx(220)
    assert "220" in [t.get_text() for t in e.figure.axes[0].texts]
    assert _png(e) != before
    e.sliders["tax"].value = 1.2
    assert cell(e.table.value, "bp-grad-apple") == "2.4"
    for name in REFERENCE:
        assert f"bp-slider-{name}" in e.sliders[name]._dom_classes


def test_apple_orange_explorer_with_an_unwritten_answer():
    def apple_orange_graph(apple, apple_num, orange, orange_num, tax):
        raise NotImplementedError()

    e = widgets.apple_orange_explorer(apple_orange_graph)
    assert "NotImplementedError" in e.status.value
    e.sliders["apple"].value = 300  # no exception escapes
    assert e.output.outputs == () and e.values is None

    e.graph_fn = None
    e.update()
    assert e.values["price"] == pytest.approx((300 * 2 + 450) * 1.1)
    e.graph_fn = lambda *args: (0.0, {})  # a half-written answer after a working one
    e.update()
    assert "KeyError" in e.status.value and e.output.outputs == () and e.values is None


def test_sigmoid_depth_and_numerical_explorers_follow_their_sliders():
    s = widgets.sigmoid_explorer()
    assert s.values["sigmoid_prime"] == pytest.approx(0.25)
    s.sliders["z"].value = 2.0
    assert s.values["sigmoid"] == pytest.approx(sigmoid(2.0))
    assert s.values["sigmoid_prime"] == pytest.approx(sigmoid_prime(2.0))
    assert "0.8808" in s.status.value

    d = widgets.depth_explorer(depth=4)
    assert d.values.shape == (4,)
    d.sliders["depth"].value = 7
    np.testing.assert_array_equal(d.values, plots.gradient_vs_depth(7))
    assert len(d.figure.axes[0].patches) == 7
    d.activation.value = "relu"
    np.testing.assert_array_equal(d.values, plots.gradient_vs_depth(7, activation="relu"))

    n = widgets.numerical_error_explorer(np.sin, np.cos, x=1.0)
    n.sliders["x"].value = 2.0
    hs, central, forward = n.values
    np.testing.assert_array_equal(central, plots.numerical_error_curve(np.sin, np.cos, 2.0)[1])
    assert "x = 2" in n.figure.axes[0].get_title()


def test_explorers_draw_but_make_no_png_while_graded(monkeypatch, digits):
    monkeypatch.setenv(widgets.GRADING_ENV, "autograde")
    e = widgets.apple_orange_explorer()
    e.sliders["apple"].value = 200
    (frame,) = e.output.outputs
    assert set(frame["data"]) == {"text/plain"} and frame["data"]["text/plain"].startswith("<Fig")
    assert "220" in [t.get_text() for t in e.figure.axes[0].texts]
    d = widgets.TrainingDashboard(*digits, hidden=8, epochs=1)
    d.train()
    assert "image/png" not in d.output.outputs[0]["data"] and d.lines["val_acc"]
    monkeypatch.delenv(widgets.GRADING_ENV)
    e.sliders["apple"].value = 100
    assert _png(e)


def test_decision_boundary_explorer_retrains_on_change():
    e = widgets.decision_boundary_explorer(hidden=16, epochs=5)
    assert len(e.history["val_acc"]) == 5 and e.progress.value == 5
    before = e.values.copy()
    e.sliders["epochs"].value = 60
    assert e.values.shape == e.y.shape and np.mean(e.values == e.y) > np.mean(before == e.y)
    assert len(e.history["val_acc"]) == 60 and e.progress.value == e.progress.max == 60
    assert e.history["train_acc"][-1] > 0.8  # the spiral is learnable
    assert e.net.params["W1"].shape == (2, 16)


# --- training dashboard ------------------------------------------------------------------------


@pytest.fixture
def frames(monkeypatch):
    """Counts the frames the widgets render."""
    count = []
    real = widgets.render
    monkeypatch.setattr(widgets, "render", lambda fig, out: (count.append(1), real(fig, out)))
    return count


def _dashboard(digits, **kwargs):
    dash = widgets.TrainingDashboard(*digits, frame_interval=0, **kwargs)
    dash.sliders["hidden"].value = 16
    dash.sliders["epochs"].value = 3
    return dash


def _consistent(dash):
    for key in ("loss", "train_acc", "val_acc"):
        assert dash.lines[key] == list(dash.history[key]), key


def test_dashboard_small_run(digits, frames):
    dash = _dashboard(digits)
    progress = []
    dash.progress.observe(lambda change: progress.append(change["new"]), names="value")
    history = dash.train()
    assert progress[-3:] == [1, 2, 3]  # advances epoch by epoch
    assert history is dash.history
    assert len(history["val_acc"]) == 3 and len(history["train_acc"]) == 3
    assert dash.progress.value == dash.progress.max == 3
    assert dash.net.params["W1"].shape == (64, 16)
    assert history["val_acc"][-1] > 0.85
    assert len(frames) >= 3  # one frame per epoch, live
    _consistent(dash)
    assert re.fullmatch(r"epoch 3/3 · loss \d+\.\d{3} · val acc \d+\.\d %", dash.status.value)
    assert f"{100 * history['val_acc'][-1]:.1f} %" in dash.status.value
    assert "bp-progress" in dash.progress._dom_classes
    assert "bp-loss-plot" in dash.output._dom_classes
    assert dash.output.outputs[0]["data"]["image/png"]
    assert not dash.button.disabled
    dash.sliders["lr"].value = 0.01  # between runs: the change waits for the next run
    assert dash.status.value.startswith("epoch 3/3") and "press Train" in dash.status.value
    assert len(dash.history["val_acc"]) == 3


def test_dashboard_draws_at_least_the_last_frame_when_throttled(digits, frames):
    dash = _dashboard(digits)
    dash.frame_interval = np.inf  # mid-run frames are all skipped
    statuses = []
    dash.status.observe(lambda change: statuses.append(change["new"]), names="value")
    dash.train()
    assert len(frames) == 1
    assert [t for t in statuses if t.startswith("epoch 2/3 · loss")]  # text still live
    _consistent(dash)


def test_dashboard_restarts_when_a_slider_moves_mid_run(digits):
    dash = _dashboard(digits)
    moved, runs = [], []

    def train_and_fiddle(net, *args, callback=None, **kwargs):
        runs.append([])

        def fiddling(history, epoch):
            runs[-1].append(epoch)
            if not moved:  # the learner drags two sliders after the first epoch
                moved.append(epoch)
                dash.sliders["epochs"].value = 2
                dash.sliders["hidden"].value = 8
            return callback(history, epoch)

        return reference_train(net, *args, callback=fiddling, **kwargs)

    dash.train_fn = train_and_fiddle
    history = dash.train()
    assert moved == [0]
    assert runs == [[0], [0, 1]]  # stopped after the epoch in which the sliders moved
    assert dash.restarts == 1
    assert len(history["val_acc"]) == 2
    assert dash.net.params["W1"].shape == (64, 8)
    assert dash.progress.value == dash.progress.max == 2
    _consistent(dash)
    assert dash.status.value.startswith("epoch 2/2")


def test_dashboard_with_a_learners_train_that_takes_no_callback(digits, frames):
    calls = []

    def train(net, X_train, y_train, X_val, y_val, epochs, lr, batch_size, seed=0):
        calls.append(epochs)
        return reference_train(net, X_train, y_train, X_val, y_val, epochs, lr, batch_size, seed)

    dash = _dashboard(digits, train_fn=train)
    history = dash.train()
    assert calls == [3]
    assert len(history["val_acc"]) == 3
    assert len(frames) == 1  # drawn once, at the end
    assert dash.progress.value == dash.progress.max == 3
    _consistent(dash)


def test_dashboard_with_a_learners_train_that_ignores_its_callback(digits):
    def train(net, X_train, y_train, X_val, y_val, epochs, lr, batch_size, seed=0, callback=None):
        return reference_train(net, X_train, y_train, X_val, y_val, epochs, lr, batch_size, seed)

    dash = _dashboard(digits, train_fn=train)
    dash.train()
    assert dash.progress.value == dash.progress.max == 3
    _consistent(dash)


def test_dashboard_reports_a_failing_train(digits):
    def train(*args, **kwargs):
        raise NotImplementedError()

    dash = _dashboard(digits, train_fn=train)
    with pytest.raises(NotImplementedError):
        dash.train()
    assert "NotImplementedError" in dash.status.value
    assert not dash.button.disabled and not dash._running


# --- headless execution ------------------------------------------------------------------------


@pytest.mark.slow
def test_explorers_run_headless_in_a_kernel(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np\n"
            "from backprop import widgets\n"
            "from backprop.data import digits_split\n"
            "widgets.apple_orange_explorer()"
        ),
        nbformat.v4.new_code_cell(
            "d = widgets.TrainingDashboard(*digits_split(), hidden=16, epochs=1)\n"
            "display(d)\n"
            "h = d.train()\n"
            "assert len(h['val_acc']) == 1"
        ),
    ]
    execute(nb, tmp_path, timeout=60)
    for c in nb.cells:
        for out in c.outputs:
            assert out.output_type != "error", out
            assert out.get("name") != "stderr", out.get("text")
    assert any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in nb.cells[0].outputs
    )
    # no second, static copy of any figure: the widgets draw into their own figures
    assert not any("image/png" in o.get("data", {}) for c in nb.cells for o in c.outputs)

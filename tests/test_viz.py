"""Pictures and explorers: the numbers behind them, that every plot draws something, that moving
a slider changes what is shown to the right values, and the training dashboard's live updates,
restarts and learner-written training loops."""

import base64
import io
import itertools
import re
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from backprop import graphs, plots, widgets
from backprop.data import digits_split, spiral
from backprop.functions import sigmoid, sigmoid_prime
from backprop.train import train as reference_train
from matplotlib.backends.backend_agg import FigureCanvasAgg
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
    for drawn in [*axes, ax]:
        legend = drawn.get_legend()
        sizes = [t.get_fontsize() for t in legend.get_texts()] if legend else []
        assert all(size >= 8 for size in sizes), (drawn.get_title(), sizes)
    ax = plots.plot_timings([1, 32], [1e-3, 3.2e-2], [1e-3, 1e-3])
    assert "×32" in [t.get_text() for t in ax.texts]


def test_draw_graph_writes_forward_above_and_gradient_below():
    nodes = {"x": (0, 0, "x"), "f": (2, 0, "f")}
    ax = graphs.draw_graph(nodes, [("x", "f", 3.0, -0.5), ("f", "f", None, None)])
    texts = {t.get_text(): t for t in ax.texts}
    assert {"3", "-0.5", "x", "f"} <= set(texts)
    renderer = _drawn(ax)
    edge_y = ax.transData.transform((1, 0))[1]
    assert texts["3"].get_window_extent(renderer).y0 > edge_y  # above the arrow
    assert texts["-0.5"].get_window_extent(renderer).y1 < edge_y  # below it
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


def _dashboard(digits, frames=None, **kwargs):
    dash = widgets.TrainingDashboard(*digits, frame_interval=0, **kwargs)
    dash.sliders["hidden"].value = 16
    dash.sliders["epochs"].value = 3
    if frames is not None:
        frames.clear()  # count the frames of the run only, not the empty axes drawn at first
    return dash


def _consistent(dash):
    for key in ("loss", "train_acc", "val_acc"):
        assert dash.lines[key] == list(dash.history[key]), key


def test_a_value_outside_a_sliders_range_is_taken_not_clamped(digits):
    dash = widgets.TrainingDashboard(*digits, lr=30.0, epochs=300, batch_size=1000)
    assert dash.sliders["lr"].value == pytest.approx(30.0)  # used to be 10, the slider's end
    assert dash.sliders["epochs"].value == 300 and dash.sliders["batch_size"].value == 1000
    assert dash.sliders["lr"].max == 2  # 10^2: room to slide back
    tiny = widgets.decision_boundary_explorer(lr=1e-5, epochs=1, hidden=2)
    assert tiny.sliders["lr"].value == pytest.approx(1e-5)
    assert widgets.sigmoid_explorer(z=20.0).values["sigmoid"] == pytest.approx(sigmoid(20.0))
    assert widgets.depth_explorer(depth=25).values.shape == (25,)
    apples = widgets.apple_orange_explorer(apple_num=12, tax=0.9)
    assert apples.sliders["apple_num"].value == 12 and apples.sliders["tax"].value == 0.9
    for make, kwargs, says in [
        (widgets.TrainingDashboard, {"lr": 0.0}, "lr must be above 0"),
        (widgets.TrainingDashboard, {"epochs": 0}, "epochs must be at least 1, not 0"),
        (widgets.TrainingDashboard, {"batch_size": -32}, "batch_size must be at least 1"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            make(*digits, **kwargs)
    with pytest.raises(ValueError, match="apple_num must be at least 0"):
        widgets.apple_orange_explorer(apple_num=-1)


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
    dash = _dashboard(digits, frames)
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

    dash = _dashboard(digits, frames, train_fn=train)
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
    (shown,) = nb.cells[0].outputs  # one output: the live widget, its first frame beside it
    assert "application/vnd.jupyter.widget-view+json" in shown["data"]
    assert shown["data"]["image/png"]
    # no second, static copy of any figure: the widgets draw into their own figures, and a
    # picture appears only in the bundle of the widget it belongs to
    for c in nb.cells:
        for o in c.outputs:
            if "image/png" in o.get("data", {}):
                assert "application/vnd.jupyter.widget-view+json" in o["data"], o


# --- what a learner reads off the pictures -----------------------------------------------------


def _drawn(ax):
    """Draw the figure of ``ax`` with Agg (also a figure made without pyplot); returns its
    renderer."""
    fig = ax.figure
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _png_size(b64):
    """(width, height) in pixels of a base64 PNG."""
    raw = base64.b64decode(b64)
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def test_numerical_error_shows_identical_curves_and_marks_no_lucky_step():
    # At x = 0 the forward and centred differences of sin are the same numbers, and both
    # errors are exactly 0 for small h.
    ax = plots.plot_numerical_error(np.sin, np.cos, 0.0)
    lines = {line.get_label(): line for line in ax.get_lines()}
    centred = next(line for label, line in lines.items() if label.startswith("centred"))
    forward = next(line for label, line in lines.items() if label.startswith("forward"))
    assert centred.get_zorder() > forward.get_zorder()
    assert centred.get_linestyle() != forward.get_linestyle()
    for line in (centred, forward):
        y = np.asarray(line.get_ydata(), dtype=np.float64)
        assert np.isnan(y).any(), "exact zeros are left out"
        assert np.nanmin(y) > 1e-300, "no error is clamped to the smallest float"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any("best" in t for t in legend), legend
    assert any("exactly 0" in t for t in legend), legend
    assert not ax.texts, "no label inside the axes, where it could cross a curve"
    assert plots.best_centred_step(*plots.numerical_error_curve(np.sin, np.cos, 0.0)[:2]) is None

    ax = plots.plot_numerical_error(np.sin, np.cos, 1.0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    hs, central, _ = plots.numerical_error_curve(np.sin, np.cos, 1.0)
    h_best = plots.best_centred_step(hs, central)
    assert h_best == hs[np.argmin(central)] and 1e-7 <= h_best <= 1e-3
    assert f"best centred step ≈ {h_best:.0e}" in legend
    assert not ax.texts

    n = widgets.numerical_error_explorer(np.sin, np.cos, x=0.0)
    assert "exactly 0" in n.status.value and "best centred step" not in n.status.value
    assert "1e-12" not in n.status.value
    n.sliders["x"].value = 1.0
    assert f"best centred step h ≈ <span class='bp-best-h'>{h_best:.0e}</span>" in n.status.value


def test_widget_pictures_have_the_size_of_inline_figures():
    s = widgets.sigmoid_explorer(z=1.0)
    fig = plots.plot_sigmoid(1.0).figure
    fig.set_size_inches(*widgets.SigmoidExplorer.figsize)
    inline = io.BytesIO()
    fig.savefig(inline, format="png", bbox_inches="tight")  # as the inline backend does
    inline_width = _png_size(base64.b64encode(inline.getvalue()))[0]
    assert _png_size(_png(s))[0] == pytest.approx(inline_width, rel=0.05)


def test_explorers_carry_their_first_frame_as_a_static_picture(monkeypatch, digits):
    e = widgets.apple_orange_explorer()
    bundle = e._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == e.widget.model_id
    assert bundle["image/png"] == _png(e)
    d = widgets.TrainingDashboard(*digits)
    assert d._repr_mimebundle_()["image/png"] == d.output.outputs[0]["data"]["image/png"]
    monkeypatch.setenv(widgets.GRADING_ENV, "autograde")
    e.update()
    bundle = e._repr_mimebundle_()
    assert "image/png" not in bundle and "application/vnd.jupyter.widget-view+json" in bundle


def test_dashboard_shows_labelled_axes_before_training(digits):
    d = widgets.TrainingDashboard(*digits)
    assert d.history is None
    assert _png_size(d.output.outputs[0]["data"]["image/png"])[0] > 500
    ax_loss, ax_acc = d.figure.axes
    assert ax_loss.get_xlabel() == "step" and "loss" in ax_loss.get_ylabel()
    assert ax_acc.get_xlabel() == "epoch" and "accuracy" in ax_acc.get_ylabel()
    assert d.lines == {"loss": [], "train_acc": [], "val_acc": []}


def test_history_smoothing_is_centred_loss_is_log_and_accuracy_is_not_zoomed():
    loss = np.linspace(2.0, 0.1, 100)  # 10 epochs of 10 steps; a straight line
    history = {"loss": list(loss), "train_acc": [0.9] * 10, "val_acc": [0.92] * 10}
    ax_loss, ax_acc = plots.plot_history(history)
    (smooth,) = [line for line in ax_loss.get_lines() if line.get_label().startswith("mean")]
    x, y = smooth.get_xdata(), smooth.get_ydata()
    # The mean of a straight line over a window is its value at the window's middle step.
    np.testing.assert_allclose(y, np.interp(x, np.arange(1, 101), loss))
    assert smooth.get_label() == "mean over one epoch (10 steps)"
    assert ax_loss.get_yscale() == "log"
    bottom, top = ax_acc.get_ylim()
    assert bottom == 0 and top >= 100
    assert "train 90.0 %" in ax_acc.get_title() and "validation 92.0 %" in ax_acc.get_title()
    _, ax_acc = plots.plot_history(
        {"loss": [1.0] * 6, "train_acc": [0.5] * 3, "val_acc": [0.5] * 3}
    )
    _drawn(ax_acc)
    ticks = [t for t in ax_acc.get_xticks() if ax_acc.get_xlim()[0] <= t <= ax_acc.get_xlim()[1]]
    assert ticks and all(t == int(t) for t in ticks), ticks  # whole epochs
    ax_loss, _ = plots.plot_history(history, loss_scale="linear")
    assert ax_loss.get_yscale() == "linear"
    ax_loss, _ = plots.plot_history({"loss": [1.0, 0.0, 0.5]})  # no log of 0: linear
    assert ax_loss.get_yscale() == "linear"
    (smooth,) = [line for line in ax_loss.get_lines() if line.get_label().startswith("mean")]
    assert smooth.get_label() == "mean of 1 steps" or smooth.get_label().startswith("mean of")


def test_rel_errors_tell_pass_from_fail_without_colour():
    ax = plots.plot_rel_errors({"W1": 1e-9, "b1": 0.0, "W2": 3e-6}, tol=1e-7)
    assert not ax.patches, "markers, not bars from an arbitrary floor"
    markers = {line.get_label().split()[0]: line.get_marker() for line in ax.get_lines()}
    assert markers["pass"] != markers["FAIL"]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["1.0e-09 pass", "0 pass", "3.0e-06 FAIL"]
    assert ax.get_xlabel() == "parameter"


def test_rel_errors_leave_no_blank_band_when_all_pass_or_all_fail():
    """The legend keeps both kinds of marker; the kind no entry has must not take room in the
    layout (its empty extent sits at the figure's corner: a blank band under the axes)."""
    for errors in ({"W1": 1e-9, "b1": 2e-10}, {"W1": 1e-3, "b1": 0.5}):
        ax = plots.plot_rel_errors(errors, tol=1e-7)
        renderer = _drawn(ax)
        label = ax.xaxis.label.get_window_extent(renderer)
        assert ax.get_tightbbox(renderer).y0 >= label.y0 - 1, errors


def test_gradient_vs_depth_axis_has_labelled_decades():
    for activation in ("relu", "sigmoid"):
        ax = plots.plot_gradient_vs_depth(5, activation=activation)
        lo, hi = ax.get_ylim()
        assert hi / lo >= 100 - 1e-9, (activation, lo, hi)
        _drawn(ax)
        labelled = [t for t in ax.yaxis.get_majorticklabels() if t.get_text()]
        inside = [t for t in labelled if lo <= t.get_position()[1] <= hi]
        assert len(inside) >= 3, [t.get_text() for t in inside]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(
        "$\\times\\,(1/4)^k$" in t and "k = layers back from the output" in t for t in legend
    )


def test_timing_labels_sit_clear_of_the_markers_and_are_explained():
    ax = plots.plot_timings(
        [1, 4, 16, 128], [6e-5, 2.2e-4, 8.5e-4, 6.8e-3], [6.6e-5, 7e-5, 9e-5, 2.5e-4]
    )
    renderer = _drawn(ax)
    markers = np.vstack([line.get_xydata() for line in ax.get_lines() if len(line.get_xdata())])
    pixels = ax.transData.transform(markers)
    radius = 6 / 2 * ax.figure.dpi / 72  # default marker size 6 points
    for text in ax.texts:
        box = text.get_window_extent(renderer).padded(radius)
        assert not any(box.contains(px, py) for px, py in pixels), text.get_text()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "×N = loop time / vectorised time" in legend
    assert ax.get_ylabel() == "seconds per gradient"


def test_decision_boundary_has_a_title_a_class_key_and_a_shape_per_class():
    X, y = spiral(n_per_class=20)
    ax = plots.plot_decision_boundary(
        lambda Z: np.column_stack([Z[:, 0], -Z[:, 0], Z[:, 1]]), X, y, title="three classes"
    )
    assert ax.get_title() == "three classes"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1", "class 2"]
    points = [c for c in ax.collections if c.get_label().startswith("class")]
    shapes = {tuple(map(tuple, c.get_paths()[0].vertices.round(3))) for c in points}
    assert len(shapes) == 3
    colors = [matplotlib.colors.to_hex(c.get_facecolor()[0]) for c in points]
    assert colors == [c.lower() for c in plots.CLASS_COLORS[:3]]
    assert plots.plot_decision_boundary(lambda Z: Z, X[:, :2], y % 2).get_title() == ""


def test_sigmoid_axes_are_labelled():
    ax = plots.plot_sigmoid(1.0)
    assert ax.get_xlabel() == "z" and ax.get_ylabel() == "σ(z) and σ'(z)"


NODE_LABELS = {"apple", "apple_num", "orange", "orange_num", "tax", "price", "×", "+"}


def test_graph_arrows_stop_short_of_labels_and_numbers_sit_on_their_edges():
    for ax in [graphs.draw_apple_orange(), widgets.apple_orange_explorer().figure.axes[0]]:
        renderer = _drawn(ax)
        points = 72 / ax.figure.dpi  # points per pixel
        boxes = {
            t: (t.get_bbox_patch() or t).get_window_extent(renderer)
            for t in ax.texts
            if t.get_text() in NODE_LABELS
        }
        assert len(boxes) == 10
        arrows = [t.arrow_patch for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
        assert len(arrows) == 9
        for arrow in arrows:
            xy = arrow.get_path().transformed(arrow.get_transform()).vertices  # pixels
            for text, box in boxes.items():
                dx = np.maximum(np.maximum(box.x0 - xy[:, 0], xy[:, 0] - box.x1), 0)
                dy = np.maximum(np.maximum(box.y0 - xy[:, 1], xy[:, 1] - box.y1), 0)
                clearance = np.hypot(dx, dy).min() * points
                assert clearance >= 2, f"an arrow touches the label {text.get_text()!r}"
        # The numbers of two edges never stack into one column (as when the two edges into a
        # × node had theirs at the same fraction): numbers on different edges that share a
        # horizontal stretch are at least 20 points apart vertically.
        numbers = [t for t in ax.texts if t not in boxes and t.get_text()]
        assert len(numbers) == 18
        for a, b in itertools.combinations(numbers, 2):
            if a.get_position() == b.get_position():
                continue  # the value and the gradient of one edge
            ea, eb = a.get_window_extent(renderer), b.get_window_extent(renderer)
            if min(ea.x1, eb.x1) > max(ea.x0, eb.x0):
                gap = (max(ea.y0, eb.y0) - min(ea.y1, eb.y1)) * points
                assert gap >= 20, (a.get_text(), b.get_text(), gap)
    title = ax.get_title()
    assert "Blue: value on the edge" in title and "Red: ∂price/∂(that value)" in title
    assert widgets.apple_orange_explorer().sliders["apple"].description == "apple unit price"


def untaxed(apple, apple_num, orange, orange_num, tax):
    """A learner's graph that forgets the tax in the gradients of the four purchases."""
    price = (apple * apple_num + orange * orange_num) * tax
    return price, {
        "apple": apple_num,
        "apple_num": apple,
        "orange": orange_num,
        "orange_num": orange,
        "tax": apple * apple_num + orange * orange_num,
    }


def test_a_learners_wrong_gradients_are_marked_in_the_picture():
    result = graphs.apple_orange_values(graph_fn=untaxed)
    assert result["learner"] == ("price", *graphs.INPUTS)
    assert result["differs"] == ("apple", "apple_num", "orange", "orange_num")
    assert result["reference"]["grads"]["apple"] == pytest.approx(2.2)
    assert result["grads"]["apple"] == 2  # the learner's number is drawn

    e = widgets.apple_orange_explorer(untaxed)
    texts = {t.get_text(): t for t in e.figure.axes[0].texts}
    assert {"2 ≠ 2.2", "100 ≠ 110", "3 ≠ 3.3", "150 ≠ 165", "650"} <= set(texts)
    assert texts["2 ≠ 2.2"].get_bbox_patch() is not None  # framed, not only coloured
    assert texts["650"].get_bbox_patch() is None  # d price / d tax agrees
    assert "your apple_orange_graph" in e.status.value and "library" in e.status.value
    assert "d price / d apple = 2 ≠ 2.2" in e.status.value
    assert "d price / d tax" not in e.status.value
    assert cell(e.table.value, "bp-grad-apple") == "2 ≠ 2.2"
    assert cell(e.table.value, "bp-grad-tax") == "650"
    assert "your function" in e.figure.axes[0].get_title()

    def right(apple, apple_num, orange, orange_num, tax):
        ref = graphs.apple_orange_values(apple, apple_num, orange, orange_num, tax)
        return ref["price"], {k: ref["grads"][k] for k in graphs.INPUTS}

    e = widgets.apple_orange_explorer(right)
    assert e.values["differs"] == () and "all agree with the library" in e.status.value
    assert not any("≠" in t.get_text() for t in e.figure.axes[0].texts)
    plain = widgets.apple_orange_explorer()
    assert plain.values["learner"] == () and "library" in plain.status.value


@pytest.mark.parametrize("lr, batch_size", [(10.0, 32), (3.0, 32), (0.1, 1)])
def test_dashboard_says_when_the_loss_blows_up(digits, lr, batch_size):
    dash = _dashboard(digits)
    dash.sliders["lr"].value = lr
    dash.sliders["batch_size"].value = batch_size
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings stay out of the notebook
        dash.train()
    assert "the loss blew up" in dash.status.value, dash.status.value
    dash.sliders["lr"].value, dash.sliders["batch_size"].value = 0.1, 32
    dash.train()
    assert "blew up" not in dash.status.value, dash.status.value

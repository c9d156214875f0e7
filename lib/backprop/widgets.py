"""Interactive explorers for the notebooks (ipywidgets 8).

Each explorer is an object with
- ``sliders``: dict name -> slider widget (set ``.value`` to move it, also from code);
- ``widget``: the box to display; displaying the explorer itself shows the same box, with its
  first frame as a static PNG beside it in the output for viewers without a kernel;
- the numbers of the latest picture (``values``, ``lines`` ...), so a test can check that moving
  a slider changed what is drawn.

Pictures are matplotlib ``Figure`` objects made without pyplot (so nothing pops up twice in a
notebook), rendered to PNG and put into an ``ipywidgets.Output`` in one assignment: the browser
only ever sees whole frames. Every control carries a stable CSS class (``bp-slider-<name>``,
``bp-plot``, ``bp-status`` ...) for browser tests. Executed headless (nbclient) the explorers
compute and render once and do nothing else; while nbgrader validates or grades a notebook they
compute and draw but make no PNG (nobody sees it, and the PNG is most of their cost).
"""

import base64
import html
import inspect
import io
import os
import time

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from . import data as datasets
from . import plots
from .functions import sigmoid, sigmoid_prime
from .graphs import INPUTS, apple_orange_values, draw_apple_orange, format_value
from .net import TwoLayerNet
from .train import train as reference_train

# Set by nbgrader (and this course's grader) in the kernels that validate or grade a notebook.
GRADING_ENV = "NBGRADER_EXECUTION"


def frame_data(fig, dpi="figure"):
    """The mime bundle of one frame: ``fig`` as a PNG (base64) and its text form; while a
    grader runs the notebook, the text form only. ``dpi="figure"`` keeps the figure's own dpi
    (matplotlib's ``figure.dpi``, which inline figures use too), so a widget's picture has the
    size of the same figure drawn inline."""
    data = {"text/plain": f"<Figure {fig.bbox.width:.0f}x{fig.bbox.height:.0f}>"}
    if os.environ.get(GRADING_ENV):
        return data
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    data["image/png"] = base64.b64encode(buf.getvalue()).decode("ascii")
    return data


def render(fig, output, dpi="figure"):
    """Replace the contents of ``output`` (an ``ipywidgets.Output``) with ``frame_data(fig)``."""
    output.outputs = (
        {"output_type": "display_data", "data": frame_data(fig, dpi), "metadata": {}},
    )


def widget_bundle(widget, output):
    """Mime bundle that shows ``widget`` live, plus the latest frame of ``output`` as a static
    ``image/png`` for viewers without a kernel (GitHub, nbviewer, HTML exports).

    JupyterLab shows the live widget: its renderer has rank -10 against 90 for images, and
    live outputs are trusted. A viewer that cannot draw widgets falls back to the picture.
    """
    bundle = dict(widget._repr_mimebundle_())
    frames = [o["data"]["image/png"] for o in output.outputs if "image/png" in o.get("data", {})]
    if frames:
        bundle["image/png"] = frames[-1]
    return bundle


def _slider(kind, name, **kwargs):
    """A slider of class ``kind`` that reports only when released, with class bp-slider-<name>,
    its range widened to take the ``value`` asked for (see ``_take_value``)."""
    _take_value(kind, name, kwargs)
    kwargs.setdefault("continuous_update", False)
    kwargs.setdefault("style", {"description_width": "initial"})
    slider = kind(**kwargs)
    slider.add_class(f"bp-slider-{name}")
    return slider


def _take_value(kind, name, kwargs):
    """Widen the range ``min``..``max`` in a slider's ``kwargs`` to take its ``value``: a slider
    would move a value outside its range to the nearest end without a word (``lr=30`` would
    train with 10). An integer slider's minimum is the least value that makes sense (one
    epoch, no apples): below it, and for a log slider at or below 0, ``ValueError``."""
    value = kwargs["value"]
    if issubclass(kind, widgets.FloatLogSlider):
        if not value > 0:
            raise ValueError(f"{name} must be above 0 (its slider has a log scale), not {value}")
        exponent = np.log(value) / np.log(kwargs.get("base", 10.0))
        kwargs["min"] = min(kwargs["min"], float(np.floor(exponent)))
        kwargs["max"] = max(kwargs["max"], float(np.ceil(exponent)))
        return
    if issubclass(kind, widgets.IntSlider) and value < kwargs["min"]:
        raise ValueError(f"{name} must be at least {kwargs['min']}, not {value}")
    kwargs["min"], kwargs["max"] = min(kwargs["min"], value), max(kwargs["max"], value)


class Explorer:
    """Base of the explorers: sliders, a picture, an optional text line; redraw on change.

    ``extra``: more widgets shown under the sliders; ``watch``: more controls whose ``value``
    triggers a redraw. Subclasses implement ``compute()`` (store the numbers on ``self``)
    and ``draw(fig)``; ``update()`` runs both and shows the new frame.
    """

    figsize = (6, 4)
    plot_class = "bp-plot"

    def __init__(self, sliders, extra=(), watch=()):
        self.sliders = sliders
        self.output = widgets.Output()
        self.output.add_class(self.plot_class)
        self.status = widgets.HTML()
        self.status.add_class("bp-status")
        self.figure = None
        controls = widgets.VBox(list(sliders.values()) + list(extra))
        self.widget = widgets.VBox([controls, self.output, self.status])
        for control in [*sliders.values(), *watch]:
            control.observe(self._on_change, names="value")
        self.update()

    def _on_change(self, change):
        self.update()

    def settings(self):
        """The current slider values, {name: value}."""
        return {name: s.value for name, s in self.sliders.items()}

    def update(self):
        """Recompute with the current slider values and show one whole new frame."""
        try:
            self.compute()
        except Exception as exc:  # a learner's function may not be written yet
            self.status.value = f"<b>{type(exc).__name__}</b>: {html.escape(str(exc))}"
            self.output.outputs, self.figure, self.values = (), None, None  # no stale picture
            return
        fig = Figure(figsize=self.figsize, layout="constrained")  # as plots' own figures
        self.draw(fig)
        render(fig, self.output)
        self.figure = fig

    def compute(self):
        raise NotImplementedError

    def draw(self, fig):
        raise NotImplementedError

    def _repr_mimebundle_(self, include=None, exclude=None):
        return widget_bundle(self.widget, self.output)


class NumericalErrorExplorer(Explorer):
    """Error of centred and forward differences against h, with a slider for the point x.

    ``values``: ``(hs, central_err, forward_err)`` of the latest frame.
    """

    figsize = (8, 4)

    def __init__(self, f, df, x=1.0, x_range=(-3.0, 3.0)):
        self.f, self.df = f, df
        lo, hi = x_range
        sliders = {
            "x": _slider(
                widgets.FloatSlider, "x", value=x, min=lo, max=hi, step=0.05, description="x"
            )
        }
        super().__init__(sliders)

    def compute(self):
        x = self.sliders["x"].value
        self.values = plots.numerical_error_curve(self.f, self.df, x)
        hs, central, _ = self.values
        h_best = plots.best_centred_step(hs, central)
        if h_best is None:
            zero = hs[central == 0]
            self.status.value = (
                f"centred error exactly 0 at {zero.size} steps (h ≤ {zero.max():.0e}): the "
                "quotient rounds to f'(x) exactly, so no step is marked best"
            )
        else:
            self.status.value = (
                f"best centred step h ≈ <span class='bp-best-h'>{h_best:.0e}</span>, "
                f"error <span class='bp-best-err'>{central.min():.1e}</span>"
            )

    def draw(self, fig):
        plots.plot_numerical_error(self.f, self.df, self.sliders["x"].value, ax=fig.subplots())


def numerical_error_explorer(f, df, x=1.0, **kwargs):
    """Explorer of ``plots.plot_numerical_error`` with a slider ``x``."""
    return NumericalErrorExplorer(f, df, x, **kwargs)


class AppleOrangeExplorer(Explorer):
    """The shopping graph with sliders apple, apple_num, orange, orange_num, tax.

    Shows the drawing and an HTML table whose cells carry classes ``bp-value-<node>``,
    ``bp-grad-<input>`` and ``bp-price``. ``values``: the latest ``apple_orange_values`` result.
    """

    figsize = (9, 4.5)

    def __init__(self, graph_fn=None, apple=100, apple_num=2, orange=150, orange_num=3, tax=1.1):
        self.graph_fn = graph_fn
        self.table = widgets.HTML()
        self.table.add_class("bp-values")
        sliders = {
            "apple": _slider(
                widgets.IntSlider,
                "apple",
                value=apple,
                min=0,
                max=500,
                step=10,
                description="apple unit price",
            ),
            "apple_num": _slider(
                widgets.IntSlider, "apple_num", value=apple_num, min=0, max=10, description="apples"
            ),
            "orange": _slider(
                widgets.IntSlider,
                "orange",
                value=orange,
                min=0,
                max=500,
                step=10,
                description="orange unit price",
            ),
            "orange_num": _slider(
                widgets.IntSlider,
                "orange_num",
                value=orange_num,
                min=0,
                max=10,
                description="oranges",
            ),
            "tax": _slider(
                widgets.FloatSlider,
                "tax",
                value=tax,
                min=1.0,
                max=1.5,
                step=0.01,
                description="tax",
            ),
        }
        super().__init__(sliders, extra=[self.table])

    def compute(self):
        self.values = apple_orange_values(**self.settings(), graph_fn=self.graph_fn)
        self.table.value = self.html_table(self.values)
        self.status.value = self.source_line(self.values)

    @staticmethod
    def source_line(result):
        """Which numbers come from the learner's function, and which of them differ from the
        library's (each with both numbers), as HTML."""
        if not result["learner"]:
            return "every number computed with the library's Mul and Add"
        line = (
            "price and the five input gradients from your apple_orange_graph; "
            "the inner edges from the library's Mul and Add"
        )
        if not result["differs"]:
            return f"{line} · <span class='bp-agree'>all agree with the library</span>"
        yours = {"price": result["price"], **result["grads"]}
        ours = {"price": result["reference"]["price"], **result["reference"]["grads"]}
        wrong = ", ".join(
            f"{'price' if k == 'price' else 'd price / d ' + k} = {format_value(yours[k])} "
            f"≠ {format_value(ours[k])}"
            for k in result["differs"]
        )
        return (
            f"{line} · <span class='bp-differs'>yours ≠ the library's: {html.escape(wrong)}</span>"
        )

    @staticmethod
    def html_table(result):
        """The inputs' values and gradients and the price as an HTML table."""
        v, g = result["values"], result["grads"]
        differs, ref = result.get("differs", ()), result.get("reference", {})

        def cell(css_class, name, number, expected):
            note = f" ≠ {format_value(expected)}" if name in differs else ""
            return f"<td class='{css_class}'>{format_value(number)}{note}</td>"

        rows = "".join(
            f"<tr><td>{name}</td><td class='bp-value-{name}'>{format_value(v[name])}</td>"
            + cell(f"bp-grad-{name}", name, g[name], ref.get("grads", {}).get(name))
            + "</tr>"
            for name in INPUTS
        )
        return (
            TABLE_STYLE
            + "<table class='bp-table'><tr><th>input</th><th>value</th><th>d price / d input</th>"
            f"</tr>{rows}<tr><td><b>price</b></td>"
            + cell("bp-price", "price", result["price"], ref.get("price"))
            + "<td></td></tr></table>"
        )

    def draw(self, fig):
        draw_apple_orange(result=self.values, ax=fig.subplots())


# Widget HTML gets no table styles from JupyterLab: columns would touch.
TABLE_STYLE = (
    "<style>.bp-table th, .bp-table td {padding: 1px 12px; text-align: right}"
    " .bp-table th:first-child, .bp-table td:first-child {text-align: left}</style>"
)


def apple_orange_explorer(graph_fn=None, **kwargs):
    """Explorer of the shopping graph; with ``graph_fn`` the learner's ``apple_orange_graph``."""
    return AppleOrangeExplorer(graph_fn, **kwargs)


class SigmoidExplorer(Explorer):
    """sigma and sigma' with a slider z. ``values``: {"z", "sigmoid", "sigmoid_prime"}."""

    def __init__(self, z=0.0):
        sliders = {
            "z": _slider(
                widgets.FloatSlider, "z", value=z, min=-8, max=8, step=0.1, description="z"
            )
        }
        super().__init__(sliders)

    def compute(self):
        z = float(self.sliders["z"].value)
        self.values = {
            "z": z,
            "sigmoid": float(sigmoid(z)),
            "sigmoid_prime": float(sigmoid_prime(z)),
        }
        self.status.value = (
            f"σ(z) = <span class='bp-sigmoid'>{self.values['sigmoid']:.4f}</span>"
            f", σ'(z) = <span class='bp-sigmoid-prime'>"
            f"{self.values['sigmoid_prime']:.4f}</span> ≤ 1/4"
        )

    def draw(self, fig):
        plots.plot_sigmoid(self.values["z"], ax=fig.subplots())


def sigmoid_explorer(z=0.0):
    """Explorer of ``plots.plot_sigmoid`` with a slider ``z``."""
    return SigmoidExplorer(z)


class DepthExplorer(Explorer):
    """Gradient norm per layer against depth, with a slider depth.

    ``values``: the latest ``plots.gradient_vs_depth`` norms, shape (depth,).
    """

    def __init__(self, depth=5, activation="sigmoid", max_depth=20, **kwargs):
        self.kwargs = kwargs
        self.activation = widgets.ToggleButtons(
            options=["sigmoid", "relu"], value=activation, description="activation"
        )
        self.activation.add_class("bp-activation")
        sliders = {
            "depth": _slider(
                widgets.IntSlider, "depth", value=depth, min=1, max=max_depth, description="layers"
            )
        }
        super().__init__(sliders, extra=[self.activation], watch=[self.activation])

    def compute(self):
        depth = self.sliders["depth"].value
        self.values = plots.gradient_vs_depth(
            depth, activation=self.activation.value, **self.kwargs
        )
        ratio = self.values[0] / self.values[-1]
        self.status.value = (
            f"first layer gets <span class='bp-ratio'>{ratio:.1e}</span> × the gradient of the last"
        )

    def draw(self, fig):
        plots.plot_gradient_vs_depth(
            len(self.values), ax=fig.subplots(), activation=self.activation.value, norms=self.values
        )


def depth_explorer(depth=5, activation="sigmoid", **kwargs):
    """Explorer of ``plots.plot_gradient_vs_depth`` with a slider ``depth``."""
    return DepthExplorer(depth, activation, **kwargs)


def _accepts_callback(train_fn):
    """Whether ``train_fn`` can be called with ``callback=``."""
    try:
        params = inspect.signature(train_fn).parameters
    except (TypeError, ValueError):
        return False
    return "callback" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


class TrainingDashboard:
    """Train a net with sliders for the learning rate, hidden units, batch size and epochs.

    ``X_train`` (N, D), ``y_train`` (N,), ``X_val``, ``y_val`` likewise. ``make_net(hidden)``
    builds the net (default ``TwoLayerNet(D, hidden, C, weight_init_std=0.1)``); ``train_fn``
    has the signature of ``backprop.train.train`` (the default). When it takes ``callback``,
    the loss curve, accuracies, progress bar and status update after every epoch; otherwise
    once at the end.

    ``train()`` runs synchronously (the Train button calls it). A slider moved during a run
    (from a callback, or by a click the kernel handles mid-run) stops the run at the end of the
    epoch and starts again with the new settings. ``history`` is the last run's history,
    ``lines`` the data of the latest frame (copies of ``loss``, ``train_acc``, ``val_acc``;
    empty lists, drawn as labelled empty axes, until the first run).
    """

    max_restarts = 10

    def __init__(
        self,
        X_train,
        y_train,
        X_val,
        y_val,
        make_net=None,
        train_fn=None,
        lr=0.1,
        hidden=64,
        batch_size=32,
        epochs=10,
        seed=0,
        frame_interval=0.25,
    ):
        self.frame_interval = frame_interval
        self.X_train, self.y_train, self.X_val, self.y_val = X_train, y_train, X_val, y_val
        n_in = int(np.prod(np.shape(X_train)[1:]))
        n_classes = int(max(np.max(y_train), np.max(y_val))) + 1
        self.make_net = make_net or (
            lambda hidden: TwoLayerNet(n_in, hidden, n_classes, weight_init_std=0.1, seed=seed)
        )
        self.train_fn = train_fn or reference_train
        self.seed = seed
        self.sliders = {
            "lr": _slider(
                widgets.FloatLogSlider,
                "lr",
                value=lr,
                base=10,
                min=-4,
                max=1,
                step=0.1,
                description="learning rate",
                readout_format=".4g",
            ),
            "hidden": _slider(
                widgets.IntSlider,
                "hidden",
                value=hidden,
                min=2,
                max=256,
                description="hidden units",
            ),
            "batch_size": _slider(
                widgets.IntSlider,
                "batch_size",
                value=batch_size,
                min=1,
                max=512,
                description="batch size",
            ),
            "epochs": _slider(
                widgets.IntSlider, "epochs", value=epochs, min=1, max=100, description="epochs"
            ),
        }
        self.button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.button.add_class("bp-train")
        self.progress = widgets.IntProgress(value=0, min=0, max=epochs, description="epoch")
        self.progress.add_class("bp-progress")
        self.status = widgets.HTML("press Train")
        self.status.add_class("bp-status")
        self.output = widgets.Output()
        self.output.add_class("bp-loss-plot")
        self.widget = widgets.VBox(
            [
                widgets.HBox([widgets.VBox(list(self.sliders.values())), self.button]),
                widgets.HBox([self.progress, self.status]),
                self.output,
            ]
        )
        self.history = None
        self.lines = None
        self.figure = None
        self.restarts = 0
        self._running = False
        self._restart = False
        self._draw({"loss": [], "train_acc": [], "val_acc": []})  # labelled, empty axes
        self.button.on_click(lambda _: self.train())
        for slider in self.sliders.values():
            slider.observe(self._on_setting, names="value")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return widget_bundle(self.widget, self.output)

    def settings(self):
        """The current slider values, {name: value}."""
        return {name: s.value for name, s in self.sliders.items()}

    def _on_setting(self, change):
        if self._running:
            self._restart = True
            self.status.value = "settings changed: restarting after this epoch"
        elif self.history is not None:
            self.status.value = f"{self._result} · settings changed: press Train to run again"

    def _show(self, history, epochs, final=True):
        """Update the progress bar and status line, and draw one whole frame of ``history``.

        Mid-run (``final=False``) the picture is redrawn at most every ``frame_interval``
        seconds, so drawing never takes longer than training; the last frame is always drawn.
        """
        lines = {k: list(history.get(k, [])) for k in ("loss", "train_acc", "val_acc")}
        if final or time.perf_counter() - self._last_frame >= self.frame_interval:
            self._draw(lines)
        done = len(lines["val_acc"])
        self.progress.max = max(epochs, done, 1)
        self.progress.value = done
        steps = len(lines["loss"]) // max(done, 1)
        loss = np.mean(lines["loss"][-steps:]) if lines["loss"] else float("nan")
        val = 100 * lines["val_acc"][-1] if lines["val_acc"] else float("nan")
        self._result = f"epoch {done}/{epochs} · loss {loss:.3f} · val acc {val:.1f} %"
        if lines["loss"] and not loss <= lines["loss"][0]:  # grew, or became inf or nan
            self._result += " · the loss blew up: try a smaller learning rate"
        self.status.value = self._result

    def _draw(self, lines):
        """Draw ``lines`` (lists ``loss``, ``train_acc``, ``val_acc``) as one whole frame."""
        fig = Figure(figsize=(10, 3.5), layout="constrained")
        axes = plots.plot_history(lines, axes=fig.subplots(1, 2))
        if not lines["loss"]:
            for ax in axes:
                ax.text(0.5, 0.5, "press Train", transform=ax.transAxes, ha="center", color="0.5")
        render(fig, self.output)
        self.figure, self.lines = fig, lines
        self._last_frame = time.perf_counter()

    def _run_once(self):
        s = self.settings()
        net = self.make_net(s["hidden"])
        self.progress.max, self.progress.value = s["epochs"], 0
        self.status.value = f"epoch 0/{s['epochs']} · training ..."
        self._last_frame = time.perf_counter()
        kwargs = dict(epochs=s["epochs"], lr=s["lr"], batch_size=s["batch_size"], seed=self.seed)

        def callback(history, epoch):
            self._show(history, s["epochs"], final=False)
            return self._restart

        if _accepts_callback(self.train_fn):
            kwargs["callback"] = callback
        # A learning rate too large overflows: the status line says so, numpy need not warn.
        with np.errstate(over="ignore", invalid="ignore"):
            history = self.train_fn(
                net, self.X_train, self.y_train, self.X_val, self.y_val, **kwargs
            )
        self.net = net
        return history, s

    def train(self):
        """Train with the current settings (again if they change mid-run); returns the history."""
        if self._running:  # a second click while training: the current run goes on
            return self.history
        self._running, self.restarts = True, 0
        self.button.disabled = True
        try:
            while True:
                self._restart = False
                history, s = self._run_once()
                if not self._restart or self.restarts >= self.max_restarts:
                    break
                self.restarts += 1
            self.history = history
            self._show(history, s["epochs"])
        except Exception as exc:
            self.status.value = f"<b>{type(exc).__name__}</b>: {html.escape(str(exc))}"
            raise
        finally:
            self._running = False
            self.button.disabled = False
        return self.history


class DecisionBoundaryExplorer(Explorer):
    """A small TwoLayerNet trained on a 2-D toy set, with sliders for hidden units, epochs and
    the learning rate; shows the decision boundary. ``net``, ``history`` and ``values`` (the
    predicted class of every training point, (N,)) belong to the latest frame."""

    figsize = (5.8, 5)

    def __init__(self, dataset="spiral", hidden=32, epochs=100, lr=1.0, batch_size=32, seed=0):
        make = getattr(datasets, dataset)
        self.X, self.y = make(seed=seed)
        self.X_val, self.y_val = make(seed=seed + 1)
        self.batch_size, self.seed = batch_size, seed
        self.progress = widgets.IntProgress(value=0, min=0, max=epochs, description="epoch")
        self.progress.add_class("bp-progress")
        sliders = {
            "hidden": _slider(
                widgets.IntSlider,
                "hidden",
                value=hidden,
                min=2,
                max=128,
                description="hidden units",
            ),
            "epochs": _slider(
                widgets.IntSlider, "epochs", value=epochs, min=1, max=500, description="epochs"
            ),
            "lr": _slider(
                widgets.FloatLogSlider,
                "lr",
                value=lr,
                base=10,
                min=-3,
                max=1,
                step=0.1,
                description="learning rate",
                readout_format=".3g",
            ),
        }
        super().__init__(sliders, extra=[self.progress])

    def compute(self):
        s = self.settings()
        n_classes = int(self.y.max()) + 1
        self.net = TwoLayerNet(2, s["hidden"], n_classes, weight_init_std=1.0, seed=self.seed)
        self.progress.max, self.progress.value = s["epochs"], 0

        def callback(history, epoch):
            self.progress.value = epoch + 1

        self.history = reference_train(
            self.net,
            self.X,
            self.y,
            self.X_val,
            self.y_val,
            epochs=s["epochs"],
            lr=s["lr"],
            batch_size=self.batch_size,
            seed=self.seed,
            callback=callback,
        )
        self.values = self.net.predict(self.X).argmax(axis=1)
        self.status.value = (
            f"train acc {100 * self.history['train_acc'][-1]:.1f} % · "
            f"val acc {100 * self.history['val_acc'][-1]:.1f} %"
        )

    def draw(self, fig):
        s = self.settings()
        plots.plot_decision_boundary(
            self.net.predict,
            self.X,
            self.y,
            ax=fig.subplots(),
            title=f"{s['hidden']} hidden units, {s['epochs']} epochs",
        )


def decision_boundary_explorer(dataset="spiral", **kwargs):
    """Explorer of the decision boundary of a TwoLayerNet on ``backprop.data.<dataset>``."""
    return DecisionBoundaryExplorer(dataset, **kwargs)

"""Static pictures for the notebooks, drawn with matplotlib.

Every ``plot_*`` function takes ``ax=None`` (or ``axes=None``), draws on the given Axes or on a
new figure, and returns what it drew on. None of them calls ``plt.show()``: in a notebook the
figure appears at the end of the cell, and the widgets pass in Axes of their own figures.
The numbers behind a picture come from a separate function (``numerical_error_curve``,
``gradient_vs_depth``) so tests and learners can check them without drawing.
"""

import numpy as np
from matplotlib.ticker import MaxNLocator

from .functions import sigmoid, sigmoid_prime
from .net import Sequential

FORWARD_COLOR = "tab:blue"
GRADIENT_COLOR = "tab:red"


def _axes(ax, figsize=(6, 4)):
    """``ax`` itself, or the Axes of a new pyplot figure."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, layout="constrained")[1]


# ---------------------------------------------------------------------------------------------
# Numerical derivatives: truncation against rounding error
# ---------------------------------------------------------------------------------------------


def numerical_error_curve(f, df, x, hs=None):
    """Absolute error of finite differences of scalar ``f`` at scalar ``x`` against ``df(x)``.

    ``hs``: step sizes (K,), by default 45 values log spaced from 1e-12 to 1e-1.
    Returns ``(hs, central_err, forward_err)``, three arrays of shape (K,):
    centred ``(f(x+h) - f(x-h)) / 2h`` (error O(h^2) until rounding takes over) and
    forward ``(f(x+h) - f(x)) / h`` (error O(h)).
    """
    hs = np.logspace(-12, -1, 45) if hs is None else np.asarray(hs, dtype=np.float64)
    x = float(x)
    exact = float(df(x))
    central = np.array([(f(x + h) - f(x - h)) / (2 * h) for h in hs], dtype=np.float64)
    forward = np.array([(f(x + h) - f(x)) / h for h in hs], dtype=np.float64)
    return hs, np.abs(central - exact), np.abs(forward - exact)


def best_centred_step(hs, central_err):
    """The step of ``hs`` (K,) with the smallest centred error ``central_err`` (K,), or None
    when that error is exactly 0 somewhere: the quotient then rounds to f'(x) exactly, and
    which of those steps is "best" is luck, not a balance of truncation and rounding."""
    central_err = np.asarray(central_err, dtype=np.float64)
    if not central_err.size or central_err.min() == 0:
        return None
    return float(np.asarray(hs)[np.argmin(central_err)])


def plot_numerical_error(f, df, x, ax=None, hs=None):
    """Log-log plot of ``numerical_error_curve`` with O(h) and O(h^2) guide lines.

    The centred curve is drawn dashed on top of the forward one, so both show where they
    coincide (sin at 0). Errors that are exactly 0 cannot sit on a log axis and are left out
    (the legend says for which h). A dash-dotted vertical line marks the best centred step
    (``best_centred_step``); to its left rounding error (about eps / h) dominates. Returns the Axes.
    """
    ax = _axes(ax, figsize=(8, 4))
    hs, central, forward = numerical_error_curve(f, df, x, hs)

    def shown(err):  # exact hits (error 0) cannot be shown on a log axis: leave them out
        return np.where(err > 0, err, np.nan)

    ax.loglog(
        hs,
        shown(forward),
        "s-",
        ms=4,
        lw=1.5,
        color="tab:orange",
        label="forward  (f(x+h) - f(x)) / h",
    )
    ax.loglog(
        hs,
        shown(central),
        "o--",
        ms=3,
        lw=1.5,
        color="tab:blue",
        zorder=3,
        label="centred  (f(x+h) - f(x-h)) / 2h",
    )
    # Guide lines through the error at the largest step, where truncation dominates.
    h_max = hs[-1]
    for err, power, style, name in [(forward, 1, "k--", "$O(h)$"), (central, 2, "k:", "$O(h^2)$")]:
        if err[-1] > 0:
            ax.loglog(hs, err[-1] * (hs / h_max) ** power, style, lw=1, label=name)
    ax.loglog(hs, np.finfo(np.float64).eps / hs, color="0.6", lw=1, label="rounding  eps / h")
    exact = hs[(central == 0) | (forward == 0)]
    if exact.size:
        ax.plot([], [], " ", label=f"error exactly 0 (not drawn)\nfor some h ≤ {exact.max():.0e}")
    h_best = best_centred_step(hs, central)
    if h_best is not None:
        ax.axvline(
            h_best, color="tab:green", ls="-.", lw=1, label=f"best centred step ≈ {h_best:.0e}"
        )
    finite = np.concatenate([central[central > 0], forward[forward > 0]])
    if finite.size:
        ax.set_ylim(finite.min() / 10, max(finite.max(), 1e-16) * 10)
    ax.set_xlabel("step h")
    ax.set_ylabel("absolute error")
    ax.set_title(f"Error of the numerical derivative at x = {float(x):.3g}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


# ---------------------------------------------------------------------------------------------
# The sigmoid and vanishing gradients
# ---------------------------------------------------------------------------------------------


def plot_sigmoid(z=None, ax=None):
    """sigma(z) and sigma'(z) = sigma(z)(1 - sigma(z)) on [-8, 8], the 1/4 maximum of sigma'
    marked, and, when ``z`` is given, a marker at z with both values. Returns the Axes."""
    ax = _axes(ax)
    zs = np.linspace(-8, 8, 401)
    ax.plot(zs, sigmoid(zs), color=FORWARD_COLOR, label="σ(z)")
    ax.plot(zs, sigmoid_prime(zs), color=GRADIENT_COLOR, label="σ'(z) = σ(z)(1 - σ(z))")
    ax.axhline(0.25, color=GRADIENT_COLOR, ls=":", lw=1)
    ax.annotate("max σ' = 1/4 at z = 0", xy=(-7.8, 0.26), color=GRADIENT_COLOR, fontsize=8)
    if z is not None:
        z = float(z)
        s, ds = float(sigmoid(z)), float(sigmoid_prime(z))
        ax.plot([z], [s], "o", color=FORWARD_COLOR)
        ax.plot([z], [ds], "o", color=GRADIENT_COLOR)
        ax.axvline(z, color="0.7", lw=1)
        ax.set_title(f"z = {z:.2f}:  σ(z) = {s:.4f},  σ'(z) = {ds:.4f}")
    ax.set_xlim(-8, 8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("z")
    ax.set_ylabel("σ(z) and σ'(z)")
    ax.legend(loc="center right", fontsize=8)
    return ax


def gradient_vs_depth(depth, activation="sigmoid", width=32, seed=0, batch_size=64, n_classes=10):
    """Gradient norms per layer of a random ``depth``-layer MLP on one random batch.

    The net is ``Sequential.mlp([width] * depth + [n_classes], activation)``: ``depth`` Affine
    layers with the activation between them and softmax cross-entropy at the end; inputs are
    standard normal, (batch_size, width), labels random. Returns ``norms`` of shape (depth,):
    ``norms[k - 1]`` is the Frobenius norm of dL/dW_k, layer 1 nearest the input.
    With sigmoid every layer back from the output multiplies the error by sigma' <= 1/4.
    """
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    rng = np.random.default_rng(seed)
    net = Sequential.mlp([width] * depth + [n_classes], activation=activation, seed=seed)
    X = rng.standard_normal((batch_size, width))
    t = rng.integers(0, n_classes, size=batch_size)
    grads = net.gradient(X, t)
    return np.array([np.linalg.norm(grads[f"W{k}"]) for k in range(1, depth + 1)])


def _span_decades(ax, values, decades=2):
    """Set the log y-limits of ``ax`` to whole decades around ``values`` (positive), at least
    ``decades`` of them, so that at least ``decades + 1`` ticks carry a label."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return
    lo, hi = np.floor(np.log10(values.min())), np.ceil(np.log10(values.max()))
    if hi - lo < decades:
        lo = hi - decades
    ax.set_ylim(10.0**lo, 10.0**hi)


def plot_gradient_vs_depth(depth, ax=None, activation="sigmoid", norms=None, **kwargs):
    """Bars of ``gradient_vs_depth`` on a log y-axis of whole decades (at least two), with the
    (1/4)^k decay of sigmoid (k = layers back from the output) drawn from the last layer.
    ``norms`` (depth,): numbers already computed by ``gradient_vs_depth``; ``kwargs`` go to it.
    Returns the Axes."""
    ax = _axes(ax)
    if norms is None:
        norms = gradient_vs_depth(depth, activation=activation, **kwargs)
    layers = np.arange(1, len(norms) + 1)
    ax.bar(layers, norms, color=GRADIENT_COLOR, alpha=0.8, label=f"‖dL/dW‖ ({activation})")
    shown = [norms]
    if activation == "sigmoid" and len(norms) > 1:
        bound = norms[-1] * 0.25 ** (len(norms) - layers)
        ax.plot(
            layers,
            bound,
            "k--o",
            ms=3,
            lw=1,
            label="last layer $\\times\\,(1/4)^k$,\nk = layers back from the output",
        )
        shown.append(bound)
    ax.set_yscale("log")
    _span_decades(ax, np.concatenate(shown))
    ax.set_xlabel("layer (1 = nearest the input)")
    ax.set_ylabel("gradient norm")
    ax.set_xticks(layers if len(layers) <= 20 else layers[:: max(1, len(layers) // 10)])
    ax.set_title(f"Gradient size in a {activation} net of {len(norms)} layers")
    ax.legend(fontsize=8, loc="upper left")
    return ax


# ---------------------------------------------------------------------------------------------
# Training, gradient checks, timings, decision boundaries
# ---------------------------------------------------------------------------------------------


def moving_average(values, window):
    """Means of every ``window`` consecutive entries of ``values`` (K,): shape (K - window + 1,).
    Entry i is the mean of ``values[i : i + window]``."""
    values = np.asarray(values, dtype=np.float64)
    window = max(1, min(int(window), len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_history(history, axes=None, loss_scale="log", acc_bottom=0.0):
    """Loss per step on the first Axes, train and validation accuracy per epoch on the second.

    ``history``: dict with lists ``loss`` (per step), ``train_acc`` and ``val_acc`` (per epoch),
    as returned by ``backprop.train.train``. Returns the two Axes.

    The raw loss is drawn faint, with its moving average over one epoch's steps (a tenth of the
    run when there are no epochs) drawn at the middle step of each window, so it does not lag.
    ``loss_scale`` is ``"log"`` by default: the loss falls by orders of magnitude and a linear
    axis flattens everything after the first epoch; ``"linear"`` is the other choice (and is
    used whenever a loss is not positive). The accuracy axis runs from ``acc_bottom`` (%) to
    100 %, 0 by default, and never zooms in on the data, so a gap's height is its true share
    of the samples; pass ``100 / n_classes`` to start at chance level instead.
    """
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    ax_loss, ax_acc = axes
    loss = np.asarray(history.get("loss", []), dtype=np.float64)
    train_acc = np.asarray(history.get("train_acc", []), dtype=np.float64)
    val_acc = np.asarray(history.get("val_acc", []), dtype=np.float64)
    steps = np.arange(1, len(loss) + 1)
    if len(loss):
        ax_loss.plot(steps, loss, color=FORWARD_COLOR, alpha=0.25, lw=0.8, label="per step")
        per_epoch = len(loss) // len(train_acc) if len(train_acc) else 0
        window = max(1, min(per_epoch or len(loss) // 10, len(loss)))
        smooth = moving_average(loss, window)
        middle = np.arange(len(smooth)) + (window + 1) / 2  # middle step of each window
        label = f"mean of {window} steps"
        if window == per_epoch:
            label = f"mean over one epoch ({window} steps)"
        ax_loss.plot(middle, smooth, color=FORWARD_COLOR, lw=2, label=label)
        ax_loss.legend(fontsize=8)
    if loss_scale == "log" and np.all(loss[~np.isnan(loss)] > 0):
        ax_loss.set_yscale("log")
        _span_decades(ax_loss, loss)
        ax_loss.set_ylabel("training loss (log scale)")
    else:
        ax_loss.set_ylabel("training loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("Loss")
    if len(train_acc):
        ax_acc.plot(np.arange(1, len(train_acc) + 1), 100 * train_acc, "o-", ms=3, label="train")
    if len(val_acc):
        ax_acc.plot(np.arange(1, len(val_acc) + 1), 100 * val_acc, "s-", ms=3, label="validation")
        final = f"validation {100 * val_acc[-1]:.1f} %"
        if len(train_acc):
            final = f"train {100 * train_acc[-1]:.1f} %, {final}"
        ax_acc.set_title(f"Accuracy ({final})")
        ax_acc.legend(fontsize=8, loc="lower right")
    else:
        ax_acc.set_title("Accuracy")
    ax_acc.set_ylim(acc_bottom, 102)  # a little room above, so 100 % is not on the frame
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.25
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    return axes


PASS_STYLE = dict(marker="o", color="tab:green", text="pass")
FAIL_STYLE = dict(marker="X", color="tab:red", text="FAIL")


def plot_rel_errors(errors, tol=1e-7, ax=None):
    """One stem per entry of ``errors`` = {parameter name: relative error} on a log y-axis,
    with the tolerance ``tol`` as a dashed line. An error at or below ``tol`` passes: a green
    circle labelled "pass"; above, it fails: a red cross labelled "FAIL" (the shape and the
    word tell them apart without colour). An exact 0 cannot sit on a log axis: its marker
    rests on the bottom edge, labelled "0". Returns the Axes."""
    ax = _axes(ax)
    names = list(errors)
    values = np.array([float(errors[k]) for k in names], dtype=np.float64)
    positions = np.arange(len(names))
    positive = values[values > 0]
    bottom = 10.0 ** np.floor(np.log10(min(positive.min() if positive.size else tol, tol) / 10))
    top = 10.0 ** np.ceil(np.log10(max(positive.max() if positive.size else tol, tol) * 10))
    shown = np.maximum(values, bottom)
    ax.vlines(positions, bottom, shown, color="0.6", lw=1, zorder=1)
    for style, passed in [(PASS_STYLE, values <= tol), (FAIL_STYLE, ~(values <= tol))]:
        (markers,) = ax.plot(
            positions[passed],
            shown[passed],
            ls="none",
            marker=style["marker"],
            ms=9,
            color=style["color"],
            label=f"{style['text']} ({'≤' if style is PASS_STYLE else '>'} tolerance)",
            zorder=3,
            clip_on=False,
        )
        # Without points it is only there for the legend: left out of the layout, where its
        # empty extent would sit at the figure's corner and leave a blank band under the axes.
        markers.set_in_layout(bool(passed.any()))
    for x, value, y in zip(positions, values, shown, strict=True):
        word = PASS_STYLE["text"] if value <= tol else FAIL_STYLE["text"]
        ax.annotate(
            f"{value:.1e} {word}" if value > 0 else f"0 {word}",
            xy=(x, y),
            xytext=(9, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
            fontweight="normal" if value <= tol else "bold",
        )
    ax.axhline(tol, color="k", ls="--", lw=1, label=f"tolerance {tol:g}")
    ax.set_yscale("log")
    ax.set_ylim(bottom, top)
    ax.set_xticks(positions, names)
    ax.set_xlim(-0.5, len(names) - 0.5 + 0.6)  # room for the last label
    ax.set_xlabel("parameter")
    ax.set_ylabel("relative error")
    ax.set_title("Gradient check: analytic against numerical")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_timings(batch_sizes, loop_seconds, vectorised_seconds, ax=None):
    """Log-log plot of the seconds one gradient takes against batch size, for the per-sample
    loop and the vectorised version. Each batch size is labelled ×N, N = loop time / vectorised
    time, under the lower of its two markers (the legend says so).

    ``batch_sizes``, ``loop_seconds``, ``vectorised_seconds``: (K,). Returns the Axes.
    """
    ax = _axes(ax)
    n = np.asarray(batch_sizes, dtype=np.float64)
    loop = np.asarray(loop_seconds, dtype=np.float64)
    vec = np.asarray(vectorised_seconds, dtype=np.float64)
    speedup = loop / vec
    ax.loglog(n, loop, "o-", label="per-sample loop")
    ax.loglog(n, vec, "s-", label="vectorised")
    ax.plot([], [], " ", label="×N = loop time / vectorised time")
    for x, y, s in zip(n, np.minimum(loop, vec), speedup, strict=True):
        ax.annotate(
            f"×{s:.0f}" if s >= 10 else f"×{s:.1f}",
            xy=(x, y),
            xytext=(0, -7),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
        )
    lo, hi = min(loop.min(), vec.min()), max(loop.max(), vec.max())
    ax.set_ylim(lo / 2.5, hi * 1.5)  # room for the labels under the lowest markers
    ax.set_xlabel("batch size")
    ax.set_ylabel("seconds per gradient")
    ax.set_title(f"Vectorised is up to {speedup.max():.0f}× faster")
    ax.legend(fontsize=8, loc="upper left")
    return ax


# Okabe & Ito's palette, told apart with every common colour-vision deficiency.
CLASS_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
CLASS_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def plot_decision_boundary(
    predict, X, y, ax=None, resolution=200, margin=0.25, title=None, class_names=None
):
    """Filled contour of the predicted class over a grid around the 2-D points ``X`` (N, 2),
    with the points of each label in ``y`` (N,) drawn in their own colour and marker shape
    (``CLASS_COLORS``, colour-blind safe, and ``CLASS_MARKERS``, cycled beyond seven classes)
    and a legend of the classes (``class_names``, by default "class 0", "class 1", ...).
    ``predict(X) -> scores (N, C)``; ``title``: optional. Returns the Axes."""
    from matplotlib.colors import ListedColormap

    ax = _axes(ax, figsize=(5.8, 5))
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = margin * (hi - lo)
    g0, g1 = np.meshgrid(
        np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution),
        np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution),
    )
    grid = np.column_stack([g0.ravel(), g1.ravel()])
    labels = np.asarray(predict(grid)).argmax(axis=1).reshape(g0.shape)
    n_classes = int(max(labels.max(), y.max())) + 1
    colors = [CLASS_COLORS[k % len(CLASS_COLORS)] for k in range(n_classes)]
    levels = np.arange(n_classes + 1) - 0.5
    ax.contourf(g0, g1, labels, levels=levels, cmap=ListedColormap(colors), alpha=0.25)
    for k in range(n_classes):
        mine = y == k
        if not mine.any():
            continue
        ax.scatter(
            X[mine, 0],
            X[mine, 1],
            color=colors[k],
            marker=CLASS_MARKERS[k % len(CLASS_MARKERS)],
            s=16,
            edgecolors="k",
            linewidths=0.3,
            label=class_names[k] if class_names is not None else f"class {k}",
        )
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_aspect("equal", adjustable="box")
    if title is not None:
        ax.set_title(title)
    ax.legend(
        fontsize=8, title="class", title_fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0)
    )
    return ax

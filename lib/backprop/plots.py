"""Static pictures for the notebooks, drawn with matplotlib.

Every ``plot_*`` function takes ``ax=None`` (or ``axes=None``), draws on the given Axes or on a
new figure, and returns what it drew on. None of them calls ``plt.show()``: in a notebook the
figure appears at the end of the cell, and the widgets pass in Axes of their own figures.
The numbers behind a picture come from a separate function (``numerical_error_curve``,
``gradient_vs_depth``) so tests and learners can check them without drawing.
"""

import numpy as np

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


def plot_numerical_error(f, df, x, ax=None, hs=None):
    """Log-log plot of ``numerical_error_curve`` with O(h) and O(h^2) guide lines.

    A dotted vertical line marks the step with the smallest centred error: to its left,
    rounding error (about eps / h) dominates. Returns the Axes.
    """
    ax = _axes(ax, figsize=(8, 4))
    hs, central, forward = numerical_error_curve(f, df, x, hs)
    tiny = np.finfo(np.float64).tiny  # exact hits (error 0) cannot be shown on a log axis
    ax.loglog(hs, np.maximum(central, tiny), "o-", ms=3, label="centred  (f(x+h) - f(x-h)) / 2h")
    ax.loglog(hs, np.maximum(forward, tiny), "s-", ms=3, label="forward  (f(x+h) - f(x)) / h")
    # Guide lines through the error at the largest step, where truncation dominates.
    h_max = hs[-1]
    for err, power, style in [(forward, 1, "k--"), (central, 2, "k:")]:
        if err[-1] > 0:
            ax.loglog(hs, err[-1] * (hs / h_max) ** power, style, lw=1, label=f"O(h^{power})")
    ax.loglog(hs, np.finfo(np.float64).eps / hs, color="0.6", lw=1, label="rounding  eps / h")
    h_best = hs[np.argmin(central)]
    ax.axvline(h_best, color="tab:green", ls="-.", lw=1)
    ax.annotate(
        f"rounding takes over\nbelow h ≈ {h_best:.0e}",
        xy=(h_best, 0.5),
        xycoords=("data", "axes fraction"),
        xytext=(6, 0),
        textcoords="offset points",
        color="tab:green",
        fontsize=8,
    )
    finite = np.concatenate([central[central > 0], forward[forward > 0]])
    if finite.size:
        ax.set_ylim(finite.min() / 10, max(finite.max(), 1e-16) * 10)
    ax.set_xlabel("step h")
    ax.set_ylabel("absolute error")
    ax.set_title(f"Error of the numerical derivative at x = {float(x):.3g}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
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


def plot_gradient_vs_depth(depth, ax=None, activation="sigmoid", norms=None, **kwargs):
    """Bars of ``gradient_vs_depth`` on a log y-axis, with the (1/4)^k decay of sigmoid
    (k = layers back from the output) drawn from the last layer. ``norms`` (depth,): numbers
    already computed by ``gradient_vs_depth``; ``kwargs`` go to it. Returns the Axes."""
    ax = _axes(ax)
    if norms is None:
        norms = gradient_vs_depth(depth, activation=activation, **kwargs)
    layers = np.arange(1, len(norms) + 1)
    ax.bar(layers, norms, color=GRADIENT_COLOR, alpha=0.8, label=f"‖dL/dW‖ ({activation})")
    if activation == "sigmoid" and len(norms) > 1:
        bound = norms[-1] * 0.25 ** (len(norms) - layers)
        ax.plot(layers, bound, "k--o", ms=3, lw=1, label="last layer × (1/4)^k")
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = nearest the input)")
    ax.set_ylabel("gradient norm")
    ax.set_xticks(layers if len(layers) <= 20 else layers[:: max(1, len(layers) // 10)])
    ax.set_title(f"Gradient size through {len(norms)} {activation} layers")
    ax.legend(fontsize=8)
    return ax


# ---------------------------------------------------------------------------------------------
# Training, gradient checks, timings, decision boundaries
# ---------------------------------------------------------------------------------------------


def moving_average(values, window):
    """Means of every ``window`` consecutive entries of ``values`` (K,): shape (K - window + 1,)."""
    values = np.asarray(values, dtype=np.float64)
    window = max(1, min(int(window), len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_history(history, axes=None):
    """Loss per step (raw and faint, plus a moving average over about one epoch) on the first
    Axes, train and validation accuracy per epoch on the second.

    ``history``: dict with lists ``loss`` (per step), ``train_acc`` and ``val_acc`` (per epoch),
    as returned by ``backprop.train.train``. Returns the two Axes.
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
        window = len(loss) // len(train_acc) if len(train_acc) else max(1, len(loss) // 10)
        smooth = moving_average(loss, window)
        ax_loss.plot(
            steps[len(loss) - len(smooth) :],
            smooth,
            color=FORWARD_COLOR,
            lw=2,
            label=f"mean of {max(1, min(window, len(loss)))} steps",
        )
        ax_loss.legend(fontsize=8)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("Loss")
    epochs = np.arange(1, len(val_acc) + 1)
    if len(train_acc):
        ax_acc.plot(np.arange(1, len(train_acc) + 1), 100 * train_acc, "o-", ms=3, label="train")
    if len(val_acc):
        ax_acc.plot(epochs, 100 * val_acc, "s-", ms=3, label="validation")
        ax_acc.set_title(f"Accuracy (validation {100 * val_acc[-1]:.1f} %)")
        ax_acc.legend(fontsize=8, loc="lower right")
    else:
        ax_acc.set_title("Accuracy")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    return axes


def plot_rel_errors(errors, tol=1e-7, ax=None):
    """Bar chart on a log y-axis of ``errors`` = {parameter name: relative error}, green when
    below ``tol`` and red above, with the tolerance as a dashed line. Returns the Axes."""
    ax = _axes(ax)
    names = list(errors)
    values = np.array([float(errors[k]) for k in names], dtype=np.float64)
    positive = values[values > 0]
    floor = min(positive.min() if positive.size else tol, tol) / 100
    shown = np.maximum(values, floor)  # an exact match (0) still gets a visible bar
    colors = ["tab:green" if v <= tol else "tab:red" for v in values]
    bars = ax.bar(names, shown, color=colors)
    ax.bar_label(bars, labels=[f"{v:.1e}" if v > 0 else "0" for v in values], fontsize=8)
    ax.axhline(tol, color="k", ls="--", lw=1, label=f"tolerance {tol:g}")
    ax.set_yscale("log")
    ax.set_ylabel("relative error")
    ax.set_title("Gradient check: analytic against numerical")
    ax.legend(fontsize=8)
    return ax


def plot_timings(batch_sizes, loop_seconds, vectorised_seconds, ax=None):
    """Log-log plot of seconds per step against batch size for the per-sample loop and the
    vectorised version, each point labelled with the speed-up loop / vectorised.

    ``batch_sizes``, ``loop_seconds``, ``vectorised_seconds``: (K,). Returns the Axes.
    """
    ax = _axes(ax)
    n = np.asarray(batch_sizes, dtype=np.float64)
    loop = np.asarray(loop_seconds, dtype=np.float64)
    vec = np.asarray(vectorised_seconds, dtype=np.float64)
    speedup = loop / vec
    ax.loglog(n, loop, "o-", label="per-sample loop")
    ax.loglog(n, vec, "s-", label="vectorised")
    for x, y, s in zip(n, vec, speedup, strict=True):
        ax.annotate(
            f"×{s:.0f}" if s >= 10 else f"×{s:.1f}",
            xy=(x, y),
            xytext=(0, -12),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    ax.set_xlabel("batch size")
    ax.set_ylabel("seconds per step")
    ax.set_title(f"Vectorised is up to {speedup.max():.0f}× faster")
    ax.legend(fontsize=8)
    return ax


def plot_decision_boundary(predict, X, y, ax=None, resolution=200, margin=0.25):
    """Filled contour of the predicted class over a grid around the 2-D points ``X`` (N, 2),
    with the points coloured by their labels ``y`` (N,). ``predict(X) -> scores (N, C)``.
    Returns the Axes."""
    ax = _axes(ax, figsize=(5, 5))
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
    levels = np.arange(n_classes + 1) - 0.5
    ax.contourf(g0, g1, labels, levels=levels, cmap="tab10", vmin=-0.5, vmax=9.5, alpha=0.3)
    ax.scatter(
        X[:, 0],
        X[:, 1],
        c=y,
        cmap="tab10",
        vmin=-0.5,
        vmax=9.5,
        s=12,
        edgecolors="k",
        linewidths=0.3,
    )
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_aspect("equal", adjustable="box")
    return ax

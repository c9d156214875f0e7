"""Computation graphs drawn as boxes and arrows, with the forward value above each edge and the
gradient below it, in two colours (blue forward, red backward, as in the other pictures).

``apple_orange_values`` computes the numbers of the shopping example (two purchases, a sum and a
tax) with the library's ``Mul`` and ``Add`` layers, or with a learner's own graph function;
``draw_apple_orange`` draws it.
"""

import numpy as np

from .layers import Add, Mul
from .plots import FORWARD_COLOR, GRADIENT_COLOR, _axes

INPUTS = ("apple", "apple_num", "orange", "orange_num", "tax")


def format_value(v):
    """A number written plainly, to 6 significant digits and without float noise or exponent:
    2.2000000000000006 -> "2.2", 110.00000000000001 -> "110", None -> ""."""
    if v is None:
        return ""
    v = float(v)
    if not np.isfinite(v):
        return str(v)
    return np.format_float_positional(float(f"{v:.6g}"), trim="-")


def draw_graph(nodes, edges, ax=None, boxed=None, fontsize=10, at=0.35):
    """Draw a computation graph.

    ``nodes``: {name: (x, y, label)} in data coordinates. ``edges``: list of
    ``(src, dst, forward_value, gradient)``; either number may be None (not shown). The
    forward value is written above each arrow in blue, the gradient below it in red, at the
    fraction ``at`` of the way from source to destination. ``boxed``: names drawn in a box;
    by default every node with an incoming edge (the operations), while the inputs are plain
    labels. Returns the Axes.
    """
    ax = _axes(ax, figsize=(10, 5))
    if boxed is None:
        boxed = {dst for _, dst, _, _ in edges}
    for name, (x, y, label) in nodes.items():
        bbox = dict(boxstyle="round,pad=0.4", fc="white", ec="0.3") if name in boxed else None
        ax.text(x, y, label, ha="center", va="center", fontsize=fontsize, bbox=bbox, zorder=3)
    for src, dst, value, grad in edges:
        (x0, y0, _), (x1, y1, _) = nodes[src], nodes[dst]
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops=dict(arrowstyle="->", color="0.3", shrinkA=18, shrinkB=18, lw=1.2),
            zorder=2,
        )
        xm, ym = x0 + at * (x1 - x0), y0 + at * (y1 - y0)
        if value is not None:
            ax.annotate(
                format_value(value),
                xy=(xm, ym),
                xytext=(0, 5),
                textcoords="offset points",
                ha="center",
                va="bottom",
                color=FORWARD_COLOR,
                fontsize=fontsize - 1,
            )
        if grad is not None:
            ax.annotate(
                format_value(grad),
                xy=(xm, ym),
                xytext=(0, -5),
                textcoords="offset points",
                ha="center",
                va="top",
                color=GRADIENT_COLOR,
                fontsize=fontsize - 1,
            )
    xs = [x for x, _, _ in nodes.values()]
    ys = [y for _, y, _ in nodes.values()]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_axis_off()
    return ax


def _reference_graph(apple, apple_num, orange, orange_num, tax):
    """Forward and backward through Mul, Mul, Add, Mul; returns (values, grads) for every node."""
    mul_apple, mul_orange, add, mul_tax = Mul(), Mul(), Add(), Mul()
    apple_price = mul_apple.forward(apple, apple_num)
    orange_price = mul_orange.forward(orange, orange_num)
    total = add.forward(apple_price, orange_price)
    price = mul_tax.forward(total, tax)

    dprice = 1.0
    dtotal, dtax = mul_tax.backward(dprice)
    dapple_price, dorange_price = add.backward(dtotal)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    dorange, dorange_num = mul_orange.backward(dorange_price)

    values = dict(
        apple=apple,
        apple_num=apple_num,
        orange=orange,
        orange_num=orange_num,
        tax=tax,
        apple_price=apple_price,
        orange_price=orange_price,
        total=total,
        price=price,
    )
    grads = dict(
        apple=dapple,
        apple_num=dapple_num,
        orange=dorange,
        orange_num=dorange_num,
        tax=dtax,
        apple_price=dapple_price,
        orange_price=dorange_price,
        total=dtotal,
        price=dprice,
    )
    return {k: float(v) for k, v in values.items()}, {k: float(v) for k, v in grads.items()}


def apple_orange_values(apple=100, apple_num=2, orange=150, orange_num=3, tax=1.1, graph_fn=None):
    """The shopping graph: price = (apple * apple_num + orange * orange_num) * tax.

    Returns a dict with
    - ``price``: the forward result (715 for the defaults);
    - ``grads``: d price / d node for the five inputs (apple 2.2, apple_num 110, orange 3.3,
      orange_num 165, tax 650 for the defaults) and the inner nodes ``apple_price``,
      ``orange_price``, ``total`` and ``price`` (1);
    - ``values``: the forward value of every node (inputs, ``apple_price``, ``orange_price``,
      ``total``, ``price``).

    By default everything comes from ``backprop.layers.Mul`` and ``Add``. With ``graph_fn``, the
    price and the five input gradients are the learner's:
    ``graph_fn(apple, apple_num, orange, orange_num, tax) -> (price, grads)``; the inner nodes
    stay the reference ones.
    """
    args = (float(apple), float(apple_num), float(orange), float(orange_num), float(tax))
    values, grads = _reference_graph(*args)
    if graph_fn is not None:
        price, theirs = graph_fn(*args)
        missing = [k for k in INPUTS if k not in theirs]
        if missing:
            raise KeyError(f"grads has no entry for {', '.join(missing)}; expected keys {INPUTS}")
        values["price"] = float(price)
        grads.update({k: float(theirs[k]) for k in INPUTS})
    return {"price": values["price"], "grads": grads, "values": values}


APPLE_ORANGE_LAYOUT = {
    "apple": (0.0, 4.0, "apple"),
    "apple_num": (0.0, 2.6, "apple_num"),
    "orange": (0.0, 1.4, "orange"),
    "orange_num": (0.0, 0.0, "orange_num"),
    "tax": (0.0, -1.4, "tax"),
    "mul_apple": (3.0, 3.3, "×"),
    "mul_orange": (3.0, 0.7, "×"),
    "add": (6.0, 2.0, "+"),
    "mul_tax": (8.5, 0.3, "×"),
    "out": (10.5, 0.3, "price"),
}


def apple_orange_edges(result):
    """Edges ``(src, dst, forward, gradient)`` of the shopping graph, from ``result`` as
    returned by ``apple_orange_values``."""
    v, g = result["values"], result["grads"]
    return [
        ("apple", "mul_apple", v["apple"], g["apple"]),
        ("apple_num", "mul_apple", v["apple_num"], g["apple_num"]),
        ("orange", "mul_orange", v["orange"], g["orange"]),
        ("orange_num", "mul_orange", v["orange_num"], g["orange_num"]),
        ("mul_apple", "add", v["apple_price"], g["apple_price"]),
        ("mul_orange", "add", v["orange_price"], g["orange_price"]),
        ("add", "mul_tax", v["total"], g["total"]),
        ("tax", "mul_tax", v["tax"], g["tax"]),
        ("mul_tax", "out", result["price"], g["price"]),
    ]


def draw_apple_orange(
    apple=100, apple_num=2, orange=150, orange_num=3, tax=1.1, graph_fn=None, ax=None, result=None
):
    """Draw the shopping graph with every forward value (blue, above) and gradient (red, below).

    Arguments as in ``apple_orange_values``; pass ``result`` (its return value) to draw numbers
    already computed. Returns the Axes.
    """
    if result is None:
        result = apple_orange_values(apple, apple_num, orange, orange_num, tax, graph_fn)
    ax = draw_graph(
        APPLE_ORANGE_LAYOUT,
        apple_orange_edges(result),
        ax=ax,
        boxed={"mul_apple", "mul_orange", "add", "mul_tax"},
    )
    ax.set_title(
        f"price = {format_value(result['price'])}   "
        "(forward values above the arrows, gradients d price / d · below)",
        fontsize=9,
    )
    return ax

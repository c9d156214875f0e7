"""Computation graphs drawn as boxes and arrows, with the forward value above each edge and the
gradient below it, in two colours (blue forward, red backward, as in the other pictures).

``apple_orange_values`` computes the numbers of the shopping example (two purchases, a sum and a
tax) with the library's ``Mul`` and ``Add`` layers, or with a learner's own graph function;
``draw_apple_orange`` draws it.
"""

import numpy as np
from matplotlib.textpath import TextPath
from matplotlib.transforms import offset_copy

from .layers import Add, Mul
from .plots import FORWARD_COLOR, GRADIENT_COLOR, _axes

INPUTS = ("apple", "apple_num", "orange", "orange_num", "tax")


def format_value(v):
    """A number written plainly, to 6 significant digits and without float noise or exponent:
    2.2000000000000006 -> "2.2", 110.00000000000001 -> "110", None -> "". A string is
    returned as it is (a label already written, such as "2 ≠ 2.2")."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    v = float(v)
    if not np.isfinite(v):
        return str(v)
    return np.format_float_positional(float(f"{v:.6g}"), trim="-")


BOX_PAD = 0.4  # padding of the boxed nodes, in units of the font size
ARROW_GAP = 3.0  # points between a node's label (or box) and an arrow's end
LABEL_GAP = 2.0  # points between an arrow and the numbers written along it
FRAME_PAD = 0.2  # padding of a flagged number's dashed frame, in units of its font size


def label_half_size(label, fontsize, boxed):
    """Half the width and half the height, in points, of ``label`` written at ``fontsize``
    as matplotlib lays it out (a line is one font size high, glyphs have side bearings),
    including the box padding when ``boxed``."""
    extents = TextPath((0, 0), label, size=fontsize).get_extents()
    pad = BOX_PAD * fontsize if boxed else 0.0
    return extents.width / 2 + 0.15 * fontsize + pad, max(extents.height, fontsize) / 2 + pad


def edge_distance(half_w, half_h, dx, dy):
    """Distance from the centre of a box of half sizes ``half_w``, ``half_h`` to its border
    in the direction ``(dx, dy)`` (same units as the half sizes)."""
    norm = np.hypot(dx, dy)
    if norm == 0:
        return 0.0
    cos, sin = abs(dx) / norm, abs(dy) / norm
    return float(min(half_w / cos if cos else np.inf, half_h / sin if sin else np.inf))


def draw_graph(nodes, edges, ax=None, boxed=None, fontsize=10, at=0.35, flagged=()):
    """Draw a computation graph.

    ``nodes``: {name: (x, y, label)} in data coordinates. ``edges``: list of
    ``(src, dst, forward_value, gradient)``; either may be None (not shown) or a string (shown
    as it is). The forward value is written in blue on the upper side of each arrow, the
    gradient in red on the lower side, both turned along the arrow, at the fraction ``at`` of
    the way from source to destination (a number, or {(src, dst): fraction}). ``boxed``: names
    drawn in a box; by default every node with an incoming edge (the operations), while the
    inputs are plain labels. Each arrow stops short of its two labels by their own extent, so
    a long name is not crossed. ``flagged``: edges (src, dst) whose gradient is framed with a
    dashed box and set in bold (a number that disagrees with a reference). Returns the Axes.
    """
    ax = _axes(ax, figsize=(10, 5))
    if boxed is None:
        boxed = {dst for _, dst, _, _ in edges}
    xs = [x for x, _, _ in nodes.values()]
    ys = [y for _, y, _ in nodes.values()]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_axis_off()
    for name, (x, y, label) in nodes.items():
        bbox = None
        if name in boxed:
            bbox = dict(boxstyle=f"round,pad={BOX_PAD}", fc="white", ec="0.3")
        ax.text(x, y, label, ha="center", va="center", fontsize=fontsize, bbox=bbox, zorder=3)
    half = {  # half sizes of every label with the gap an arrow keeps from it, in points
        name: np.add(label_half_size(label, fontsize, name in boxed), ARROW_GAP)
        for name, (_, _, label) in nodes.items()
    }
    points_per_pixel = 72 / ax.figure.dpi
    for src, dst, value, grad in edges:
        (x0, y0, _), (x1, y1, _) = nodes[src], nodes[dst]
        (px0, py0), (px1, py1) = ax.transData.transform([(x0, y0), (x1, y1)])
        dx, dy = (px1 - px0) * points_per_pixel, (py1 - py0) * points_per_pixel
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops=dict(
                arrowstyle="->",
                color="0.3",
                shrinkA=edge_distance(*half[src], dx, dy),
                shrinkB=edge_distance(*half[dst], dx, dy),
                lw=1.2,
            ),
            zorder=2,
        )
        frac = at.get((src, dst), 0.35) if isinstance(at, dict) else at
        xm, ym = x0 + frac * (x1 - x0), y0 + frac * (y1 - y0)
        angle = float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))  # data coordinates
        angle = (angle + 90) % 180 - 90  # never upside down
        normal = np.array([-dy, dx]) / max(np.hypot(dx, dy), 1e-12)  # points, to the left
        if normal[1] < 0:
            normal = -normal  # "above" is the side facing up
        for text, side, color, va in [
            (value, 1, FORWARD_COLOR, "bottom"),
            (grad, -1, GRADIENT_COLOR, "top"),
        ]:
            if text is None:
                continue
            mark = side < 0 and (src, dst) in flagged
            gap = LABEL_GAP + (FRAME_PAD + 0.1) * (fontsize - 1) if mark else LABEL_GAP
            ax.text(
                xm,
                ym,
                format_value(text),
                transform=offset_copy(
                    ax.transData,
                    fig=ax.figure,
                    x=side * gap * normal[0],
                    y=side * gap * normal[1],
                    units="points",
                ),
                rotation=angle,
                transform_rotates_text=True,
                rotation_mode="anchor",
                ha="center",
                va=va,
                color=color,
                fontsize=fontsize - 1,
                fontweight="bold" if mark else "normal",
                bbox=dict(boxstyle=f"round,pad={FRAME_PAD}", fc="white", ec=color, ls="--")
                if mark
                else None,
            )
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
      ``total``, ``price``);
    - ``reference``: the library's ``price`` and input ``grads`` (the same numbers without
      ``graph_fn``);
    - ``learner``: the names of the numbers that come from ``graph_fn``: ``("price", *INPUTS)``
      with it, ``()`` without;
    - ``differs``: those of them that differ from ``reference`` (relative tolerance 1e-6).

    By default everything comes from ``backprop.layers.Mul`` and ``Add``. With ``graph_fn``, the
    price and the five input gradients are the learner's:
    ``graph_fn(apple, apple_num, orange, orange_num, tax) -> (price, grads)``; the inner nodes
    stay the reference ones.
    """
    args = (float(apple), float(apple_num), float(orange), float(orange_num), float(tax))
    values, grads = _reference_graph(*args)
    reference = {"price": values["price"], "grads": {k: grads[k] for k in INPUTS}}
    learner, differs = (), ()
    if graph_fn is not None:
        price, theirs = graph_fn(*args)
        missing = [k for k in INPUTS if k not in theirs]
        if missing:
            raise KeyError(f"grads has no entry for {', '.join(missing)}; expected keys {INPUTS}")
        values["price"] = float(price)
        grads.update({k: float(theirs[k]) for k in INPUTS})
        learner = ("price", *INPUTS)
        ours = {"price": reference["price"], **reference["grads"]}
        mine = {"price": values["price"], **{k: grads[k] for k in INPUTS}}
        differs = tuple(
            k for k in learner if not np.isclose(mine[k], ours[k], rtol=1e-6, atol=1e-12)
        )
    return {
        "price": values["price"],
        "grads": grads,
        "values": values,
        "reference": reference,
        "learner": learner,
        "differs": differs,
    }


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
    returned by ``apple_orange_values``. A gradient in ``result["differs"]`` is written
    "yours ≠ the library's", e.g. "2 ≠ 2.2", and so is the price when it differs."""
    v, g = result["values"], result["grads"]
    differs, ref = result.get("differs", ()), result.get("reference", {}).get("grads", {})

    def grad(name):
        if name in differs:
            return f"{format_value(g[name])} ≠ {format_value(ref[name])}"
        return g[name]

    price = result["price"]
    if "price" in differs:
        price = f"{format_value(price)} ≠ {format_value(result['reference']['price'])}"
    return [
        ("apple", "mul_apple", v["apple"], grad("apple")),
        ("apple_num", "mul_apple", v["apple_num"], grad("apple_num")),
        ("orange", "mul_orange", v["orange"], grad("orange")),
        ("orange_num", "mul_orange", v["orange_num"], grad("orange_num")),
        ("mul_apple", "add", v["apple_price"], g["apple_price"]),
        ("mul_orange", "add", v["orange_price"], g["orange_price"]),
        ("add", "mul_tax", v["total"], g["total"]),
        ("tax", "mul_tax", v["tax"], grad("tax")),
        ("mul_tax", "out", price, g["price"]),
    ]


# Where the numbers sit along each edge: the two edges into a × node converge, so their
# numbers are staggered (one pair near the source, the other further along).
APPLE_ORANGE_AT = {
    ("apple", "mul_apple"): 0.3,
    ("apple_num", "mul_apple"): 0.6,
    ("orange", "mul_orange"): 0.3,
    ("orange_num", "mul_orange"): 0.6,
    ("mul_apple", "add"): 0.45,
    ("mul_orange", "add"): 0.45,
    ("add", "mul_tax"): 0.45,
    ("tax", "mul_tax"): 0.3,
    ("mul_tax", "out"): 0.45,
}


def draw_apple_orange(
    apple=100, apple_num=2, orange=150, orange_num=3, tax=1.1, graph_fn=None, ax=None, result=None
):
    """Draw the shopping graph with every forward value (blue, above its arrow) and gradient
    d price / d value (red, below).

    Arguments as in ``apple_orange_values``; pass ``result`` (its return value) to draw numbers
    already computed. With a learner's numbers, the title says which numbers are theirs, and
    each input gradient that differs from the library's is framed and written "yours ≠
    library's". Returns the Axes.
    """
    if result is None:
        result = apple_orange_values(apple, apple_num, orange, orange_num, tax, graph_fn)
    differs = result.get("differs", ())
    edges = apple_orange_edges(result)
    ax = draw_graph(
        APPLE_ORANGE_LAYOUT,
        edges,
        ax=ax,
        boxed={"mul_apple", "mul_orange", "add", "mul_tax"},
        at=APPLE_ORANGE_AT,
        flagged={(src, dst) for src, dst, *_ in edges if src in differs},
    )
    price = format_value(result["price"])
    if "price" in differs:
        price += f" ≠ {format_value(result['reference']['price'])}"
    lines = [
        f"price = {price}.   Blue: value on the edge.   Red: ∂price/∂(that value)",
    ]
    if result.get("learner"):
        lines.append(
            "price and the gradients of the five inputs: your function; "
            "inner edges: the library's layers"
        )
    if differs:
        lines.append("framed: yours ≠ the library's")
    ax.set_title("\n".join(lines), fontsize=9)
    return ax

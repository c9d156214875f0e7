"""The vectorised training step against a per-sample loop over the same net."""

import numpy as np
from backprop.data import digits_split
from backprop.net import TwoLayerNet

from .report import section, table
from .timing import interleaved


def loop_gradient(net, X, y):
    """Batch gradient as a loop over samples: one 1-row backprop each, averaged.

    The loss layer averages over the batch, so the batch gradient is the mean of the
    per-sample gradients.
    """
    total = {key: np.zeros_like(value) for key, value in net.params.items()}
    for i in range(len(X)):
        for key, grad in net.gradient(X[i : i + 1], y[i : i + 1]).items():
            total[key] += grad
    return {key: value / len(X) for key, value in total.items()}


def run():
    """Time both on the 64-64-10 net of the training notebook, at batch 32 and full batch."""
    X_all, y_all, _, _ = digits_split()
    rows = []
    for label, n in [("32", 32), ("full", len(X_all))]:
        X, y = X_all[:n], y_all[:n]
        net = TwoLayerNet(64, 64, 10, weight_init_std=0.1, seed=0)
        vectorised, looped = net.gradient(X, y), loop_gradient(net, X, y)
        agree = max(float(np.max(np.abs(vectorised[k] - looped[k]))) for k in vectorised)
        times = interleaved(
            {
                "vectorised": lambda X=X, y=y, net=net: net.gradient(X, y),
                "loop": lambda X=X, y=y, net=net: loop_gradient(net, X, y),
            },
            rounds=5,
        )
        rows.append(
            [
                f"{label} ({n})",
                f"{times['vectorised'] * 1e3:.3f}",
                f"{times['loop'] * 1e3:.2f}",
                f"{times.ratio('loop', 'vectorised'):.1f}x",
                f"{agree:.1e}",
                ">= 10x" if n == 32 else "",
            ]
        )
    return section(
        "Vectorised backprop against a per-sample loop",
        table(
            [
                "batch",
                "vectorised ms",
                "loop ms",
                "speed-up",
                "max abs gradient difference",
                "target",
            ],
            rows,
        ),
        notes=["TwoLayerNet 64-64-10 on the digits; forward and backward, no update."],
    )

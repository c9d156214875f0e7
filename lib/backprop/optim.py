"""Stochastic gradient descent with in-place parameter updates."""

import numpy as np

# Entries updated at a time: ``lr * g`` for one block (256 KB of float64) stays in the CPU's
# cache while it is subtracted, so a step reads the gradient and the parameter once and writes
# the parameter once, as a fused ``p -= lr * g`` would.
BLOCK = 1 << 15


class SGD:
    """Plain SGD: ``p -= lr * g`` for every parameter array, in place.

    Updating in place (not ``params[k] = p - lr * g``) matters: layers hold references to the
    same arrays, so they see the new values without being told.
    """

    def __init__(self, lr=0.1):
        self.lr = lr
        self._scratch = {}  # dtype -> one block of scratch space

    def step(self, params, grads):
        """Update every array in ``params`` (dict name -> ndarray) by its entry in ``grads``
        (same shapes). Allocates no array after the first step and leaves ``grads`` untouched.
        A gradient that is missing or of another shape: ``ValueError``, and nothing is moved.
        """
        checked = {key: _gradient(grads, key, p) for key, p in params.items()}
        for key, p in params.items():
            g = checked[key]
            dtype = np.result_type(g, self.lr)
            if not (p.flags.c_contiguous and g.flags.c_contiguous):
                p -= self.lr * g  # unusual layouts: correct, with a temporary array
                continue
            scratch = self._scratch.get(dtype)
            if scratch is None:
                scratch = self._scratch[dtype] = np.empty(BLOCK, dtype=dtype)
            p_flat, g_flat = p.reshape(-1), g.reshape(-1)
            for start in range(0, p.size, BLOCK):
                stop = min(start + BLOCK, p.size)
                part = scratch[: stop - start]
                np.multiply(g_flat[start:stop], self.lr, out=part)
                p_flat[start:stop] -= part


def _gradient(grads, key, p):
    """``grads[key]`` as an array of parameter ``p``'s shape; ``ValueError`` saying what is wrong
    when it is missing or has another shape, which ``p -= lr * g`` would broadcast silently (a
    bias gradient of shape (M,) would move every row of a weight matrix alike) or refuse with
    numpy's words."""
    if key not in grads:
        raise ValueError(
            f"grads has no {key!r}: expected one gradient per parameter, under the same name "
            f"(grads has {sorted(grads)})"
        )
    g = np.asarray(grads[key])
    if g.shape == p.shape:
        return g
    hint = ""
    if g.shape[1:] == p.shape:
        hint = ": sum over the batch, axis 0, as a bias gradient does"
    elif g.shape == p.shape[::-1]:
        hint = ": a transpose is missing or one too many"
    raise ValueError(
        f"grads[{key!r}] has shape {g.shape} but its parameter has shape {p.shape}{hint}"
    )

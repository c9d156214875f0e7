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
        (same shapes). Allocates nothing after the first step and leaves ``grads`` untouched.
        """
        for key, p in params.items():
            g = np.asarray(grads[key])
            dtype = np.result_type(g, self.lr)
            if g.shape != p.shape or not (p.flags.c_contiguous and g.flags.c_contiguous):
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

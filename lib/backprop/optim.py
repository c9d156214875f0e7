"""Stochastic gradient descent with in-place parameter updates."""

import numpy as np


class SGD:
    """Plain SGD: ``p -= lr * g`` for every parameter array, in place.

    Updating in place (not ``params[k] = p - lr * g``) matters: layers hold references to the
    same arrays, so they see the new values without being told.
    """

    def __init__(self, lr=0.1):
        self.lr = lr
        self._scratch = {}

    def step(self, params, grads):
        """Update every array in ``params`` (dict name -> ndarray) by its entry in ``grads``.

        ``lr * grad`` goes into a buffer kept between steps, so a step allocates nothing and
        leaves ``grads`` untouched.
        """
        for key, p in params.items():
            g = grads[key]
            buf = self._scratch.get(key)
            if buf is None or buf.shape != g.shape or buf.dtype != np.result_type(g, self.lr):
                buf = self._scratch[key] = np.empty_like(g, dtype=np.result_type(g, self.lr))
            np.multiply(g, self.lr, out=buf)
            p -= buf

"""Stochastic gradient descent with in-place parameter updates."""


class SGD:
    """Plain SGD: ``p -= lr * g`` for every parameter array, in place.

    Updating in place (not ``params[k] = p - lr * g``) matters: layers hold references to the
    same arrays, so they see the new values without being told.
    """

    def __init__(self, lr=0.1):
        self.lr = lr

    def step(self, params, grads):
        """Update every array in ``params`` (dict name -> ndarray) by its entry in ``grads``."""
        for key, p in params.items():
            p -= self.lr * grads[key]

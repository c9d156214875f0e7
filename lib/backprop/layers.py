"""Computation-graph layers with the course's layer protocol.

Every layer has ``forward(*inputs) -> output`` and ``backward(dout) -> gradient(s) with respect
to the inputs``. ``forward`` keeps what ``backward`` needs. ``backward`` never modifies ``dout``
and never returns the same array object. Layers with parameters expose ``params`` and ``grads``
dicts with the same keys; optimisers update ``params`` in place, so the layer sees the change.

The activation layers also have ``backward_inplace(dout)``: the same gradient, written into
``dout`` itself, for a caller that made ``dout`` and needs it no more (``Sequential.sgd_step``):
one (N, D) array fewer per layer and step.

Shapes are batch first: ``x`` is (N, D). The 1/N of a batch mean lives only in the loss layers.
"""

import numpy as np

from .blas import add_product
from .functions import class_indices, sigmoid, softmax


class Kept:
    """Base of the layers whose ``backward`` uses what ``forward`` kept (the attribute names in
    ``kept``): read before any ``forward``, one of them raises an ``AttributeError`` that says
    to call ``forward`` first, not only which attribute is missing. (``__getattr__`` runs only
    for an attribute that is not there: it costs nothing once ``forward`` has run.)"""

    kept = ()

    def __getattr__(self, name):
        cls = type(self).__name__
        if name in type(self).kept:
            raise AttributeError(
                f"{cls} has no {name} yet: call forward before backward (backward uses what "
                "forward keeps)"
            )
        raise AttributeError(f"{cls!r} object has no attribute {name!r}")


class Mul(Kept):
    """z = x * y, elementwise. Backward swaps the inputs: dx = dout * y, dy = dout * x."""

    kept = ("x", "y")

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class Add:
    """z = x + y. Backward passes the upstream gradient to both inputs unchanged (as copies)."""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout * 1.0, dout * 1.0


class Relu(Kept):
    """y = max(x, 0) elementwise. Backward lets the gradient through where x > 0 only."""

    kept = ("mask",)

    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * self.mask

    def backward_inplace(self, dout):
        """``backward`` written into ``dout``, which is returned."""
        return np.multiply(dout, self.mask, out=dout)


class Sigmoid(Kept):
    """y = 1 / (1 + exp(-x)) elementwise. Backward uses the stored output: dx = dout * y (1 - y)."""

    kept = ("out",)

    def forward(self, x):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * self.out * (1.0 - self.out)

    def backward_inplace(self, dout):
        """``backward`` written into ``dout``, which is returned."""
        dout *= self.out
        dout *= 1.0 - self.out
        return dout


class Affine(Kept):
    """y = x @ W + b.   x: (N, D), W: (D, M), b: (M,), y: (N, M).

    Backward: dx = dout @ W.T (N, D), dW = x.T @ dout (D, M), db = dout summed over the batch (M,).
    An input with more than two axes, e.g. images (N, 8, 8), is flattened to (N, D) and dx gets
    the input's shape back.
    """

    kept = ("x", "x_shape")

    def __init__(self, W, b):
        self.params = {"W": W, "b": b}
        self.grads = {}

    def forward(self, x):
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        out = self.x @ self.params["W"]
        b = self.params["b"]
        if np.result_type(out, b) == out.dtype:
            out += b  # in place: one (N, M) array instead of two
            return out
        return out + b

    def backward(self, dout):
        self.param_backward(dout)
        return (dout @ self.params["W"].T).reshape(self.x_shape)

    def param_backward(self, dout):
        """Fill ``grads`` only, without dx: all a network's first layer needs (its input is data).

        Saves a third of that layer's matrix products; ``backward`` calls it too.
        """
        self._check_dout(dout)
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)

    def sgd_backward(self, dout, lr, need_dx=True):
        """``backward`` and an SGD step in one: W -= lr * dW, b -= lr * db; returns dx (N, D),
        a new array the caller may overwrite, or None when ``need_dx`` is False.

        dx is computed first, from the old W. The update of W is one matrix product that
        adds ``-lr * x.T @ dout`` into W as it is formed (``blas.add_product``): no dW array
        is made and W is read and written once. ``grads`` is emptied: no gradients are kept.
        """
        self._check_dout(dout)
        W, b = self.params["W"], self.params["b"]
        dx = (dout @ W.T).reshape(self.x_shape) if need_dx else None
        add_product(W, self.x.T, dout, -lr)
        b -= lr * dout.sum(axis=0)
        self.grads = {}
        return dx

    def _check_dout(self, dout):
        """``ValueError`` unless ``dout`` has this layer's output shape (N, M): another shape
        fails deep inside a matrix product, or is broadcast into a wrong gradient."""
        out = (self.x.shape[0], self.params["W"].shape[1])
        if np.shape(dout) != out:
            raise ValueError(
                f"Affine.backward got dout of shape {np.shape(dout)}, but this layer's output "
                f"has shape {out}: does the backward pass go through the layers in reverse "
                "order, the last layer first?"
            )


class SoftmaxWithLoss(Kept):
    """Softmax followed by mean cross-entropy.   x: scores (N, C), t: labels (N,) or one-hot (N, C).

    forward returns the mean loss (float); backward returns dx = dout * (y - onehot(t)) / N, (N, C).
    """

    kept = ("y", "t")

    def forward(self, x, t):
        self.y = softmax(x)
        self.t = class_indices(t, *self.y.shape)
        n = self.y.shape[0]
        p = self.y[np.arange(n), self.t]
        return float(-np.log(np.maximum(p, np.finfo(self.y.dtype).tiny)).sum() / n)

    def backward(self, dout=1.0):
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[np.arange(n), self.t] -= 1.0
        dx *= dout / n
        return dx


class MSELoss(Kept):
    """Squared error summed over outputs, averaged over the batch.   y, t: (N, M).

    forward returns L = (1/N) sum (y - t)^2; backward returns dy = dout * 2 (y - t) / N.
    """

    kept = ("diff",)

    def forward(self, y, t):
        self.diff = y - t
        return float(np.sum(self.diff**2) / self.diff.shape[0])

    def backward(self, dout=1.0):
        return self.diff * (2.0 * dout / self.diff.shape[0])

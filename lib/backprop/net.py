"""Networks assembled from layers: a general ``Sequential`` stack and the ``TwoLayerNet``."""

import numpy as np

from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss, class_indices
from .optim import SGD

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


class Sequential:
    """Layers applied in order, then a loss layer.

    ``params`` and ``grads`` name the parameters of the k-th layer that has any as
    ``W{k}``, ``b{k}`` (k from 1), and hold the very arrays of the layers, so an in-place
    optimiser step on ``params`` changes the layers.
    """

    def __init__(self, layers, loss_layer=None):
        self.layers = list(layers)
        self.loss_layer = loss_layer if loss_layer is not None else SoftmaxWithLoss()
        self.params, self._owners = {}, []
        k = 0
        for layer in self.layers:
            if getattr(layer, "params", None):
                k += 1
                for name, value in layer.params.items():
                    self.params[f"{name}{k}"] = value
                    self._owners.append((f"{name}{k}", layer, name))

    @classmethod
    def mlp(cls, sizes, activation="relu", weight_init_std=None, seed=0, dtype=np.float64):
        """Fully connected net with layer sizes e.g. (64, 64, 10) and ``activation`` between.

        Weights are normal with ``weight_init_std`` (default: He scaling sqrt(2 / fan_in) for
        ReLU, sqrt(1 / fan_in) for sigmoid); biases are zero.
        """
        rng = np.random.default_rng(seed)
        layers = []
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            gain = 2.0 if activation == "relu" else 1.0
            std = weight_init_std if weight_init_std is not None else np.sqrt(gain / d_in)
            W = (std * rng.standard_normal((d_in, d_out))).astype(dtype)
            layers.append(Affine(W, np.zeros(d_out, dtype=dtype)))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        return cls(layers)

    def predict(self, x):
        """Scores before the loss, (N, C)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        """Forward pass through the layers and the loss layer; returns the loss (float)."""
        return self.loss_layer.forward(self.predict(x), t)

    def gradient(self, x, t):
        """Backpropagation: forward, then backward through every layer.

        Returns a dict with the same keys as ``params``; the loss of that forward pass is
        kept in ``last_loss``.
        """
        self.last_loss = self.loss(x, t)
        dout = self.loss_layer.backward(1.0)
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        first = self.layers[0] if self.layers else None
        if hasattr(first, "param_backward"):
            first.param_backward(dout)  # the gradient w.r.t. the data is never used
        elif first is not None:
            first.backward(dout)
        self.grads = {key: layer.grads[name] for key, layer, name in self._owners}
        return self.grads

    def sgd_step(self, x, t, lr):
        """One step of plain SGD fused into backpropagation; returns the loss of its forward
        pass (also kept in ``last_loss``).

        Moves the parameters as ``SGD(lr).step(net.params, net.gradient(x, t))`` does (equal
        up to rounding), with less memory traffic: each layer updates its parameters as soon as
        the backward pass is done with them (``sgd_backward``) and no gradient is kept, so
        ``grads`` is emptied. An activation after such a layer writes its gradient into the
        array that layer returned (``backward_inplace``). A layer without ``sgd_backward``
        runs ``backward`` and then an SGD step on its own ``grads``.
        """
        self.last_loss = self.loss(x, t)
        dout = self.loss_layer.backward(1.0)
        owned = False  # whether dout is a new array of sgd_backward's, free to overwrite
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            if hasattr(layer, "sgd_backward"):
                dout, owned = layer.sgd_backward(dout, lr, need_dx=i > 0), True
            elif owned and hasattr(layer, "backward_inplace"):
                dout = layer.backward_inplace(dout)
            else:
                dout, owned = layer.backward(dout), False
                if getattr(layer, "params", None):
                    SGD(lr).step(layer.params, layer.grads)
        self.grads = {}
        return self.last_loss

    def accuracy(self, x, t):
        """Fraction of samples whose highest score is the label ``t``: class indices (N,) or
        one-hot (N, C)."""
        scores = self.predict(x)
        return float(np.mean(scores.argmax(axis=1) == class_indices(t, *scores.shape)))


class TwoLayerNet(Sequential):
    """Affine -> ReLU -> Affine -> SoftmaxWithLoss.

    ``W1 = weight_init_std * rng.standard_normal((input_size, hidden_size))`` with
    ``rng = np.random.default_rng(seed)``, then ``W2`` the same way; biases are zero.
    Params: W1 (D, H), b1 (H,), W2 (H, C), b2 (C,).
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        output_size,
        weight_init_std=0.01,
        seed=0,
        dtype=np.float64,
        activation="relu",
    ):
        rng = np.random.default_rng(seed)
        W1 = (weight_init_std * rng.standard_normal((input_size, hidden_size))).astype(dtype)
        W2 = (weight_init_std * rng.standard_normal((hidden_size, output_size))).astype(dtype)
        super().__init__(
            [
                Affine(W1, np.zeros(hidden_size, dtype=dtype)),
                ACTIVATIONS[activation](),
                Affine(W2, np.zeros(output_size, dtype=dtype)),
            ]
        )

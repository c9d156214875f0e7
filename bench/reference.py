"""The PyTorch twin of a library net: same layer sizes, same weights, the same SGD step.

PyTorch is optional (the ``bench`` extra); ``torch_module()`` returns None without it.
"""

import numpy as np


def torch_module():
    """The ``torch`` module on one thread, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


class TorchTwin:
    """``torch.nn.Sequential`` of Linear and ReLU layers carrying a library net's weights.

    ``net`` is a ``backprop.net.Sequential`` of Affine and activation layers. Its ``W{k}``
    (D, M) becomes the k-th Linear's ``weight`` (M, D), ``b{k}`` its ``bias``.
    """

    def __init__(self, torch, net, X, y, lr):
        self.torch = torch
        dtype = torch.float64 if net.params["W1"].dtype == np.float64 else torch.float32
        modules, k = [], 0
        for layer in net.layers:
            if getattr(layer, "params", None):
                k += 1
                W, b = net.params[f"W{k}"], net.params[f"b{k}"]
                linear = torch.nn.Linear(W.shape[0], W.shape[1], dtype=dtype)
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                    linear.bias.copy_(torch.from_numpy(b))
                modules.append(linear)
            else:
                modules.append(
                    {"Relu": torch.nn.ReLU, "Sigmoid": torch.nn.Sigmoid}[type(layer).__name__]()
                )
        self.model = torch.nn.Sequential(*modules)
        self.optimiser = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))

    def backward(self):
        """Forward, mean cross-entropy and autograd backward; returns the loss tensor."""
        self.optimiser.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.model(self.X), self.y)
        loss.backward()
        return loss

    def step(self):
        """One training step: backward, then the SGD update."""
        self.backward()
        self.optimiser.step()

    def grads(self):
        """Gradients named like the library's: ``W{k}`` (D, M) and ``b{k}`` (M,) as numpy."""
        out = {}
        linears = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        for k, linear in enumerate(linears, start=1):
            out[f"W{k}"] = linear.weight.grad.numpy().T
            out[f"b{k}"] = linear.bias.grad.numpy()
        return out

"""The reference training loop: shuffled mini-batches, in-place SGD, a history of the run."""

import numpy as np

from .optim import SGD


def iterate_minibatches(X, y, batch_size, rng):
    """Yield ``(X_batch, y_batch)`` covering every sample once, in an order shuffled by ``rng``.

    ``X``: (N, D), ``y``: (N,). The last batch is shorter when ``batch_size`` does not divide N.
    """
    order = rng.permutation(len(X))
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        yield X[idx], y[idx]


def train(net, X_train, y_train, X_val, y_val, epochs, lr, batch_size, seed=0, callback=None):
    """Train ``net`` with SGD; returns ``{"loss": [...], "train_acc": [...], "val_acc": [...]}``.

    A step is ``net.sgd_step`` when the net has one (the library's nets: backward and update
    fused), else ``net.gradient`` and then ``SGD.step``. ``loss`` has one entry per step, the
    accuracies one per epoch. ``callback(history, epoch)``, when given, is called after every
    epoch (e.g. to redraw a plot); if it returns True the run stops early.
    """
    _check_settings(X_train, y_train, X_val, y_val, epochs, batch_size)
    rng = np.random.default_rng(seed)
    optimiser = SGD(lr)
    history = {"loss": [], "train_acc": [], "val_acc": []}
    for epoch in range(epochs):
        for X_batch, y_batch in iterate_minibatches(X_train, y_train, batch_size, rng):
            if hasattr(net, "sgd_step"):  # the library's nets: backward and update fused
                history["loss"].append(net.sgd_step(X_batch, y_batch, lr))
            else:
                grads = net.gradient(X_batch, y_batch)
                history["loss"].append(net.last_loss)
                optimiser.step(net.params, grads)
        history["train_acc"].append(net.accuracy(X_train, y_train))
        history["val_acc"].append(net.accuracy(X_val, y_val))
        if callback is not None and callback(history, epoch):
            break
    return history


def _check_settings(X_train, y_train, X_val, y_val, epochs, batch_size):
    """``ValueError`` naming the mistake when the data or the settings cannot train: samples
    and labels of different lengths (arguments swapped, say), or a batch size or number of
    epochs that is not a whole number of the right sign."""
    for X, y, which in ((X_train, y_train, "train"), (X_val, y_val, "val")):
        if len(X) != len(y):
            raise ValueError(
                f"X_{which} has {len(X)} samples but y_{which} has {len(y)} labels: the "
                "order is train(net, X_train, y_train, X_val, y_val, ...)"
            )
    for name, value, least in (("batch_size", batch_size, 1), ("epochs", epochs, 0)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be a whole number, at least {least}; got {value!r}")

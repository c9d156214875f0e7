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

"""Small data sets that ship with the package: nothing is ever downloaded.

- ``load_digits()``: the 8x8 handwritten digits (1,797 images, 10 classes); see
  ``datafiles/README.md`` for origin and licence.
- ``spiral``, ``moons``, ``circles``: 2-D toy sets generated from a seed.
- ``train_val_split``, ``standardise`` and ``digits_split`` to prepare them.
"""

from importlib.resources import files

import numpy as np


def load_digits():
    """The handwritten digits: ``X`` float64 (1797, 64), pixels 0..16; ``y`` int64 (1797,)."""
    with files("backprop").joinpath("datafiles/digits.npz").open("rb") as f:
        archive = np.load(f)
        images, target = archive["images"], archive["target"]
    return images.reshape(len(images), -1).astype(np.float64), target.astype(np.int64)


def train_val_split(X, y, val_fraction=0.2, seed=0):
    """Shuffle with ``seed`` and split: returns ``X_train, y_train, X_val, y_val``."""
    order = np.random.default_rng(seed).permutation(len(X))
    n_val = int(round(val_fraction * len(X)))
    val, train = order[:n_val], order[n_val:]
    return X[train], y[train], X[val], y[val]


def standardise(X_train, *others):
    """Scale every feature to mean 0 and standard deviation 1 using the training set's figures.

    Features that are constant in the training set (std 0) are only centred. Returns the
    scaled training set followed by each of ``others`` scaled the same way.
    """
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0
    return tuple((X - mean) / std for X in (X_train, *others))


def digits_split(val_fraction=0.2, seed=0):
    """Digits split 80/20 (by default) and standardised: ``X_train, y_train, X_val, y_val``."""
    X_train, y_train, X_val, y_val = train_val_split(*load_digits(), val_fraction, seed)
    X_train, X_val = standardise(X_train, X_val)
    return X_train, y_train, X_val, y_val


def spiral(n_per_class=100, classes=3, noise=0.2, seed=0):
    """Interleaved spiral arms, one per class: ``X`` (n_per_class * classes, 2), ``y`` (N,)."""
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), classes)
    y = np.repeat(np.arange(classes), n_per_class)
    theta = y * (2 * np.pi / classes) + r * 4.0 + rng.standard_normal(r.size) * noise
    X = np.column_stack([r * np.sin(theta), r * np.cos(theta)])
    return X, y


def moons(n_samples=200, noise=0.1, seed=0):
    """Two interleaving half circles: ``X`` (n_samples, 2), ``y`` (n_samples,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    a = np.linspace(0, np.pi, n_out)
    b = np.linspace(0, np.pi, n_in)
    X = np.vstack(
        [
            np.column_stack([np.cos(a), np.sin(a)]),
            np.column_stack([1 - np.cos(b), 0.5 - np.sin(b)]),
        ]
    )
    X += rng.standard_normal(X.shape) * noise
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return X, y


def circles(n_samples=200, noise=0.05, factor=0.5, seed=0):
    """A small circle inside a large one: ``X`` (n_samples, 2), ``y`` 1 for the inner circle."""
    rng = np.random.default_rng(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    a = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    b = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack(
        [np.column_stack([np.cos(a), np.sin(a)]), factor * np.column_stack([np.cos(b), np.sin(b)])]
    )
    X += rng.standard_normal(X.shape) * noise
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return X, y

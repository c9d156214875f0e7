"""Networks and training on the shipped data: gradients, in-place SGD, and accuracy reached."""

import numpy as np
import pytest
from backprop.data import circles, digits_split, load_digits, moons, spiral
from backprop.gradcheck import check_gradient, numerical_gradient
from backprop.net import Sequential, TwoLayerNet
from backprop.optim import SGD
from backprop.train import iterate_minibatches, train


def test_digits_ship_with_the_package():
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == np.float64 and X.min() == 0 and X.max() == 16
    assert np.bincount(y).min() >= 170
    X_train, y_train, X_val, y_val = digits_split()
    assert len(X_train) == 1438 and len(X_val) == 359
    np.testing.assert_allclose(X_train.mean(axis=0), 0, atol=1e-12)


@pytest.mark.parametrize("make", [spiral, moons, circles])
def test_toy_sets_are_seeded(make):
    X1, y1 = make(seed=3)
    X2, y2 = make(seed=3)
    np.testing.assert_array_equal(X1, X2)
    assert X1.shape[1] == 2 and len(X1) == len(y1) and len(np.unique(y1)) >= 2
    assert not np.array_equal(make(seed=4)[0], X1)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_net_gradient_matches_numerical(activation, rng):
    net = Sequential.mlp((5, 6, 4, 3), activation=activation, seed=1)
    x, t = rng.standard_normal((7, 5)), rng.integers(0, 3, 7)
    grads = net.gradient(x, t)
    assert set(grads) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    for key, p in net.params.items():
        numeric = numerical_gradient(lambda _: net.loss(x, t), p)
        check_gradient(key, grads[key], numeric, rtol=1e-4, atol=1e-7)


def test_two_layer_net_follows_the_contract():
    net = TwoLayerNet(4, 3, 2, weight_init_std=0.01, seed=0)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(net.params["W1"], 0.01 * rng.standard_normal((4, 3)))
    np.testing.assert_array_equal(net.params["W2"], 0.01 * rng.standard_normal((3, 2)))
    assert not net.params["b1"].any() and net.params["b2"].shape == (2,)


def test_sgd_updates_in_place_so_layers_see_it():
    net = TwoLayerNet(4, 3, 2, seed=0)
    W1 = net.params["W1"]
    before = W1.copy()
    grads = net.gradient(np.ones((2, 4)), np.array([0, 1]))
    SGD(lr=0.5).step(net.params, grads)
    assert net.params["W1"] is W1 and net.layers[0].params["W"] is W1
    np.testing.assert_allclose(W1, before - 0.5 * grads["W1"])


def test_minibatches_cover_every_sample_once():
    X, y = np.arange(10.0).reshape(10, 1), np.arange(10)
    batches = list(iterate_minibatches(X, y, 4, np.random.default_rng(0)))
    assert [len(b) for b, _ in batches] == [4, 4, 2]
    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))


def test_two_layer_net_learns_the_digits():
    """The issue's target: 80/20 split, standardised, 64 hidden ReLU, lr 0.1, batch 32:
    at least 97 % validation accuracy within 20 epochs."""
    X_train, y_train, X_val, y_val = digits_split(0.2, seed=0)
    net = TwoLayerNet(64, 64, 10, weight_init_std=0.01, seed=0)
    history = train(
        net,
        X_train,
        y_train,
        X_val,
        y_val,
        epochs=20,
        lr=0.1,
        batch_size=32,
        callback=lambda h, epoch: h["val_acc"][-1] >= 0.97,
    )
    assert max(history["val_acc"]) >= 0.97, history["val_acc"]
    assert len(history["loss"]) == len(history["val_acc"]) * 45
    assert history["loss"][-1] < history["loss"][0] / 5

"""Networks and training on the shipped data: gradients, in-place SGD, and accuracy reached."""

import re

import numpy as np
import pytest
from backprop import blas
from backprop.data import circles, digits_split, load_digits, moons, spiral
from backprop.gradcheck import check_gradient, numerical_gradient
from backprop.layers import Affine, Relu
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


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (
            {"b1": np.ones((2, 3))},
            "grads['b1'] has shape (2, 3) but its parameter has shape (3,): sum over the batch",
        ),
        (
            {"W1": np.ones((3, 4))},
            "grads['W1'] has shape (3, 4) but its parameter has shape (4, 3): a transpose",
        ),
        ({"b2": np.ones(1)}, "grads['b2'] has shape (1,)"),
        ({"W2": None}, "grads has no 'W2'"),
    ],
)
def test_sgd_refuses_a_gradient_it_would_broadcast_and_moves_nothing(wrong, says):
    net = TwoLayerNet(4, 3, 2, seed=0)
    before = {key: p.copy() for key, p in net.params.items()}
    grads = net.gradient(np.ones((2, 4)), np.array([0, 1])) | wrong
    grads = {key: g for key, g in grads.items() if g is not None}
    with pytest.raises(ValueError, match=re.escape(says)):
        SGD(lr=0.5).step(net.params, grads)
    for key, p in net.params.items():
        np.testing.assert_array_equal(p, before[key])


def unfused_step(net, x, t, lr):
    """The textbook step the fused one must equal: all gradients, then SGD."""
    SGD(lr).step(net.params, net.gradient(x, t))
    return net.last_loss


class Scale:
    """A layer with a parameter but no ``sgd_backward``: y = x * s, s (D,)."""

    def __init__(self, d, dtype):
        self.params, self.grads = {"s": np.linspace(0.5, 1.5, d, dtype=dtype)}, {}

    def forward(self, x):
        self.x = x
        return x * self.params["s"]

    def backward(self, dout):
        self.grads["s"] = (dout * self.x).sum(axis=0)
        return dout * self.params["s"]


NETS = {
    # sizes where the first layer's update takes the GEMM path and where it does not
    "relu, large": lambda dtype: Sequential.mlp((400, 200, 10), dtype=dtype, seed=1),
    "sigmoid, small": lambda dtype: Sequential.mlp((6, 5, 3), "sigmoid", dtype=dtype, seed=1),
    "custom layer": lambda dtype: Sequential(
        [
            Scale(400, dtype),
            Affine(np.full((400, 200), 0.01, dtype), np.zeros(200, dtype)),
            Relu(),
            Affine(np.full((200, 3), 0.02, dtype), np.zeros(3, dtype)),
        ]
    ),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NETS)
def test_fused_sgd_step_moves_the_parameters_like_gradient_then_sgd(name, dtype, rng):
    make = NETS[name]
    fused, plain = make(dtype), make(dtype)
    d = fused.layers[0].params.get("W", fused.layers[0].params.get("s")).shape[0]
    for _ in range(3):
        x, t = rng.standard_normal((200, d)).astype(dtype), rng.integers(0, 3, 200)
        arrays = dict(fused.params)
        loss = fused.sgd_step(x, t, 0.3)
        expected_loss = unfused_step(plain, x, t, 0.3)
        assert loss == fused.last_loss == pytest.approx(expected_loss, rel=1e-4)
        assert all(fused.params[k] is arrays[k] for k in arrays)  # in place: layers see it
        for key in plain.params:
            tol = 1e-12 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(fused.params[key], plain.params[key], rtol=tol, atol=tol)
            assert fused.params[key].dtype == dtype


def test_fused_step_writes_activation_gradients_in_place(rng, monkeypatch):
    """After an ``sgd_backward`` the activation overwrites the array it returned (no new
    (N, D) array), and the parameters move as with ``backward``."""
    net, plain = Sequential.mlp((400, 200, 10), seed=0), Sequential.mlp((400, 200, 10), seed=0)
    x, t = rng.standard_normal((64, 400)), rng.integers(0, 10, 64)
    unfused_step(plain, x, t, 0.1)
    monkeypatch.setattr(Relu, "backward", lambda self, dout: pytest.fail("a new array made"))
    net.sgd_step(x, t, 0.1)
    for key in net.params:
        np.testing.assert_allclose(net.params[key], plain.params[key], rtol=1e-12, atol=1e-14)


class Keep:
    """A layer without parameters whose ``backward`` returns an array it keeps (``dx``)."""

    def forward(self, x):
        return x

    def backward(self, dout):
        self.dx = dout * 1.0
        self.returned = self.dx.copy()
        return self.dx


def test_fused_step_overwrites_no_array_a_layer_of_the_learner_returned(rng):
    """Affine, Relu, Keep, Affine: the Relu's gradient comes from Keep's array, not from an
    ``sgd_backward``: it must not be written into that array."""
    W1, W2 = rng.standard_normal((6, 5)), rng.standard_normal((5, 3))
    net = Sequential([Affine(W1, np.zeros(5)), Relu(), Keep(), Affine(W2, np.zeros(3))])
    plain = Sequential(
        [Affine(W1.copy(), np.zeros(5)), Relu(), Keep(), Affine(W2.copy(), np.zeros(3))]
    )
    x, t = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    net.sgd_step(x, t, 0.1)
    unfused_step(plain, x, t, 0.1)
    assert not net.layers[1].mask.all()  # a Relu in place would zero some of Keep's array
    np.testing.assert_array_equal(net.layers[2].dx, net.layers[2].returned)
    for key in net.params:
        np.testing.assert_allclose(net.params[key], plain.params[key], rtol=1e-12, atol=1e-14)


def test_fused_step_keeps_gradients_handed_out_before(rng):
    """Arrays from an earlier ``gradient`` call are the learner's: the step never writes them."""
    net = Sequential.mlp((400, 200, 10), seed=0)
    x, t = rng.standard_normal((64, 400)), rng.integers(0, 10, 64)
    grads = net.gradient(x, t)
    kept = {k: g.copy() for k, g in grads.items()}
    net.sgd_step(x, t, 0.1)
    for k in grads:
        np.testing.assert_array_equal(grads[k], kept[k])
    # and no stale gradients are left in the net to be mistaken for this step's
    assert net.grads == {}
    assert all(layer.grads == {} for layer in net.layers if hasattr(layer, "grads"))


def test_fused_step_flattens_images_and_leaves_the_batch_alone(rng):
    net, plain = Sequential.mlp((64, 200, 10), seed=0), Sequential.mlp((64, 200, 10), seed=0)
    x, t = rng.standard_normal((32, 8, 8)), rng.integers(0, 10, 32)
    x_before = x.copy()
    net.sgd_step(x, t, 0.1)
    unfused_step(plain, x, t, 0.1)
    np.testing.assert_array_equal(x, x_before)
    for key in net.params:
        np.testing.assert_allclose(net.params[key], plain.params[key], rtol=1e-12, atol=1e-14)


def test_fused_step_without_numpys_openblas(rng, monkeypatch):
    monkeypatch.setattr(blas, "gemm_for", lambda dtype: None)
    net, plain = Sequential.mlp((400, 200, 10), seed=0), Sequential.mlp((400, 200, 10), seed=0)
    x, t = rng.standard_normal((64, 400)), rng.integers(0, 10, 64)
    net.sgd_step(x, t, 0.1)
    unfused_step(plain, x, t, 0.1)
    for key in net.params:
        np.testing.assert_allclose(net.params[key], plain.params[key], rtol=1e-12, atol=1e-14)


class GradientOnly:
    """A net with only the learner's protocol (params, gradient, last_loss, predict)."""

    def __init__(self, net):
        self.net, self.params = net, net.params

    def gradient(self, x, t):
        grads = self.net.gradient(x, t)
        self.last_loss = self.net.last_loss
        return grads

    def predict(self, x):
        return self.net.predict(x)

    def accuracy(self, x, t):
        return self.net.accuracy(x, t)


def test_train_takes_fused_steps_with_the_same_history():
    X_train, y_train, X_val, y_val = digits_split(0.2, seed=0)
    runs = []
    for wrap in (lambda net: net, GradientOnly):
        net = TwoLayerNet(64, 64, 10, weight_init_std=0.01, seed=0)
        runs.append(train(wrap(net), X_train, y_train, X_val, y_val, 2, 0.1, 32))
    fused, plain = runs
    np.testing.assert_allclose(fused["loss"], plain["loss"], rtol=1e-9)
    assert fused["val_acc"] == plain["val_acc"]


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


@pytest.mark.parametrize(
    ("swap", "says"),
    [
        ({"y_train": "X_val"}, "X_train has 40 samples but y_train has 20 labels: the order is"),
        ({"batch_size": 0}, "batch_size must be a whole number, at least 1; got 0"),
        ({"batch_size": 8.0}, "batch_size must be a whole number, at least 1; got 8.0"),
        ({"epochs": 2.5}, "epochs must be a whole number, at least 0; got 2.5"),
    ],
)
def test_train_says_which_argument_cannot_train(swap, says):
    rng = np.random.default_rng(0)
    args = {
        "X_train": rng.normal(size=(40, 4)),
        "y_train": rng.integers(0, 3, size=40),
        "X_val": rng.normal(size=(20, 4)),
        "y_val": rng.integers(0, 3, size=20),
        "epochs": 1,
        "batch_size": 8,
    }
    args |= {k: args[v] if isinstance(v, str) else v for k, v in swap.items()}
    with pytest.raises(ValueError, match=re.escape(says)):
        train(TwoLayerNet(4, 5, 3, seed=0), lr=0.1, **args)

"""Every layer's backward against numerical gradients, and the layer protocol's promises."""

import re

import numpy as np
import pytest
from backprop.gradcheck import check_backward, check_gradient, numerical_gradient
from backprop.layers import Add, Affine, MSELoss, Mul, Relu, Sigmoid, SoftmaxWithLoss

BATCHES = [1, 7]


def away_from_kink(x, margin=1e-2):
    """Push entries of ``x`` with |x| < margin out to +-margin (numerical gradients of ReLU)."""
    return np.where(np.abs(x) < margin, np.copysign(margin, x), x)


def check_layer(name, forward, backward, inputs, rng):
    """Compare ``backward(dout)`` with numerical gradients of sum(forward(*inputs) * dout).

    ``inputs``: list of float64 arrays; ``backward`` returns one gradient or a tuple of them.
    Also checks that backward leaves dout unchanged and returns new arrays.
    """
    out = forward(*inputs)
    dout = rng.standard_normal(np.shape(out))
    grads = check_backward(backward, dout, name)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert len(grads) == len(inputs)
    for i, (x, g) in enumerate(zip(inputs, grads, strict=True)):
        numeric = numerical_gradient(lambda _: float(np.sum(forward(*inputs) * dout)), x)
        check_gradient(f"{name} d input {i}", g, numeric, rtol=1e-6, atol=1e-8)
    return out, grads


@pytest.mark.parametrize("n", BATCHES)
def test_mul_and_add(n, rng):
    x, y = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    layer = Mul()
    check_layer("Mul", layer.forward, layer.backward, [x, y], rng)
    layer = Add()
    check_layer("Add", layer.forward, layer.backward, [x, y], rng)


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("layer_class", [Relu, Sigmoid])
def test_activations(layer_class, n, rng):
    x = away_from_kink(rng.standard_normal((n, 5)) * 3)
    layer = layer_class()
    check_layer(layer_class.__name__, layer.forward, layer.backward, [x], rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layer_class", [Relu, Sigmoid])
def test_backward_inplace_writes_backward_into_dout(layer_class, dtype, rng):
    layer = layer_class()
    layer.forward((rng.standard_normal((7, 5)) * 3).astype(dtype))
    dout = rng.standard_normal((7, 5)).astype(dtype)
    expected = layer.backward(dout)
    dx = layer.backward_inplace(dout)
    assert dx is dout and dx.dtype == dtype
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("n", BATCHES)
def test_affine(n, rng):
    D, M = 4, 3
    x, W, b = rng.standard_normal((n, D)), rng.standard_normal((D, M)), rng.standard_normal(M)
    layer = Affine(W, b)
    out = layer.forward(x)
    assert out.shape == (n, M)
    dout = rng.standard_normal(out.shape)
    dx = check_backward(layer.backward, dout, "Affine dx")

    def loss(_):
        return float(np.sum(layer.forward(x) * dout))

    check_gradient("dx", dx, numerical_gradient(loss, x))
    check_gradient("dW", layer.grads["W"], numerical_gradient(loss, W))
    check_gradient("db", layer.grads["b"], numerical_gradient(loss, b))
    assert layer.grads["b"].shape == (M,)


def test_affine_flattens_images(rng):
    x = rng.standard_normal((2, 3, 4))
    layer = Affine(rng.standard_normal((12, 5)), np.zeros(5))
    layer.forward(x)
    assert layer.backward(np.ones((2, 5))).shape == x.shape


@pytest.mark.parametrize("n", BATCHES)
def test_softmax_with_loss(n, rng):
    C = 4
    x, t = rng.standard_normal((n, C)), rng.integers(0, C, n)
    layer = SoftmaxWithLoss()
    layer.forward(x, t)
    dx = check_backward(layer.backward, 1.0, "SoftmaxWithLoss dx")
    numeric = numerical_gradient(lambda _: layer.forward(x, t), x)
    check_gradient("dx", dx, numeric, batch_size=n)
    layer.forward(x, np.eye(C)[t])  # one-hot labels give the same loss and gradient
    check_gradient("dx (one-hot)", layer.backward(), dx)


@pytest.mark.parametrize("n", BATCHES)
def test_mse_loss(n, rng):
    y, t = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    layer = MSELoss()
    layer.forward(y, t)
    dy = layer.backward()
    check_gradient("dy", dy, numerical_gradient(lambda _: layer.forward(y, t), y), batch_size=n)


def test_fan_out_gradients_add_up(rng):
    """y = relu(z) + z: z feeds two branches, so dz = dout * (z > 0) + dout."""
    z = away_from_kink(rng.standard_normal((7, 3)))
    relu, add = Relu(), Add()

    def forward(z):
        return add.forward(relu.forward(z), z)

    out = forward(z)
    dout = rng.standard_normal(out.shape)
    d_relu_out, d_z_direct = add.backward(dout)
    dz = relu.backward(d_relu_out) + d_z_direct
    numeric = numerical_gradient(lambda _: float(np.sum(forward(z) * dout)), z)
    check_gradient("dz", dz, numeric)
    check_gradient("dz", dz, dout * (z > 0) + dout)


def test_backward_returns_new_arrays(rng):
    """No layer hands dout back as its own gradient (a later in-place change would hit both)."""
    dout = rng.standard_normal((2, 3))
    add = Add()
    add.forward(dout, dout)
    dx, dy = add.backward(dout)
    assert dx is not dout and dy is not dout and dx is not dy


def test_float32_stays_float32(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    layer = Affine(rng.standard_normal((4, 2)).astype(np.float32), np.zeros(2, np.float32))
    assert layer.forward(x).dtype == np.float32
    assert layer.backward(np.ones((3, 2), np.float32)).dtype == np.float32
    assert Sigmoid().forward(x).dtype == np.float32


@pytest.mark.parametrize(
    ("labels", "says"),
    [
        (np.array([0.0, 2.0, 1.0]), "dtype float64: use integer class indices, t.astype(int)"),
        (np.array([[0], [2], [1]]), "shape (3, 1): pass them as (3,) class indices"),
        (np.array([0, 2]), "shape (2,), for 3 samples and 4 classes"),
        (np.array([0, 4, 1]), "label 4 is no class of the 4 scores (0 to 3)"),
        (np.array([0, -1, 1]), "label -1 is no class of the 4 scores"),
    ],
)
def test_labels_that_would_index_the_wrong_scores_are_refused_with_why(labels, says):
    scores = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(ValueError, match=re.escape(says)):
        SoftmaxWithLoss().forward(scores, labels)


def test_one_hot_labels_give_the_same_loss_and_accuracy_as_indices():
    from backprop.net import TwoLayerNet

    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(6, 5)), np.array([0, 2, 1, 2, 0, 1])
    one_hot = np.eye(3)[t]
    net = TwoLayerNet(5, 4, 3, seed=0)
    assert net.loss(x, one_hot) == net.loss(x, t)
    assert net.accuracy(x, one_hot) == net.accuracy(x, t)


@pytest.mark.parametrize(
    ("layer", "dout"),
    [
        (Relu(), np.ones((2, 3))),
        (Sigmoid(), np.ones((2, 3))),
        (Affine(np.ones((4, 3)), np.zeros(3)), np.ones((2, 3))),
        (SoftmaxWithLoss(), 1.0),
        (MSELoss(), 1.0),
        (Mul(), 1.0),
    ],
    ids=lambda v: type(v).__name__,
)
def test_backward_before_forward_says_to_call_forward_first(layer, dout):
    with pytest.raises(AttributeError, match="call forward before backward"):
        layer.backward(dout)
    assert not hasattr(layer, "anything") and not hasattr(layer, "kept_by_no_layer")


def test_affine_backward_refuses_a_dout_of_another_layer():
    layer = Affine(np.ones((4, 3)), np.zeros(3))
    layer.forward(np.ones((2, 4)))
    # the first layer's backward given the last layer's dout: the layers walked forwards
    for method in (layer.backward, layer.param_backward, lambda d: layer.sgd_backward(d, 0.1)):
        with pytest.raises(ValueError, match=r"dout of shape \(2, 6\).*reverse order"):
            method(np.ones((2, 6)))
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):  # broadcast: a wrong db silently
        layer.backward(np.ones((2, 1)))
    np.testing.assert_array_equal(layer.params["W"], 1.0)  # nothing moved

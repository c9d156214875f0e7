"""Activation functions and losses: values, stability at extreme inputs, derivatives."""

import re

import numpy as np
import pytest
from backprop import functions as F
from backprop.gradcheck import check_gradient, numerical_gradient

EXTREMES = np.array([-1000.0, -710.0, -50.0, 0.0, 50.0, 710.0, 1000.0])


@pytest.mark.filterwarnings("error")
def test_sigmoid_is_stable_at_extremes():
    with np.errstate(all="raise", under="ignore"):
        s = F.sigmoid(EXTREMES)
    assert not np.isnan(s).any()
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    assert F.sigmoid(-1000.0) == 0.0 and F.sigmoid(1000) == 1.0


@pytest.mark.filterwarnings("error")
def test_softmax_is_stable_at_extremes():
    with np.errstate(all="raise", under="ignore"):
        p = F.softmax(np.array([[-1000.0, 0.0, 1000.0], [1000.0, 1000.0, -1000.0]]))
    assert not np.isnan(p).any()
    np.testing.assert_allclose(p, [[0, 0, 1], [0.5, 0.5, 0]])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


@pytest.mark.parametrize("shape", [(5,), (7, 3), (1438, 10)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_softmax_of_any_batch_keeps_a_float_dtype_and_the_input(shape, dtype, rng):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    before = x.copy()
    p = F.softmax(x)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    expected = e / e.sum(axis=-1, keepdims=True)
    assert p.shape == shape and p.flags.c_contiguous
    assert p.dtype == (np.float32 if dtype == np.float32 else np.float64)
    np.testing.assert_allclose(p, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(x, before)


def test_sigmoid_prime_matches_numerical_derivative(rng):
    z = rng.standard_normal(10) * 4
    numeric = numerical_gradient(lambda x: float(np.sum(F.sigmoid(x))), z.copy())
    check_gradient("sigmoid_prime", F.sigmoid_prime(z), numeric, rtol=1e-6)
    assert F.sigmoid_prime(0.0) == 0.25


def test_relu_and_its_derivative():
    z = np.array([-2.0, -0.0, 0.5, 3.0])
    np.testing.assert_array_equal(F.relu(z), [0, 0, 0.5, 3])
    np.testing.assert_array_equal(F.relu_prime(z), [0, 0, 1, 1])


def test_losses():
    y = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    t = np.array([1, 0])
    expected = -(np.log(0.7) + np.log(0.5)) / 2
    assert F.cross_entropy(y, t) == pytest.approx(expected)
    assert F.cross_entropy(y, F.one_hot(t, 3)) == pytest.approx(expected)
    assert F.mean_squared_error(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]])) == 5.0


def test_cross_entropy_of_one_sample_and_of_labels_it_cannot_use():
    y = np.array([0.1, 0.7, 0.2])
    assert F.cross_entropy(y, 1) == pytest.approx(-np.log(0.7))
    assert F.cross_entropy(y, np.array([0.0, 1.0, 0.0])) == pytest.approx(-np.log(0.7))
    batch = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    # each of these used to pick some entry of y without a word
    for labels, says in [
        (np.array([1.0, 0.0]), "dtype float64"),
        (np.array([[1], [0]]), "shape (2, 1)"),
        (np.array([1, -1]), "label -1 is no class"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            F.cross_entropy(batch, labels)

"""``add_product``: C += alpha * A @ B in place, through numpy's own OpenBLAS or numpy itself."""

import sys

import numpy as np
import pytest
from backprop import blas

# (M, K, N): C large enough for the GEMM path (at least MIN_BLAS_OUTPUT entries), and odd
# enough to catch a swapped leading dimension.
SHAPE = (260, 130, 270)
DTYPES = [np.float64, np.float32]
TOLERANCE = {np.float64: 1e-12, np.float32: 2e-5}


@pytest.fixture
def gemm_calls(monkeypatch):
    """A list that gets one entry per GEMM call (the fallback makes none)."""
    calls = []
    found = blas.gemm_for

    def counting(dtype):
        gemm = found(dtype)
        if gemm is None:
            return None
        return lambda *args: calls.append(dtype) or gemm(*args)

    monkeypatch.setattr(blas, "gemm_for", counting)
    return calls


def operands(rng, dtype, order_a="C", order_b="C"):
    m, k, n = SHAPE
    A = np.asarray(rng.standard_normal((m, k)), dtype=dtype, order=order_a)
    B = np.asarray(rng.standard_normal((k, n)), dtype=dtype, order=order_b)
    C = rng.standard_normal((m, n)).astype(dtype)
    return C, A, B


def expected(C, A, B, alpha):
    return C.astype(np.float64) + alpha * (A.astype(np.float64) @ B.astype(np.float64))


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the wheel layout checked is Linux's"
)
def test_numpys_openblas_is_found():
    """On Linux numpy's wheel ships its OpenBLAS in numpy.libs: the fast path must be there."""
    assert blas._library_files(), "no OpenBLAS next to numpy"
    assert blas.gemm_for(np.float64) is not None and blas.gemm_for(np.float32) is not None
    assert blas.gemm_for(np.int64) is None and blas.gemm_for(np.complex128) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order_a", ["C", "F"])
@pytest.mark.parametrize("order_b", ["C", "F"])
@pytest.mark.parametrize("alpha", [1.0, -0.01])
def test_gemm_path_adds_the_product(dtype, order_a, order_b, alpha, rng, gemm_calls):
    C, A, B = operands(rng, dtype, order_a, order_b)
    want = expected(C, A, B, alpha)
    assert blas.add_product(C, A, B, alpha) is C
    np.testing.assert_allclose(C, want, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    if blas.gemm_for(dtype) is not None:
        assert gemm_calls == [np.dtype(dtype)]


def test_transposed_views_as_the_affine_layer_passes_them(rng, gemm_calls):
    """W += -lr * x.T @ dout with x (N, D) and dout (N, M): the layer's very call."""
    x, dout = rng.standard_normal((256, 300)), rng.standard_normal((256, 250))
    W = rng.standard_normal((300, 250))
    want = W - 0.1 * (x.T @ dout)
    blas.add_product(W, x.T, dout, -0.1)
    np.testing.assert_allclose(W, want, rtol=1e-12, atol=1e-12)
    assert len(gemm_calls) == (blas.gemm_for(np.float64) is not None)


def strided(rng, dtype):
    C, A, B = operands(rng, dtype)
    wide = np.repeat(A, 2, axis=1)
    wide[:, ::2] = A
    return C, wide[:, ::2], B


def overlapping(rng, dtype):
    square = rng.standard_normal((2, 256, 256)).astype(dtype)
    return square[0], square[0], square[1]


def f_ordered_out(rng, dtype):
    C, A, B = operands(rng, dtype)
    return np.asfortranarray(C), A, B


def mixed_dtypes(rng, dtype):
    C, A, B = operands(rng, dtype)
    return C, A.astype(np.float64), B.astype(np.float32)


def small(rng, dtype):
    A, B = rng.standard_normal((8, 5)).astype(dtype), rng.standard_normal((5, 6)).astype(dtype)
    return rng.standard_normal((8, 6)).astype(dtype), A, B


def integers(rng, dtype):
    return np.zeros((4, 3), np.int64), np.ones((4, 2), np.int64), np.ones((2, 3), np.int64)


@pytest.mark.parametrize(
    "make", [strided, overlapping, f_ordered_out, mixed_dtypes, small, integers]
)
def test_what_gemm_cannot_take_falls_back_to_numpy(make, rng, gemm_calls):
    """Strided views, an output that is an operand, F order, mixed dtypes, tiny products and
    integers: numpy computes them, with the same result."""
    C, A, B = make(rng, np.float32)
    want = expected(C, A, B, 1)
    blas.add_product(C, A, B)
    np.testing.assert_allclose(C, want.astype(C.dtype), rtol=2e-5, atol=2e-5)
    assert gemm_calls == []


@pytest.mark.parametrize("dtype", DTYPES)
def test_without_numpys_openblas_the_result_is_the_same(dtype, rng, monkeypatch):
    """Other BLAS builds (conda's MKL, Apple's Accelerate): numpy's @ and an add."""
    C, A, B = operands(rng, dtype, "F", "C")
    fast = C.copy()
    blas.add_product(fast, A, B, -0.5)
    monkeypatch.setattr(blas, "gemm_for", lambda dtype: None)
    blas.add_product(C, A, B, -0.5)
    np.testing.assert_allclose(C, fast, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])

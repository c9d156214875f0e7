"""``C += alpha * A @ B`` in place, through the BLAS that numpy itself calls.

numpy's ``@`` always writes its product to a fresh array (a GEMM with beta = 0), so an SGD
update written as ``W -= lr * x.T @ dout`` makes a temporary as large as ``W`` and then reads
and writes ``W`` once more. BLAS's GEMM computes ``C = alpha * A @ B + beta * C``: with
beta = 1 the update is added while the product is formed, with no temporary and no extra pass.

``add_product`` calls that GEMM in the OpenBLAS library shipped inside numpy's wheels when it
finds it, and otherwise computes ``C += alpha * (A @ B)`` with numpy: the same result up to
rounding, only slower. The fallback covers other BLAS builds, dtypes other than float32 and
float64, small outputs, and operands that BLAS cannot read in place (strided views, overlapping
memory). ``threads()`` tells how many threads that library computes a product with.
"""

import ctypes
import functools
import pathlib

import numpy as np

# CBLAS constants: row-major storage, operand as stored, operand transposed.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

# Outputs with fewer entries than this go through numpy: for them the pass over C that GEMM
# saves is worth less than a ctypes call's few microseconds, and numpy's own product can be the
# faster one (a small C over a long inner dimension, e.g. a 64x64 W at a batch of 1438).
MIN_BLAS_OUTPUT = 1 << 16
# Symbols of the 64-bit-integer OpenBLAS that numpy >= 2.0 wheels ship, per dtype.
SYMBOLS = {
    np.dtype(np.float64): "scipy_cblas_dgemm64_",
    np.dtype(np.float32): "scipy_cblas_sgemm64_",
}
SCALARS = {np.dtype(np.float64): ctypes.c_double, np.dtype(np.float32): ctypes.c_float}
# Its thread count (set by OPENBLAS_NUM_THREADS when numpy is imported).
THREADS = "scipy_openblas_get_num_threads64_"


def _library_files():
    """Files that may hold numpy's bundled OpenBLAS: ``numpy.libs`` next to the package
    (Linux and Windows wheels) and ``numpy/.dylibs`` (macOS wheels)."""
    package = pathlib.Path(np.__file__).parent
    folders = [package.parent / "numpy.libs", package / ".dylibs"]
    return sorted(p for folder in folders if folder.is_dir() for p in folder.glob("*openblas*"))


@functools.cache
def _openblas():
    """numpy's bundled OpenBLAS, loaded with ctypes, or None when it is not found."""
    for path in _library_files():
        try:
            library = ctypes.CDLL(str(path))
        except OSError:
            continue
        if all(hasattr(library, symbol) for symbol in SYMBOLS.values()):
            return library
    return None


@functools.cache
def gemm_for(dtype):
    """The ctypes GEMM function for ``dtype`` from numpy's bundled OpenBLAS, or None."""
    dtype = np.dtype(dtype)
    library = _openblas()
    if dtype not in SYMBOLS or library is None:
        return None
    gemm = getattr(library, SYMBOLS[dtype])
    size, scalar, pointer = ctypes.c_int64, SCALARS[dtype], ctypes.c_void_p
    gemm.restype = None
    gemm.argtypes = [ctypes.c_int] * 3 + [size] * 3 + [scalar, pointer, size]
    gemm.argtypes += [pointer, size, scalar, pointer, size]
    return gemm


def threads():
    """How many threads numpy's bundled OpenBLAS computes a product with, or None when it is
    not found (another BLAS, whose threads only its own environment variables tell)."""
    get = getattr(_openblas(), THREADS, None)
    if get is None:
        return None
    get.restype = ctypes.c_int
    return int(get())


def _operand(a):
    """``(transpose flag, leading dimension)`` for a 2-D operand BLAS can read where it lies,
    or None. A C-ordered (rows, cols) array is passed as stored; an F-ordered one is the
    C-ordered (cols, rows) array, passed transposed."""
    rows, cols = a.shape
    if a.flags.c_contiguous:
        return NO_TRANS, max(1, cols)
    if a.flags.f_contiguous:
        return TRANS, max(1, rows)
    return None


def _blas_ready(C, A, B):
    """Whether GEMM may work on these arrays in place: 2-D, matching shapes, ``C`` of at least
    ``MIN_BLAS_OUTPUT`` entries, one BLAS dtype, aligned, ``C`` C-ordered and writeable and
    sharing no memory with ``A`` or ``B``."""
    arrays = (C, A, B)
    if any(not isinstance(a, np.ndarray) or a.ndim != 2 for a in arrays):
        return False
    (m, k), (k2, n) = A.shape, B.shape
    if C.shape != (m, n) or k != k2 or k == 0 or m * n < MIN_BLAS_OUTPUT:
        return False
    if not (A.dtype == B.dtype == C.dtype) or C.dtype not in SYMBOLS:
        return False
    if not all(a.flags.aligned for a in arrays):
        return False
    if not (C.flags.c_contiguous and C.flags.writeable):
        return False
    return not (np.may_share_memory(C, A) or np.may_share_memory(C, B))


def add_product(C, A, B, alpha=1):
    """``C += alpha * A @ B`` in place.   A: (M, K), B: (K, N), C: (M, N).

    One GEMM with beta = 1 when numpy's OpenBLAS is at hand and the arrays allow it, else
    numpy's ``@`` and an in-place add. Returns ``C``.
    """
    if _blas_ready(C, A, B):
        gemm, layout_a, layout_b = gemm_for(C.dtype), _operand(A), _operand(B)
        if gemm is not None and layout_a and layout_b:
            (m, k), n = A.shape, B.shape[1]
            (trans_a, lda), (trans_b, ldb) = layout_a, layout_b
            a, b, c = A.ctypes.data, B.ctypes.data, C.ctypes.data
            gemm(ROW_MAJOR, trans_a, trans_b, m, n, k, float(alpha), a, lda, b, ldb, 1.0, c, n)
            return C
    C += alpha * (A @ B)
    return C

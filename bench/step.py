"""Training step of the library's nets against PyTorch CPU, GEMM efficiency, and gradients
against PyTorch autograd."""

import numpy as np
from backprop.data import digits_split
from backprop.net import Sequential
from backprop.optim import SGD

from .reference import TorchTwin, torch_module
from .report import section, table
from .timing import interleaved_groups

LR = 0.01
# (layer sizes, batch label, batch size or None for the whole digits training set)
CASES = [
    ((64, 64, 10), "32", 32),
    ((64, 64, 10), "full", None),
    ((784, 256, 10), "128", 128),
    ((784, 1024, 1024, 10), "256", 256),
]
DTYPES = [np.float64, np.float32]
GEMM_SIZE = 512
GEMM_FLOPS = 2 * GEMM_SIZE**3
ROUNDS = 21
LARGE = {(784, 256, 10), (784, 1024, 1024, 10)}
# The targets: the larger nets at most LARGE_RATIO x PyTorch's step time and at least
# LARGE_SHARE % of the GEMM peak; batch 32 at most SMALL_RATIO x PyTorch's.
LARGE_RATIO, LARGE_SHARE, SMALL_RATIO = 1.0, 75, 0.5


def step_flops(sizes, n):
    """Floating-point operations of the matrix products in one step at batch ``n``.

    Forward ``x @ W``, backward ``x.T @ dout`` and ``dout @ W.T`` (2 n D M each), except the
    first layer's gradient with respect to the data, which no trainer computes.
    """
    pairs = list(zip(sizes[:-1], sizes[1:], strict=False))
    return sum(6 * n * d * m for d, m in pairs) - 2 * n * pairs[0][0] * pairs[0][1]


def gemm_operands(dtype):
    """Two square matrices whose product measures numpy's GEMM peak.

    The product is timed in turn with each step (``interleaved_groups``), so the share of peak
    compares figures taken under the same machine load.
    """
    rng = np.random.default_rng(0)
    shape = (GEMM_SIZE, GEMM_SIZE)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


def case_data(sizes, n, dtype):
    """Inputs and labels: the digits for 64-input nets, seeded normal data otherwise."""
    if sizes[0] == 64:
        X, y, _, _ = digits_split()
        n = n or len(X)
        return X[:n].astype(dtype), y[:n]
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, sizes[0])).astype(dtype), rng.integers(0, sizes[-1], n)


def library_step(net, X, y):
    """One training step of the library, as ``train`` takes it: ``net.sgd_step``, the SGD
    update fused into the backward pass."""
    return lambda: net.sgd_step(X, y, LR)


def unfused_step(net, X, y):
    """The textbook step: ``net.gradient``, then ``SGD.step`` on the gradients it returns."""
    optimiser = SGD(LR)
    return lambda: optimiser.step(net.params, net.gradient(X, y))


def step_gemms(sizes, X, dtype):
    """The matrix products of one library step alone, same shapes and transposes (the floor
    for the library's step: what numpy's BLAS takes for them)."""
    rng = np.random.default_rng(2)
    n = len(X)
    x = X.reshape(n, -1)
    pairs = zip(sizes[:-1], sizes[1:], strict=True)
    Ws = [rng.standard_normal(pair).astype(dtype) for pair in pairs]
    acts = [x] + [rng.standard_normal((n, m)).astype(dtype) for m in sizes[1:-1]]
    douts = [rng.standard_normal((n, m)).astype(dtype) for m in sizes[1:]]

    def gemms():
        for a, W in zip(acts, Ws, strict=True):
            a @ W
        for k, (a, W, dout) in enumerate(zip(acts, Ws, douts, strict=True)):
            a.T @ dout
            if k:
                dout @ W.T

    return gemms


def grad_differences(torch, sizes, X, y, dtype):
    """``(absolute, relative)``: max |library - autograd| over every gradient entry, and the
    largest of those per parameter divided by the parameter's largest |gradient|; fresh nets
    with equal weights."""
    net = Sequential.mlp(sizes, seed=0, dtype=dtype)
    twin = TorchTwin(torch, net, X, y, LR)
    ours = net.gradient(X, y)
    twin.backward()
    theirs = twin.grads()
    diffs = {k: float(np.max(np.abs(ours[k] - theirs[k]))) for k in ours}
    relative = max(diffs[k] / max(float(np.max(np.abs(theirs[k]))), 1e-300) for k in ours)
    return max(diffs.values()), relative


def measure():
    """Rows of the step table and of the gradient table."""
    torch = torch_module()
    peaks = {}
    step_rows, grad_rows = [], []
    cases = []
    for sizes, label, n in CASES:
        for dtype in DTYPES:
            X, y = case_data(sizes, n, dtype)
            net = Sequential.mlp(sizes, seed=0, dtype=dtype)
            a, b = gemm_operands(dtype)
            candidates = {
                "gemm": lambda a=a, b=b: a @ b,
                "numpy": library_step(net, X, y),
                "unfused": unfused_step(Sequential.mlp(sizes, seed=0, dtype=dtype), X, y),
                "gemms": step_gemms(sizes, X, dtype),
            }
            if torch is not None:
                twin = TorchTwin(torch, Sequential.mlp(sizes, seed=0, dtype=dtype), X, y, LR)
                candidates["torch"] = twin.step
            cases.append((sizes, label, n, dtype, X, y, candidates))
    timed = interleaved_groups([case[-1] for case in cases], rounds=ROUNDS)
    for (sizes, label, n, dtype, X, y, _), times in zip(cases, timed, strict=True):
        peaks.setdefault(dtype, []).append(GEMM_FLOPS / times["gemm"] / 1e9)
        flops = step_flops(sizes, len(X))
        gflops = flops / times["numpy"] / 1e9

        def share(name, flops=flops, times=times):
            """The step's FLOP rate over the GEMM's, both from the same round, in %."""
            return 100 * flops / GEMM_FLOPS * times.ratio("gemm", name)

        name = "-".join(map(str, sizes))
        row = [name, f"{label} ({len(X)})", np.dtype(dtype).name, f"{times['numpy'] * 1e3:.3f}"]
        if torch is None:
            row += ["not installed"] * 4
            grad_cells = ["not installed"] * 2
        else:
            row += [
                f"{times['torch'] * 1e3:.3f}",
                f"{times.ratio('numpy', 'torch'):.2f}x",
                f"{times.ratio('unfused', 'torch'):.2f}x",
                f"{times.ratio('gemms', 'torch'):.2f}x",
            ]
            grad_cells = [f"{d:.1e}" for d in grad_differences(torch, sizes, X, y, dtype)]
        shares = [f"{share(name):.1f} %" for name in ("numpy", "gemms")]
        shares.append("not installed" if torch is None else f"{share('torch'):.1f} %")
        against_torch = None if torch is None else times.ratio("numpy", "torch")
        row += [f"{gflops:.1f}", *shares, target(sizes, n)]
        row.append(verdict(sizes, n, against_torch, share("numpy")))
        step_rows.append(row)
        grad_rows.append([name, f"{label} ({len(X)})", np.dtype(dtype).name, *grad_cells])
    return peaks, step_rows, grad_rows


def target(sizes, n):
    """The issue's target for this case, as text."""
    if tuple(sizes) in LARGE:
        return f"<= {LARGE_RATIO}x, >= {LARGE_SHARE} % of peak"
    if n == 32:
        return f"<= {SMALL_RATIO}x"
    return ""


def verdict(sizes, n, against_torch, share):
    """ "met" or "missed" for a case with a target ("" without one): the step's time over
    PyTorch's (None when PyTorch is not installed: only the share is judged) and its share of
    the GEMM peak in %."""
    if tuple(sizes) in LARGE:
        met = share >= LARGE_SHARE and (against_torch is None or against_torch <= LARGE_RATIO)
    elif n == 32:
        if against_torch is None:
            return "not measured"
        met = against_torch <= SMALL_RATIO
    else:
        return ""
    return "met" if met else "missed"


def run():
    """The two sections as markdown."""
    peaks, step_rows, grad_rows = measure()
    peak_note = ", ".join(
        f"{np.dtype(d).name} {min(p):.1f}-{max(p):.1f} GFLOP/s" for d, p in peaks.items()
    )
    steps = section(
        "Training step: library against PyTorch CPU",
        table(
            [
                "net",
                "batch",
                "dtype",
                "library ms",
                "PyTorch ms",
                "library / PyTorch",
                "unfused / PyTorch",
                "its matrix products alone / PyTorch",
                "GFLOP/s",
                "share of GEMM peak",
                "its matrix products alone: share",
                "PyTorch's share",
                "target",
                "",
            ],
            step_rows,
        ),
        notes=[
            "One step = forward, backward, SGD update (lr 0.01); both start from the same weights.",
            f"{ROUNDS} rounds, every candidate of every row timed in turn in each (so that a"
            " burst of load on the machine falls on a few rounds of every row, not on all rounds"
            " of one), over about 20 ms after one call that is not timed (so that no candidate"
            " pays for the caches the one before it left cold, as a step in a training loop"
            " never does); times are medians, ratios and shares the median over rounds of the"
            " ratio within a round.",
            "The library's step is `net.sgd_step`, as `train` takes it: each layer's update is"
            " fused into the backward pass, W moved by one matrix product that adds -lr x.T dout"
            " into it (BLAS GEMM with beta = 1). Unfused: `net.gradient`, then `SGD.step` on"
            " the gradients it returns, the way notebook 5 writes the loop.",
            f"GEMM peak: numpy {GEMM_SIZE}x{GEMM_SIZE} product timed in turn with each step"
            f" (range over the rows): {peak_note}.",
            "GFLOP/s counts the matrix products a step needs: forward, dW and dx of every layer"
            " but the first (no trainer computes the gradient with respect to the data).",
            "Its matrix products alone: those same products, as numpy's BLAS computes them, with"
            " nothing else of the step, against PyTorch's whole step: the least the library's"
            " step can take next to PyTorch's with numpy. Their share of the peak is the most"
            " any numpy step of these shapes can reach; PyTorch's share counts the same FLOPs"
            " over PyTorch's step time.",
        ],
    )
    grads = section(
        "Gradients: library against PyTorch autograd",
        table(
            ["net", "batch", "dtype", "max abs difference", "largest relative difference"],
            grad_rows,
        ),
        notes=[
            "Same weights and batch; every entry of every W and b compared. Relative: a"
            " parameter's max abs difference over its largest |gradient|, the worst parameter.",
            "In float32 a pre-activation within rounding of 0 (about 1e-7) can fall on the other"
            " side of ReLU's kink in the other library: the whole mask entry flips, and the"
            " layer below gets one sample's contribution more or less (a relative difference of"
            " a few %, in that layer only). float64 showed none here.",
        ],
    )
    return steps + "\n" + grads

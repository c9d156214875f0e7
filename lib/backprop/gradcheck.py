"""Numerical gradients, relative error, and a diagnosis of the usual backprop mistakes.

``check_gradient(name, got, expected)`` is what every test in the course calls. It passes
silently when ``got`` matches ``expected``; otherwise it raises ``GradientMistake`` (an
``AssertionError``) whose message names the likely mistake in a sentence a learner can act on,
gives the relative error, and ends with a tag such as ``[mistake: sign-flipped]`` that the grader
counts across a class.

The checks run in order: not implemented, wrong type or dtype, wrong shape, then values. For
wrong values the rows of ``BANK`` are tried one by one; the first whose test holds names the
mistake. Adding a mistake is one row.
"""

import itertools
import re
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .explain import error_line, where_in_yours

TAG = "[mistake: {}]"
MAX_BATCH = 100_000  # the largest 1/k read as a mean over a batch of k
NOT_IMPLEMENTED = "{name} is not implemented yet: fill in the answer cell."
SLOW = 2.0  # seconds: a numerical gradient expected to take longer shows a progress bar
TAG_PATTERN = re.compile(r"\[mistake: ([\w/-]+)\]")


def mistakes_in(text):
    """The mistake keys tagged in ``text`` (a test's error output), in order of appearance."""
    return TAG_PATTERN.findall(text)


class GradientMistake(AssertionError):
    """A gradient that does not match; ``mistake`` is the key of the diagnosed mistake."""

    def __init__(self, message, mistake, name):
        super().__init__(message)
        self.mistake = mistake
        self.name = name


def _nudgeable(x):
    """``TypeError`` saying what to pass unless ``x`` is a numpy array of floats, which a
    numerical gradient nudges in place (an int array would round every nudge away)."""
    if not isinstance(x, np.ndarray) or x.ndim == 0:
        raise TypeError(
            f"x is a {type(x).__name__}: pass a numpy array of floats, which is nudged in "
            "place, e.g. np.array([1.0])"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"x has dtype {x.dtype}: a nudge of h would be rounded away; pass x.astype(float)"
        )


def _scalar(value):
    """``value``, the loss ``f`` returned, unless it is not one number (``TypeError``)."""
    if value is None or np.ndim(value) != 0:
        got = "None" if value is None else f"an array of shape {np.shape(value)}"
        raise TypeError(f"f must return one number (a sum or a mean); it returned {got}")
    return value


def _centred_difference(f, x, idx, h):
    """(f(x + h e_idx) - f(x - h e_idx)) / 2h, perturbing ``x[idx]`` in place and restoring it."""
    old = x[idx]
    x[idx] = old + h
    f_plus = _scalar(f(x))
    x[idx] = old - h
    f_minus = _scalar(f(x))
    x[idx] = old
    return (f_plus - f_minus) / (2 * h)


def numerical_gradient(f, x, h=1e-5):
    """Centred-difference gradient of the scalar ``f(x)`` with respect to every entry of ``x``.

    ``x`` (any shape, float) is perturbed in place one entry at a time and restored, so a
    closure that reads ``x`` sees the change. Returns an array shaped like ``x``. The error
    is O(h^2) until rounding (about eps / h) takes over.

    It costs two calls of ``f`` per entry: when the first entry's took long enough that all of
    them would take more than ``SLOW`` seconds, a progress bar shows how far it is (and
    ``sampled_gradient_error`` is the quicker check).
    """
    _nudgeable(x)
    grad = np.zeros(x.shape, dtype=np.float64)
    entries = np.ndindex(x.shape)
    first = next(entries, None)
    if first is None:  # x has no entries
        return grad
    start = time.perf_counter()
    grad[first] = _centred_difference(f, x, first, h)
    if (time.perf_counter() - start) * x.size > SLOW:
        from tqdm.auto import tqdm

        entries = tqdm(entries, total=x.size, initial=1, desc="numerical gradient", leave=False)
    for idx in entries:
        grad[idx] = _centred_difference(f, x, idx, h)
    return grad


def sampled_gradient_error(f, x, analytic, n=100, h=1e-5, seed=0):
    """Relative error between ``analytic`` and centred differences on ``n`` random entries of ``x``.

    The cheap version of a full check: on a net with thousands of weights, 100 entries find
    a wrong backward just as surely, at a fraction of the cost. Returns the max relative error.
    """
    _nudgeable(x)
    rng = np.random.default_rng(seed)
    flat = rng.choice(x.size, size=min(n, x.size), replace=False)
    worst = 0.0
    for i in flat:
        idx = np.unravel_index(i, x.shape)
        worst = max(worst, rel_error(analytic[idx], _centred_difference(f, x, idx, h)))
    return worst


def rel_error(a, b):
    """Max over entries of |a - b| / max(|a| + |b|, 1e-8): 0 when equal, 1 when opposite."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)), initial=0.0))


@dataclass
class Evidence:
    """What the value checks look at: the answer, the reference and optional context.

    ``got``, ``ref``: float64 arrays of the same shape. ``bad``: entries that differ.
    ``n``: batch size; ``z``: pre-activation shaped like ``got`` (for ReLU masks);
    ``upstream``: the gradient that arrived from above (for a missing activation derivative).
    """

    name: str
    got: np.ndarray
    ref: np.ndarray
    bad: np.ndarray
    rtol: float
    atol: float
    n: int | None = None
    z: np.ndarray | None = None
    upstream: np.ndarray | None = None
    activation: str = "activation"

    def close(self, other):
        other = np.asarray(other, dtype=np.float64)
        return other.shape == self.got.shape and np.allclose(
            self.got, other, rtol=self.rtol, atol=self.atol
        )

    def matches(self, candidate):
        """True when ``got`` is the wrong answer ``candidate`` up to rounding (``_matches``)."""
        return _matches(self.got, candidate, self.rtol, self.atol)

    def scaled(self, k):
        """True when ``got`` equals ``k`` times the reference (and the reference is not 0)."""
        return bool(np.any(self.ref)) and self.close(k * self.ref)

    @property
    def alpha(self):
        """Least-squares scale of got against ref: <got, ref> / <ref, ref>."""
        rr = float(np.vdot(self.ref, self.ref))
        return float(np.vdot(self.got, self.ref)) / rr if rr else float("nan")

    @property
    def cosine(self):
        norm = float(np.linalg.norm(self.got) * np.linalg.norm(self.ref))
        return float(np.vdot(self.got, self.ref)) / norm if norm else float("nan")

    @property
    def inverse_batch(self):
        """k when got = ref / k for a whole k from 2 to ``MAX_BATCH`` (a mean over an unstated
        batch), else None (a factor such as 1e-10 is no batch size)."""
        a = self.alpha
        if not 1 / (MAX_BATCH + 0.5) < a < 0.75:
            return None
        k = round(1 / a)
        return k if k >= 2 and self.scaled(1 / k) else None

    @property
    def active(self):
        return None if self.z is None or self.z.shape != self.got.shape else self.z > 0


def _matches(got, candidate, rtol, atol):
    """True when the array ``got`` is the wrong answer ``candidate`` (same shape) up to rounding,
    judged on the candidate's own size: one 1e-10 times the reference is no match for an answer
    of zeros, which the reference's tolerance ``atol`` would let pass for it."""
    candidate = np.asarray(candidate, dtype=np.float64)
    own = 1e-8 * float(np.max(np.abs(candidate), initial=0.0))
    return candidate.shape == got.shape and bool(
        np.allclose(got, candidate, rtol=rtol, atol=min(atol, own))
    )


def _relu_mask_flipped(e):
    on = e.active
    return (
        on is not None
        and np.any(e.ref[on])
        and np.allclose(e.got[on], 0, atol=e.atol)
        and np.any(e.bad[~on])
    )


def _wrong_only_where_inactive(e):
    on = e.active
    return on is not None and not np.any(e.bad[on]) and np.any(e.bad[~on])


@dataclass(frozen=True)
class Mistake:
    key: str
    test: Callable[[Evidence], bool]
    advice: str


# The bank of known mistakes, tried in order on an answer with the right shape and wrong values.
# ``advice`` is formatted with the Evidence's attributes (name, n, alpha, cosine, activation, ...).
BANK = [
    Mistake(
        "nan",
        lambda e: not np.all(np.isfinite(e.got)),
        "{name} contains nan or inf: something overflowed (use the stable sigmoid / softmax).",
    ),
    Mistake(
        "all-zero",
        lambda e: not np.any(e.got),
        "{name} is all zeros: it was never filled in, the gradient was lost on the way, or an "
        "expression cancels out (check its brackets).",
    ),
    Mistake(
        "transposed",
        lambda e: e.got.ndim == 2 and e.close(e.ref.T),
        "{name} holds the transposed values: check the order of the matrix product "
        "(dW = x.T @ dout, dx = dout @ W.T).",
    ),
    Mistake(
        "sign-flipped",
        lambda e: e.scaled(-1.0),
        "{name} has the sign flipped: the gradient is d(loss)/d(param); "
        "the minus sign belongs in the update step, not in the gradient.",
    ),
    Mistake(
        "averaged-not-summed",
        lambda e: e.n is not None and e.n > 1 and e.scaled(1.0 / e.n),
        "{name} is averaged over the batch (factor 1/N, N = {n}): every sample adds its "
        "part to a parameter's gradient, so sum over the batch here (a 1/N belongs to the loss "
        "alone).",
    ),
    Mistake(
        "not-divided-by-n",
        lambda e: e.n is not None and e.n > 1 and e.scaled(float(e.n)),
        "{name} is N = {n} times too large: the loss is a mean over the batch, "
        "so the loss and its gradients carry a factor 1/N.",
    ),
    Mistake(
        "missing-factor-2",
        lambda e: e.scaled(0.5),
        "{name} is half the expected value: the derivative of a square u**2 is 2*u, "
        "so the factor 2 is missing.",
    ),
    Mistake(
        "extra-factor-2",
        lambda e: e.scaled(2.0),
        "{name} is twice the expected value: a factor 2 too many (counted twice, or one that "
        "the 1/2 in a loss such as (1/2)(y - t)**2 cancels).",
    ),
    Mistake(
        "missing-activation-derivative",
        lambda e: e.upstream is not None and np.any(e.ref != e.upstream) and e.close(e.upstream),
        "{name} equals the upstream gradient: multiply by the {activation}'s local "
        "derivative on the way back.",
    ),
    Mistake(
        "relu-mask-wrong-side",
        _relu_mask_flipped,
        "{name} passes the gradient where the ReLU input was <= 0 and blocks it where it was "
        "> 0: the mask is on the wrong side (keep dout where x > 0).",
    ),
    Mistake(
        "wrong-where-inactive",
        _wrong_only_where_inactive,
        "{name} is right where the ReLU input was > 0 but wrong where it was <= 0: there the "
        "switch is off and the gradient must be 0.",
    ),
    Mistake(
        "averaged-not-summed",
        lambda e: e.inverse_batch is not None,
        "{name} is 1/{inverse_batch} of the expected value: it looks averaged where it "
        "should be summed (a 1/N belongs to the loss alone).",
    ),
    Mistake(
        "few-entries-wrong",
        lambda e: e.bad.mean() <= 0.25,
        "{name} is mostly right but a few entries are wrong: look at how the worst entry "
        "is computed.",
    ),
    Mistake(
        "lost-precision",
        lambda e: e.cosine > 1 - 1e-6 and abs(e.alpha - 1) < 1e-3,
        "{name} is close to the expected value but not within the tolerance: precision is lost "
        "somewhere (float32, a one-sided difference, a step h too large or too small, a small "
        "constant added inside a log).",
    ),
    Mistake(
        "wrong-values",
        lambda e: e.got.size == 1,
        "{name} has the wrong value: recheck the local derivatives and the chain rule.",
    ),
    Mistake(
        "scaled",
        lambda e: e.cosine > 1 - 1e-6,
        "{name} points the right way but is {alpha:.4g} times the expected size: a constant "
        "factor is off.",
    ),
    Mistake(
        "wrong-values",
        lambda e: True,
        "{name} has wrong values (cosine with the expected gradient {cosine:.2f}, "
        "scale {alpha:.3g}): recheck the local derivatives and the chain rule.",
    ),
]

# Mistakes that a test detects by building the wrong answer itself and passing it in
# ``check_gradient(..., candidates={key: wrong_array})``; keys not listed get a generic sentence.
CANDIDATE_ADVICE = {
    # activations
    "missing-activation-derivative": "{name} leaves out the {activation}'s derivative: multiply "
    "the error by it before going further back.",
    "missing-sigmoid-derivative": "{name} leaves out the sigmoid's derivative sigma(z) (1 - "
    "sigma(z)): multiply the error by it before going further back.",
    "missing-relu-derivative": "{name} leaves out the ReLU's derivative: the gradient must be 0 "
    "where the ReLU input was <= 0.",
    "derivative-at-output": "{name} takes the sigmoid's derivative at its output y instead of at "
    "its input h: sigma'(h) = y (1 - y) with y = sigma(h), not sigma(y) (1 - sigma(y)).",
    "sigmoid-of-minus-z": "{name} equals sigma(-z) = 1 - sigma(z): check the sign inside exp.",
    "formula-on-input": "{name} applies s (1 - s) to z itself: first compute s = sigma(z), then "
    "s * (1 - s).",
    "one-minus-y-missing": "{name} is dout * y * y: the sigmoid's local derivative is y (1 - y), "
    "the output times one minus the output, so the second factor is 1 - y.",
    # matrices and layers
    "missing-transpose": "{name} uses a weight matrix without its transpose: sending an error "
    "back through W means multiplying by W.T.",
    "used-pre-activation": "{name} multiplies by the hidden layer's input sums: the value flowing "
    "into a hidden-to-output weight is the hidden layer's OUTPUT, sigma(x @ W_ih).",
    "used-weights-not-activations": "{name} multiplies by the weights: a weight step uses the "
    "value flowing into that weight (the activation), not the weight itself.",
    "error-sign-flipped": "{name} has the sign flipped: the error is target - output, and an "
    "error term is minus the gradient of E with respect to the input sum; output - target gives "
    "the gradient itself.",
    "step-sign-flipped": "{name} has the sign flipped: a weight step goes against the gradient, "
    "-learnrate * dE/dw, which is +learnrate * error term * input.",
    "summed-wrong-axis": "{name} sums over the wrong axis: db adds dout up over the batch, "
    "axis=0, one entry per output unit.",
    "log-epsilon": "{name} adds a small constant inside the log, log(y + 1e-7): that moves the "
    "loss of every small probability y by about 1e-7 / y; take the log of the probability as it "
    "is, or clip with np.maximum(y, np.finfo(float).tiny) (a stable softmax gives exactly 0 only "
    "to a score more than about 745 below the largest).",
    "not-sent-through-weights": "{name} leaves out the weights: a hidden unit's error term is "
    "the output error term sent back through that unit's weight, times its activation "
    "derivative, output_error_term * w_ho * sigma'(h).",
    "missing-learnrate": "{name} is the error term times the input without the learning rate.",
    # numerical derivatives
    "forward-difference": "{name} matches the forward difference (f(x + h) - f(x)) / h, whose "
    "error is O(h): use the centred difference (f(x + h) - f(x - h)) / (2h).",
    "backward-difference": "{name} matches the backward difference (f(x) - f(x - h)) / h, whose "
    "error is O(h): use the centred difference (f(x + h) - f(x - h)) / (2h).",
    "step-precedence": "{name} matches (f(x + h) - f(x - h)) / 2 * h, which multiplies by h: "
    "write the division as / (2 * h).",
    "minus-nudge-missing": "{name} matches (f(x + h) - f(x)) / (2h): the second value of f must "
    "be taken at x - h, but x was only put back to its old value before it.",
    "ignored-h": "{name} does not use the step h it was given: compute the difference with h.",
    # the chain rule and graphs
    "weight-instead-of-input": "{name} uses the weight where the input belongs: dz/dw is the "
    "value flowing into the edge, here the input x.",
    "bias-left-out": "{name} leaves the bias out of z = x . w + b in the forward pass.",
    "missing-path": "{name} follows only one path: a feeds both z1 and z2, so add both "
    "contributions, w3 * dl_dz1 + w4 * dl_dz2.",
    "paths-crossed": "{name} pairs each weight with the other path's gradient: use w3 with "
    "dl_dz1 and w4 with dl_dz2.",
    "averaged-paths": "{name} averages the two paths: the contributions add up, do not divide "
    "by 2.",
    "inputs-not-swapped": "{name} multiplies dout by the input's own value: a multiply node "
    "sends back dout times the OTHER input (dx = dout * y, dy = dout * x); check backward, and "
    "that forward kept both inputs (self.x = x, self.y = y).",
    "ignored-dout": "{name} ignores dout: multiply the node's local derivative by the gradient "
    "that arrives from above.",
    "split-between-inputs": "{name} is half of dout: an add node passes the whole upstream "
    "gradient to each input; it does not share it out.",
    "tax-not-applied": "{name} misses the factor tax: every path from an input to the price "
    "goes through the tax node, so its gradient is multiplied by the tax.",
    "dprice-not-one": "{name} is price times too large: the backward pass starts from "
    "d price / d price = 1.",
    "missing-target": "{name} is still what the post computes: the output gradient 2 * p "
    "leaves out the target; the derivative of (p - target)**2 is 2 * (p - target).",
    "loss-divided-twice": "{name} is divided by the batch size twice: a mean already divides by N.",
    "target-not-subtracted": "{name} is the softmax output alone: the gradient is (y - T) / N, "
    "so subtract 1 at each sample's label, dx[np.arange(N), t] -= 1, before dividing by N.",
    "softmax-wrong-axis": "{name} comes from a softmax over the wrong axis: each sample's scores, "
    "a row, make one distribution; take the max and the sum over axis=1 with keepdims=True.",
    "ignores-lr": "{name} moves by the whole gradient: multiply it by the learning rate lr.",
    "softmax-in-predict": "{name} are probabilities: predict returns the scores before the "
    "softmax; the softmax belongs to the loss layer.",
    "gradients-swapped": "{name} holds the gradient of the other layer's parameter (b1 for b2, "
    "W1 for W2, or the reverse): return each layer's own grads under its own key, W1 and b1 from "
    "the first Affine layer, W2 and b2 from the second.",
    "keys-swapped": "{name} holds the gradient of its partner in the multiply node: check the "
    "order of (dx, dy) when you unpack backward's result.",
}
for _m in BANK:  # a candidate may also carry a key of the bank: use its first sentence
    CANDIDATE_ADVICE.setdefault(_m.key, _m.advice)


def fail(name, mistake, sentence, detail=""):
    """Raise ``GradientMistake`` for ``name`` with ``sentence`` and the tag of ``mistake``.

    For checks that are not gradient comparisons (a batch iterator that drops samples, an
    update that is not in place), so that every failure in the course carries a mistake key.
    """
    __tracebackhide__ = True  # tracebacks show the learner's code, not the checker's
    # A traceback always shows this last frame. To the learner reading it: your answer failed a
    # check, and the traceback's last line says what is wrong and names the likely mistake.
    raise GradientMistake(f"{sentence}{detail} {TAG.format(mistake)}", mistake, name)


def call_yours(name, fn, *args, let_through=()):
    """``fn(*args)``, the learner's ``name``, for a test: an exception it raises becomes a
    ``GradientMistake`` of one line naming the exception and the learner's line that raised it,
    where IPython would print the whole traceback (``[mistake: raised]``; a stub's
    ``NotImplementedError``: ``[mistake: not-implemented]``). A failed check, and the exception
    types in ``let_through``, pass unchanged. The test still fails, so it earns no marks."""
    __tracebackhide__ = True  # tracebacks show the learner's code, not the checker's
    try:
        return fn(*args)
    except (GradientMistake, *let_through):
        raise
    except NotImplementedError:
        sentence, mistake = NOT_IMPLEMENTED.format(name=name), "not-implemented"
    except Exception as exc:
        where = where_in_yours(exc)
        at = f" at {where}" if where else ""
        sentence = (
            f"{name} raised {error_line(exc)}{at}. Fix that line, run its cell, then run this "
            "test again."
        )
        mistake = "raised"
    fail(name, mistake, sentence)  # outside the except clauses: no chained traceback


def _shape_advice(name, got_shape, ref_shape, n=None):
    """(key, sentence) for an answer of the wrong shape, naming the axis or the transpose.
    ``n``, the batch size when known, recognises a sum over the wrong axis or over all of them."""
    head = f"{name} has shape {got_shape}; expected {ref_shape}"
    if n is not None and len(ref_shape) == 1 and ref_shape != (n,):
        if got_shape == (n,):
            return "summed-wrong-axis", (
                f"{head}: one entry per sample; sum over the batch axis (axis=0), which leaves "
                "one entry per output unit."
            )
        if got_shape == ():
            return "wrong-shape", (
                f"{head}: everything was summed into one number; sum over the batch axis only "
                "(axis=0), which leaves one entry per output unit."
            )
    if tuple(d for d in got_shape if d != 1) == tuple(d for d in ref_shape if d != 1):
        if len(got_shape) > len(ref_shape):
            return "wrong-shape", f"{head}: drop the extra axis of length 1 (keepdims, or reshape)."
        if len(got_shape) < len(ref_shape):
            return "wrong-shape", (
                f"{head}: an axis of length 1 is missing; keep it (do not sum or index it away)."
            )
    if len(got_shape) != len(ref_shape) and np.prod(got_shape) == np.prod(ref_shape) != 1:
        return "wrong-shape", (
            f"{head}: the right number of entries in another shape; build it shaped like the "
            f"array it belongs to (np.zeros(x.shape)), or reshape it to {ref_shape}."
        )
    if ref_shape == ():
        return "wrong-shape", f"{head}: one number is expected; add the parts up into it."
    if len(got_shape) == len(ref_shape) + 1 and got_shape[1:] == ref_shape:
        return "not-summed-over-batch", f"{head}: sum over the batch axis (axis=0)."
    if len(got_shape) == len(ref_shape) + 1 and got_shape[:-1] == ref_shape:
        return "wrong-shape", f"{head}: sum over the last axis (axis=-1)."
    if len(got_shape) == 2 and got_shape == ref_shape[::-1]:
        return "transposed", f"{head}: it is transposed; check the order of the matrix product."
    return "wrong-shape", f"{head}: recheck which arrays are multiplied and summed."


def _as_array(name, got):
    """``got`` as a float array, or a GradientMistake for None, exceptions and non-numbers."""
    __tracebackhide__ = True  # tracebacks show the learner's code, not the checker's
    if callable(got):
        got = call_yours(name, got)
    if got is NotImplemented:
        fail(name, "not-implemented", NOT_IMPLEMENTED.format(name=name))
    if got is None:  # an answer that ends without return, or the empty body of a stub
        fail(
            name,
            "not-implemented",
            f"{name} is None: fill in the answer cell, and return the result (a function that "
            "ends without return gives None).",
        )
    try:
        arr = np.asarray(got)
    except Exception:  # ragged lists and the like
        arr = np.asarray(None, dtype=object)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        fail(
            name,
            "wrong-type",
            f"{name} is a {type(got).__name__}, not an array of numbers: return a numpy array.",
        )
    return arr


def check_gradient(
    name,
    got,
    expected,
    *,
    batch_size=None,
    pre_activation=None,
    upstream=None,
    activation="activation",
    candidates=None,
    rtol=1e-5,
    atol=None,
    dtype=np.float64,
):
    """Raise ``GradientMistake`` naming the likely mistake unless ``got`` matches ``expected``.

    ``name``: how the message calls the value, e.g. ``"db"``. ``got``: the learner's answer (an
    array, a number, ``None``, or a zero-argument callable that may raise NotImplementedError).
    ``expected``: the reference, any shape. Optional context sharpens the diagnosis:
    ``batch_size`` N (finds a stray 1/N or N), ``pre_activation`` z shaped like ``expected``
    (finds ReLU masks on the wrong side), ``upstream`` (the dout that arrived; an answer equal
    to it misses the ``activation``'s derivative), and ``candidates``, a dict of mistake key ->
    the wrong answer that mistake gives. ``dtype=None`` skips the dtype check.
    """
    __tracebackhide__ = True  # tracebacks show the learner's code, not the checker's
    arr = _as_array(name, got)
    ref = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(ref), initial=0.0))
    atol = 1e-8 * max(scale, 1e-3) if atol is None else atol
    if arr.shape != ref.shape:
        # A candidate may have another shape than the reference (the gradient of another
        # parameter, say): it names the mistake better than the shape does.
        for key, wrong in (candidates or {}).items():
            if np.issubdtype(arr.dtype, np.number) and _matches(
                arr.astype(np.float64), wrong, rtol, atol
            ):
                advice = CANDIDATE_ADVICE.get(key, "{name} matches a known mistake: " + key + ".")
                sentence = advice.format(name=name, n=batch_size, activation=activation)
                fail(name, key, sentence, f" (shape {arr.shape}; expected {ref.shape})")
        key, sentence = _shape_advice(name, arr.shape, ref.shape, batch_size)
        fail(name, key, sentence)
    if not np.issubdtype(arr.dtype, np.floating):
        fail(
            name,
            "wrong-dtype",
            f"{name} has dtype {arr.dtype}; gradients are floats: start from np.zeros_like(x, "
            "dtype=float) or a float array, not an integer one.",
        )
    if dtype is not None and arr.dtype != dtype:
        fail(name, "wrong-dtype", f"{name} has dtype {arr.dtype}; expected {np.dtype(dtype)}.")

    g = arr.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(g - ref) <= atol + rtol * np.abs(ref))
    if not bad.any():
        return
    e = Evidence(
        name,
        g,
        ref,
        bad,
        rtol,
        atol,
        batch_size,
        None if pre_activation is None else np.asarray(pre_activation),
        None if upstream is None else np.asarray(upstream, dtype=np.float64),
        activation,
    )
    detail = _detail(e)
    for key, wrong in (candidates or {}).items():
        if e.matches(wrong):
            advice = CANDIDATE_ADVICE.get(key, "{name} matches a known mistake: " + key + ".")
            fail(name, key, advice.format(**_fields(e)), detail)
    for mistake in BANK:
        if mistake.test(e):
            fail(name, mistake.key, mistake.advice.format(**_fields(e)), detail)


def _fields(e):
    return {
        "name": e.name,
        "n": e.n,
        "activation": e.activation,
        "alpha": e.alpha,
        "cosine": e.cosine,
        "inverse_batch": e.inverse_batch,
    }


def _detail(e):
    """' (k of n entries differ; worst at idx: got a, expected b; relative error r)'."""
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isfinite(e.got), np.abs(e.got - e.ref), np.inf)
    idx = np.unravel_index(int(np.argmax(diff)), e.got.shape) if e.got.ndim else ()
    where = f" at {list(map(int, idx))}" if e.got.ndim else ""
    err = rel_error(e.got, e.ref)
    return (
        f" ({int(e.bad.sum())} of {e.bad.size} entries differ; worst{where}: got "
        f"{e.got[idx]:.6g}, expected {e.ref[idx]:.6g}; relative error {err:.1e})"
    )


def check_backward(backward, dout, name="dx"):
    """Call ``backward(dout)`` and check it neither changes ``dout`` nor returns it.

    Returns what ``backward`` returned. Raises ``GradientMistake`` with key
    ``modified-dout`` or ``returned-dout``.
    """
    __tracebackhide__ = True  # tracebacks show the learner's code, not the checker's
    before = np.array(dout, copy=True)
    result = call_yours(name, backward, dout)
    if not np.array_equal(before, dout):
        fail(
            name,
            "modified-dout",
            "backward changed dout in place (e.g. dout[~mask] = 0): work on a copy or use "
            "dout * mask, since dout may be used again elsewhere in the graph.",
        )
    outputs = result if isinstance(result, tuple) else (result,)
    if any(out is dout for out in outputs):
        fail(
            name,
            "returned-dout",
            "backward returned dout itself: return a new array (e.g. dout * 1.0), or a later "
            "in-place change would corrupt both.",
        )
    return result


def check_no_warning(name, fn, *args):
    """Call ``fn(*args)`` with numpy warnings as errors and return its result.

    A RuntimeWarning (overflow in exp, division by zero, invalid value) raises
    ``GradientMistake`` with key ``numeric-warning``, naming the warning. A warning that ``fn``
    silences with ``np.errstate`` or ``np.seterr`` still happens: key ``overflow-hidden``.
    """
    __tracebackhide__ = True  # tracebacks show the learner's code, not the checker's
    strict = dict(over="raise", divide="raise", invalid="raise", under="ignore")
    with warnings.catch_warnings(), np.errstate(**strict), _errors_kept_on(strict) as silenced:
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return call_yours(name, fn, *args, let_through=(RuntimeWarning, FloatingPointError))
        except (RuntimeWarning, FloatingPointError) as caught:
            warning = caught
    # outside the except clause, so that the learner sees one message, not two tracebacks
    if silenced:
        fail(
            name,
            "overflow-hidden",
            f"{name} still warns ({warning}); np.errstate (or np.seterr) only hides it. The "
            "value may come out right (1 / (1 + inf) is 0), but the inf is there, and the next "
            "formula turns it into nan: use a form that cannot overflow (exp(-|z|), or subtract "
            "the maximum before exp) instead of silencing numpy.",
        )
    fail(
        name,
        "numeric-warning",
        f"{name} warned: {warning}. For large |z| use a form that cannot overflow "
        "(e.g. exp(-|z|), or subtract the maximum before exp).",
    )


@contextmanager
def _errors_kept_on(settings):
    """Inside the block, ``np.errstate(...)`` and ``np.seterr(...)`` called by the learner's code
    keep numpy's floating-point ``settings`` instead of switching errors off; the list yielded
    collects the settings they asked for that ignore an error (``{"over": "ignore"}``)."""
    silenced = []
    real_errstate, real_seterr = np.errstate, np.seterr

    def asked(kwargs):
        ignored = {k: v for k, v in kwargs.items() if v == "ignore"}
        if ignored:
            silenced.append(ignored)

    def errstate(**kwargs):
        asked(kwargs)
        return real_errstate(**settings)

    def seterr(**kwargs):
        asked(kwargs)
        return np.geterr()

    np.errstate, np.seterr = errstate, seterr
    try:
        yield silenced
    finally:
        np.errstate, np.seterr = real_errstate, real_seterr


@contextmanager
def reference_parts(namespace, **parts):
    """Inside the block, names in ``namespace`` (a notebook's ``globals()``) point at ``parts``.

    A test of one exercise uses the reference versions of the others, so a mistake is marked
    once, where it is made: ``with reference_parts(globals(), MulLayer=layers.Mul): ...``
    checks the learner's graph built from correct layers. The learner's names come back after.
    """
    missing = object()
    saved = {name: namespace.get(name, missing) for name in parts}
    namespace.update(parts)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def same_weights(net, other):
    """Give ``other``, a reference network, the parameters of ``net``, the learner's, in place
    wherever the shapes agree (``params`` dicts of arrays). Comparing the two networks then
    checks what they compute: a slip in the initialisation, checked on its own, is not marked
    again in every later test."""
    params = getattr(net, "params", None)
    if not isinstance(params, dict):
        return
    for key, value in other.params.items():
        if key in params and np.shape(params[key]) == value.shape:
            value[...] = params[key]


def _same_part(got, expected, by_value):
    """True when ``got`` could be the part ``expected`` of a result: both dicts, or arrays of one
    shape (and, ``by_value``, close in value)."""
    if isinstance(got, dict) or isinstance(expected, dict):
        return isinstance(got, dict) and isinstance(expected, dict)
    try:
        got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if got.shape != expected.shape:
        return False
    return not by_value or bool(np.allclose(got, expected, rtol=1e-6, atol=1e-12))


def _order_of(got, expected):
    """The order ``got`` holds the parts of ``expected`` in (a tuple of indices into ``expected``)
    when it is another order than theirs, else None. Parts are told apart by their kind and shape,
    or by their values where two of them share a shape."""
    shapes = [type(e) if isinstance(e, dict) else np.shape(e) for e in expected]
    by_value = len(set(shapes)) < len(shapes)
    identity = tuple(range(len(expected)))
    if all(_same_part(g, e, by_value) for g, e in zip(got, expected, strict=True)):
        return None
    for order in itertools.permutations(identity):
        if order != identity and all(
            _same_part(got[i], expected[j], by_value) for i, j in enumerate(order)
        ):
            return order
    return None


def unpack(name, got, parts, expected=None):
    """``got``, what ``name`` returned, as a tuple of the results named ``parts``, in that order.

    Raises ``GradientMistake`` (``wrong-return``) when ``got`` is not a tuple or list of
    ``len(parts)`` items, and (``wrong-order``) when the items are the parts of ``expected``,
    the reference results, in another order: ``return (db, dW)`` for ``return (dW, db)``.
    """
    __tracebackhide__ = True  # tracebacks show the learner's code, not the checker's
    wanted = f"({', '.join(parts)})"
    if not isinstance(got, (tuple, list)) or len(got) != len(parts):
        what = f"{len(got)} values" if isinstance(got, (tuple, list)) else f"a {type(got).__name__}"
        fail(name, "wrong-return", f"{name} returned {what}: return the tuple {wanted}.")
    order = None if expected is None else _order_of(got, expected)
    if order is not None:
        found = f"({', '.join(parts[j] for j in order)})"
        fail(name, "wrong-order", f"{name} returns {found}: return them in the order {wanted}.")
    return tuple(got)


def kept_inputs(name, call, **inputs):
    """``call()``'s result, after checking that it left the arrays ``inputs`` (by their names)
    as they were; raises ``GradientMistake`` (``modified-input``) naming the first it changed."""
    __tracebackhide__ = True  # tracebacks show the learner's code, not the checker's
    before = {key: np.array(value, copy=True) for key, value in inputs.items()}
    result = call_yours(name, call)
    for key, value in inputs.items():
        if not np.array_equal(before[key], value):
            fail(
                name,
                "modified-input",
                f"{name} changed its argument {key} in place: compute new arrays and leave the "
                "caller's arrays as they were (the caller applies or reuses them).",
            )
    return result

"""The mistake bank: wrong gradients written the way a learner would write them are named
correctly, and other correct ways of writing the answer pass."""

import re

import numpy as np
import pytest
from backprop import gradcheck
from backprop.functions import sigmoid
from backprop.gradcheck import (
    BANK,
    GradientMistake,
    check_backward,
    check_gradient,
    check_no_warning,
    kept_inputs,
    numerical_gradient,
    rel_error,
    sampled_gradient_error,
    unpack,
)

N, D, M = 7, 5, 3


@pytest.fixture
def layer(rng):
    """A dense sigmoid layer with squared error, C = sum((sigmoid(x W + b) - y)^2)."""
    x, W, b = rng.standard_normal((N, D)), rng.standard_normal((D, M)), rng.standard_normal(M)
    y = rng.uniform(size=(N, M))
    z = x @ W + b
    yhat = sigmoid(z)
    delta = 2 * (yhat - y) * yhat * (1 - yhat)  # dC/dz, (N, M)
    return dict(x=x, W=W, b=b, y=y, z=z, yhat=yhat, delta=delta, dW=x.T @ delta, db=delta.sum(0))


def diagnosis(name, got, expected, **context):
    with pytest.raises(GradientMistake) as info:
        check_gradient(name, got, expected, **context)
    return info.value


def assert_names(mistake, key, *phrases):
    message = str(mistake)
    assert mistake.mistake == key, message
    assert message.endswith(f"[mistake: {key}]"), message
    for phrase in phrases:
        assert phrase in message, message


def test_reference_layer_gradients_match_numerical(layer):
    def cost(_):
        return float(np.sum((sigmoid(layer["x"] @ layer["W"] + layer["b"]) - layer["y"]) ** 2))

    check_gradient("dW", layer["dW"], numerical_gradient(cost, layer["W"]))
    check_gradient("db", layer["db"], numerical_gradient(cost, layer["b"]))


def test_not_implemented(layer):
    def answer():
        raise NotImplementedError()

    assert_names(diagnosis("dW", answer, layer["dW"]), "not-implemented", "not implemented")
    assert_names(diagnosis("dW", None, layer["dW"]), "not-implemented")


def test_a_result_of_none_is_told_to_be_returned(layer):
    """None is what an answer gives that computes the gradient and forgets to return it: "not
    implemented yet" would tell the learner to write what is already there."""
    assert_names(diagnosis("dW", None, layer["dW"]), "not-implemented", "is None", "return")


def test_a_flattened_gradient_is_told_to_keep_the_shape():
    expected = np.arange(1.0, 7.0).reshape(2, 3)
    mistake = diagnosis("numerical_gradient on shape (2, 3)", list(expected.ravel()), expected)
    assert_names(mistake, "wrong-shape", "the right number of entries", "reshape it to (2, 3)")


def test_unsummed_bias_gradient_names_the_axis(layer):
    db = layer["delta"]  # forgot .sum(axis=0)
    assert_names(
        diagnosis("db", db, layer["db"]),
        "not-summed-over-batch",
        "(7, 3)",
        "(3,)",
        "sum over the batch axis (axis=0)",
    )


def test_keepdims_bias_gradient(layer):
    db = layer["delta"].sum(axis=0, keepdims=True)
    assert_names(diagnosis("db", db, layer["db"]), "wrong-shape", "(1, 3)", "keepdims")


def test_wrong_order_of_matmul_gives_transposed_shape(layer):
    dW = layer["delta"].T @ layer["x"]  # (M, D) instead of (D, M)
    assert_names(diagnosis("dW", dW, layer["dW"]), "transposed", "(3, 5)", "(5, 3)")


def test_transposed_values_of_a_square_gradient(rng):
    x, delta = rng.standard_normal((N, 4)), rng.standard_normal((N, 4))
    dW = delta.T @ x  # square, so the shape alone cannot tell
    assert_names(diagnosis("dW", dW, x.T @ delta), "transposed", "x.T @ dout", "relative error")


def test_sign_flipped(layer):
    yhat, y = layer["yhat"], layer["y"]
    dW = layer["x"].T @ (2 * (y - yhat) * yhat * (1 - yhat))  # error written as y - yhat
    assert_names(diagnosis("dW", dW, layer["dW"]), "sign-flipped", "sign", "relative error")


def test_averaged_instead_of_summed(layer):
    dW = layer["x"].T @ layer["delta"] / N
    assert_names(
        diagnosis("dW", dW, layer["dW"], batch_size=N),
        "averaged-not-summed",
        "1/N",
        "N = 7",
        "relative error",
    )
    db = layer["delta"].mean(axis=0)  # the seed's bug: mean for b, sum for W
    assert_names(diagnosis("db", db, layer["db"]), "averaged-not-summed", "1/7")


def test_not_divided_by_batch_size(rng):
    scores, t = rng.standard_normal((N, 4)), rng.integers(0, 4, N)
    y = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    dx = y - np.eye(4)[t]  # forgot / N
    assert_names(diagnosis("dx", dx, dx / N, batch_size=N), "not-divided-by-n", "N = 7")


def test_missing_factor_two(layer):
    yhat = layer["yhat"]
    dW = layer["x"].T @ ((yhat - layer["y"]) * yhat * (1 - yhat))
    assert_names(diagnosis("dW", dW, layer["dW"]), "missing-factor-2", "factor 2")


def test_missing_sigmoid_derivative(layer, rng):
    # In a Sigmoid layer's backward: returning dout unchanged.
    dout = rng.standard_normal((N, M))
    s = layer["yhat"]
    mistake = diagnosis("dx", dout.copy(), dout * s * (1 - s), upstream=dout, activation="sigmoid")
    assert_names(mistake, "missing-activation-derivative", "sigmoid")
    # Deeper in: dW without the derivative, recognised from the candidate the test builds.
    wrong = layer["x"].T @ (2 * (layer["yhat"] - layer["y"]))
    mistake = diagnosis("dW", wrong, layer["dW"], candidates={"missing-sigmoid-derivative": wrong})
    assert_names(mistake, "missing-sigmoid-derivative", "sigma(z) (1 - sigma(z))")


def relu_case(rng):
    x = rng.standard_normal((N, M))
    x[np.abs(x) < 1e-3] = 0.5
    dout = rng.standard_normal((N, M))
    return x, dout, dout * (x > 0)


def test_missing_relu_derivative(rng):
    x, dout, dx = relu_case(rng)
    mistake = diagnosis("dx", dout * 1.0, dx, upstream=dout, activation="ReLU", pre_activation=x)
    assert_names(mistake, "missing-activation-derivative", "ReLU")


def test_relu_mask_on_the_wrong_side(rng):
    x, dout, dx = relu_case(rng)
    assert_names(
        diagnosis("dx", dout * (x <= 0), dx, pre_activation=x),
        "relu-mask-wrong-side",
        "wrong side",
        "relative error",
    )


def test_wrong_only_where_the_relu_input_was_not_positive(rng):
    x, dout, dx = relu_case(rng)
    leaky = np.where(x > 0, dout, 0.01 * dout)  # a leaky ReLU where a plain one was asked
    assert_names(diagnosis("dx", leaky, dx, pre_activation=x), "wrong-where-inactive", "<= 0")


def test_mostly_right_names_the_worst_entry(layer):
    dW = layer["dW"].copy()
    dW[4, 2] += 1.0  # an off-by-one loop got one entry wrong
    assert_names(
        diagnosis("dW", dW, layer["dW"]),
        "few-entries-wrong",
        "1 of 15 entries",
        "worst at [4, 2]",
        "relative error",
    )


def test_lost_precision_is_not_called_a_wrong_factor(rng):
    W = rng.uniform(1, 2, (4, 3))
    h = 1e-4
    forward_difference = ((W + h) ** 3 - W**3) / h  # one-sided: error O(h), all one way
    mistake = diagnosis("dW", forward_difference, 3 * W**2, rtol=1e-6)
    assert_names(mistake, "lost-precision", "close to the expected value")
    assert "1 times" not in str(mistake)


def test_one_wrong_number_is_called_wrong_not_scaled():
    # One number has no direction: its cosine with any other number of its sign is 1.
    for got in (11.0, -3.5, np.array(0.7)):
        mistake = diagnosis("dl_da", got, 1.0)
        assert_names(mistake, "wrong-values", "dl_da has the wrong value")
        assert "times the expected size" not in str(mistake) and "cosine" not in str(mistake)
    assert_names(diagnosis("dl_da", -1.0, 1.0), "sign-flipped")  # exact factors still count
    assert_names(diagnosis("dl_da", 2.0, 1.0), "extra-factor-2")
    assert_names(diagnosis("dW", np.full(3, 11.0), np.ones(3)), "scaled", "11 times")


def test_a_tiny_factor_is_no_batch_mean():
    x = np.array([1.0, 2.0])
    got = 3 * x**2 * 1e-10  # (f(x + h) - f(x - h)) / 2 * h with h = 1e-5
    mistake = diagnosis("grad", got, 3 * x**2)
    assert_names(mistake, "scaled", "1e-10 times")
    assert_names(diagnosis("grad", 3 * x**2 / 64, 3 * x**2), "averaged-not-summed", "1/64")


def test_a_candidate_is_matched_on_its_own_scale():
    ref = np.array([6.0, 8.0])
    tiny = {"step-precedence": ref * 1e-10}  # within the reference's tolerance of 0
    assert_names(diagnosis("g", ref * 1e-10, ref, candidates=tiny), "step-precedence")
    assert_names(diagnosis("g", np.zeros(2), ref, candidates=tiny), "all-zero")
    # an exact zero the mistake gives is still that mistake
    zero = {"softmax-wrong-axis": -0.0}
    assert_names(diagnosis("loss", -0.0, 0.41703, candidates=zero), "softmax-wrong-axis")


def test_a_scalar_answer_with_an_axis_is_told_to_add_up():
    mistake = diagnosis("dl_da", np.array([1.0, 2.0]), 3.0)
    assert_names(mistake, "wrong-shape", "one number is expected; add the parts up")
    assert "batch" not in str(mistake)


def test_wrong_dtype_and_type(layer):
    assert_names(diagnosis("dW", np.zeros((D, M), dtype=int), layer["dW"]), "wrong-dtype", "int")
    assert_names(diagnosis("dW", layer["dW"].astype(np.float32), layer["dW"]), "wrong-dtype")
    assert_names(diagnosis("grads", {"W": 1}, layer["dW"]), "wrong-type", "dict")


def test_nan_and_zero(layer):
    dW = layer["dW"].copy()
    dW[0, 0] = np.nan
    assert_names(diagnosis("dW", dW, layer["dW"]), "nan", "overflowed")
    assert_names(diagnosis("dW", np.zeros((D, M)), layer["dW"]), "all-zero")


def test_unrecognised_mistake_still_reports_cosine_and_error(layer, rng):
    got = rng.standard_normal((D, M))
    assert_names(diagnosis("dW", got, layer["dW"]), "wrong-values", "cosine", "relative error")


def test_every_bank_row_is_reached_by_some_test():
    """Each mistake key in the bank is asserted somewhere in this file."""
    source = open(__file__, encoding="utf-8").read()
    for row in BANK:
        if row.key not in ("extra-factor-2", "scaled"):
            assert f'"{row.key}"' in source, f"no test for {row.key}"


def test_alternative_correct_answers_pass(layer):
    x, delta, yhat, y, z = layer["x"], layer["delta"], layer["yhat"], layer["y"], layer["z"]
    check_gradient("dW", np.einsum("nd,nm->dm", x, delta), layer["dW"])
    check_gradient("db", np.add.reduce(delta, axis=0), layer["db"])
    check_gradient("db", np.ones(N) @ delta, layer["db"])
    tanh_sigmoid = 0.5 * (1 + np.tanh(z / 2))  # another stable sigmoid
    check_gradient(
        "dW", x.T @ (2 * (tanh_sigmoid - y) * tanh_sigmoid * (1 - tanh_sigmoid)), layer["dW"]
    )
    check_gradient(
        "yhat",
        np.where(
            z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z)))
        ),
        yhat,
    )
    check_gradient("scalar", 2.2, 2.2)


def test_check_backward_catches_in_place_change_of_dout(rng):
    x = rng.standard_normal((3, 4))
    mask = x <= 0

    def seed_relu_backward(dout):  # the seed's version
        dout[mask] = 0
        return dout

    with pytest.raises(GradientMistake, match=r"modified-dout"):
        check_backward(seed_relu_backward, rng.standard_normal((3, 4)))
    with pytest.raises(GradientMistake, match=r"returned-dout"):
        check_backward(lambda dout: dout, rng.standard_normal((3, 4)))
    dx = check_backward(lambda dout: dout * ~mask, np.ones((3, 4)))
    assert dx.shape == (3, 4)


def test_check_no_warning():
    z = np.array([-1000.0, 1000.0])
    np.testing.assert_array_equal(check_no_warning("sigmoid", sigmoid, z), [0.0, 1.0])
    with pytest.raises(GradientMistake, match=r"overflow.*\[mistake: numeric-warning\]"):
        check_no_warning("sigmoid", lambda z: 1 / (1 + np.exp(-z)), z)


def hushed_sigmoid(z):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def seterr_sigmoid(z):
    np.seterr(all="ignore")
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("fn", [hushed_sigmoid, seterr_sigmoid])
def test_an_overflow_silenced_by_the_answer_still_counts(fn):
    """1 / (1 + exp(-z)) under np.errstate(over="ignore") gives right values and no warning, but
    it overflows for z < -709.8, which the notebook asks it not to do."""
    settings = np.geterr()
    z = np.array([-1000.0, 1000.0])
    hidden = r"still warns \(overflow.*\[mistake: overflow-hidden\]"
    with pytest.raises(GradientMistake, match=hidden):
        check_no_warning("sigmoid", fn, z)
    assert isinstance(np.errstate, type) and np.seterr.__module__.startswith("numpy")
    assert np.geterr() == settings  # numpy's own functions and settings are back
    with np.errstate(over="ignore"):
        assert hushed_sigmoid(z)[0] == 0.0
    # asking to ignore what never happens is no mistake
    np.testing.assert_array_equal(
        check_no_warning("sigmoid", hushed_sigmoid, np.zeros(2)), [0.5, 0.5]
    )


def test_a_long_numerical_gradient_shows_its_progress(capsys, monkeypatch):
    W = np.arange(6.0).reshape(2, 3)
    expected = 3 * W**2
    np.testing.assert_allclose(numerical_gradient(lambda w: float(np.sum(w**3)), W), expected)
    assert "numerical gradient" not in capsys.readouterr().err  # quick: no bar
    monkeypatch.setattr(gradcheck, "SLOW", 0.0)  # as if each call of f took long
    got = numerical_gradient(lambda w: float(np.sum(w**3)), W)
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    assert "numerical gradient" in capsys.readouterr().err
    assert numerical_gradient(lambda w: 0.0, np.zeros((0, 3))).shape == (0, 3)


def test_numerical_gradient_restores_input_and_sampled_check(rng):
    W = rng.standard_normal((6, 4))
    before = W.copy()
    g = numerical_gradient(lambda w: float(np.sum(w**3)), W)
    np.testing.assert_array_equal(W, before)
    assert rel_error(g, 3 * W**2) < 1e-7
    assert sampled_gradient_error(lambda w: float(np.sum(w**3)), W, 3 * W**2, n=10) < 1e-7
    assert sampled_gradient_error(lambda w: float(np.sum(w**3)), W, -3 * W**2, n=10) > 0.5


def test_reference_parts_swaps_names_and_restores_them():
    from backprop.gradcheck import reference_parts

    namespace = {"MulLayer": "learner's", "helper": 1}
    with reference_parts(namespace, MulLayer="reference", AddLayer="reference add"):
        assert namespace["MulLayer"] == "reference" and namespace["AddLayer"] == "reference add"
    assert namespace == {"MulLayer": "learner's", "helper": 1}
    with pytest.raises(ZeroDivisionError), reference_parts(namespace, MulLayer="reference"):
        raise ZeroDivisionError("a failing check inside the block")
    assert namespace["MulLayer"] == "learner's"


def test_the_grader_reads_back_the_tag_the_checker_writes(layer):
    from backprop.gradcheck import mistakes_in

    message = str(diagnosis("dW", -layer["dW"], layer["dW"]))
    assert mistakes_in(f"Traceback ...\nGradientMistake: {message}") == ["sign-flipped"]
    assert mistakes_in("AssertionError: plain") == []


def test_a_missing_axis_is_not_called_an_extra_one():
    message = str(diagnosis("dl_da", np.float64(1.5), np.array([1.5])))
    assert "an axis of length 1 is missing" in message and "drop" not in message, message
    message = str(diagnosis("db", np.ones((1, 3)), np.ones(3)))
    assert "drop the extra axis" in message, message


def test_unpack_names_a_result_that_is_not_the_tuple():
    with pytest.raises(GradientMistake) as info:
        unpack("sigmoid_layer_grads", np.zeros(3), ("dW", "db"))
    assert_names(info.value, "wrong-return", "a ndarray", "return the tuple (dW, db)")
    with pytest.raises(GradientMistake) as info:
        unpack("sigmoid_layer_grads", [1, 2, 3], ("dW", "db"))
    assert_names(info.value, "wrong-return", "3 values")
    assert unpack("backward", [1.0, 2.0], ("dx", "dy")) == (1.0, 2.0)  # a list will do


def test_unpack_names_parts_in_another_order(rng):
    dW, db = rng.standard_normal((4, 3)), rng.standard_normal(3)
    with pytest.raises(GradientMistake) as info:  # told apart by shape
        unpack("f", (db, dW), ("dW", "db"), expected=(dW, db))
    assert_names(info.value, "wrong-order", "returns (db, dW)", "in the order (dW, db)")
    with pytest.raises(GradientMistake) as info:  # same shapes: told apart by value
        unpack("f", (dW + 1, dW, dW - 1), ("d1", "d2", "d3"), expected=(dW - 1, dW, dW + 1))
    assert_names(info.value, "wrong-order", "returns (d3, d2, d1)")
    with pytest.raises(GradientMistake) as info:  # a dict and a number
        unpack("graph", ({"a": 1.0}, 715.0), ("price", "grads"), expected=(715.0, {"a": 1.0}))
    assert_names(info.value, "wrong-order", "returns (grads, price)")


def test_unpack_leaves_wrong_values_to_the_gradient_check(rng):
    dW, db = rng.standard_normal((4, 3)), rng.standard_normal(3)
    # the right order with a wrong value, or two parts of one shape that are both wrong
    assert unpack("f", (-dW, db), ("dW", "db"), expected=(dW, db))[0] is not None
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    assert len(unpack("f", (2 * a, 2 * b), ("a", "b"), expected=(a, b))) == 2


def test_kept_inputs_names_an_argument_changed_in_place(rng):
    w = rng.standard_normal(3)

    def step_and_apply():
        w[...] += 0.1
        return w

    with pytest.raises(GradientMistake) as info:
        kept_inputs("weight_steps", step_and_apply, x=np.ones(2), w_ho=w)
    assert_names(info.value, "modified-input", "changed its argument w_ho in place")
    assert kept_inputs("f", lambda: 3, w=w) == 3


@pytest.mark.parametrize(
    ("f", "x", "says"),
    [
        (lambda v: np.sum(v**2), np.array([1, 2, 3]), "x has dtype int64: a nudge of h"),
        (np.sin, 1.0, "x is a float: pass a numpy array of floats"),
        (lambda v: np.sum(v**2), [1.0, 2.0], "x is a list: pass a numpy array of floats"),
        (lambda v: v**2, np.array([1.0, 2.0]), "it returned an array of shape (2,)"),
        (lambda v: None, np.array([1.0, 2.0]), "f must return one number (a sum or a mean)"),
    ],
)
def test_a_numerical_gradient_of_the_wrong_things_says_what_to_pass(f, x, says):
    with pytest.raises(TypeError, match=re.escape(says)):
        numerical_gradient(f, x)


def test_a_bias_gradient_summed_over_the_wrong_axes_names_the_batch_axis(layer):
    """db summed over the outputs has one entry per sample, and summed over everything is one
    number: both are told to sum over axis 0, when the batch size is known."""
    wrong_axis = diagnosis("db", layer["delta"].sum(axis=1), layer["db"], batch_size=N)
    assert_names(wrong_axis, "summed-wrong-axis", "one entry per sample", "axis=0")
    everything = diagnosis("db", layer["delta"].sum(), layer["db"], batch_size=N)
    assert_names(everything, "wrong-shape", "summed into one number", "axis=0")


def test_a_candidate_of_another_shape_names_the_mistake_before_the_shape(rng):
    """b2 returned where b1 belongs has another shape than b1 (H hidden units, C classes): it
    was told only that the shape is wrong, where the swap is the mistake."""
    db1, db2 = rng.standard_normal(6), rng.standard_normal(3)
    e = diagnosis("gradient()['b2']", db1, db2, candidates={"gradients-swapped": db1})
    assert e.mistake == "gradients-swapped", e
    assert "the other layer's parameter" in str(e) and "shape (6,); expected (3,)" in str(e)
    e = diagnosis("gradient()['b2']", 2 * db1, db2, candidates={"gradients-swapped": db1})
    assert e.mistake == "wrong-shape", e


def layer_grads_with_a_slip(x, delta):
    dW = x @ delta  # x.T @ delta was meant
    return dW


def test_an_exception_in_the_answer_is_one_line_naming_its_line(rng):
    """An answer that raises gave a whole traceback; the checker says what it raised and on
    which line, and still fails the test."""
    x, delta = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    with pytest.raises(GradientMistake) as info:
        kept_inputs("sigmoid_layer_grads", lambda: layer_grads_with_a_slip(x, delta), x=x)
    said = str(info.value)
    assert info.value.mistake == "raised" and said.startswith(
        "sigmoid_layer_grads raised ValueError: matmul:"
    ), said
    assert (
        "test_gradcheck.py, line " in said and "in layer_grads_with_a_slip: dW = x @ delta" in said
    )
    assert info.value.__suppress_context__ or info.value.__context__ is None  # no second traceback
    with pytest.raises(GradientMistake, match=r"not implemented yet.*\[mistake: not-implemented\]"):
        check_gradient("dx", lambda: (_ for _ in ()).throw(NotImplementedError()), 1.0)
    with pytest.raises(GradientMistake, match=r"\[mistake: raised\]"):
        check_backward(lambda dout: dout[5], np.ones(2))
    # a failed check inside, and the exceptions a test asks for, pass through unchanged
    with pytest.raises(GradientMistake, match=r"\[mistake: numeric-warning\]"):
        check_no_warning("sigmoid", lambda z: 1 / (1 + np.exp(-z)), np.array([-1000.0]))
    with pytest.raises(ValueError):
        gradcheck.call_yours("sgd_step", int, "x", let_through=(ValueError,))

"""what_raised names the learner's function or method that raised, in one line."""

import numpy as np
from backprop.explain import what_raised


class MulLayer:
    def forward(self, x, y):
        return np.ones((3, 2)) * np.ones((2, 3))  # a broadcasting slip


def apple_orange_graph():
    return MulLayer().forward(1, 2)


def test_names_the_innermost_of_the_learners_code():
    try:
        apple_orange_graph()
    except ValueError as exc:
        line = what_raised(exc, apple_orange_graph, MulLayer)
    assert line.startswith("Your MulLayer.forward raised ValueError: operands could not")
    assert "\n" not in line and line.endswith("then run this cell again.")


def test_blames_the_first_when_none_of_its_frames_is_the_learners():
    try:
        raise KeyError("apple")
    except KeyError as exc:
        assert what_raised(exc, apple_orange_graph).startswith("Your apple_orange_graph raised")


class Affine:
    def forward(self, x):
        raise NotImplementedError()  # the stub of an answer cell


def two_layer_net():
    return Affine().forward(1)


def test_a_stub_is_named_as_work_to_do():
    try:
        two_layer_net()
    except NotImplementedError as exc:
        line = what_raised(exc, two_layer_net, Affine)
    assert line == (
        "Your Affine.forward is not implemented yet: fill it in above, then run this cell again."
    )


class Relu:
    def backward(self, dout):
        return None  # a forgotten return: it raises nothing itself


def test_names_them_all_when_the_cell_fails_on_what_one_returned():
    """The cell unpacks or formats a result and fails there: none of the learner's frames
    raised, and naming the first of them would blame a right answer."""
    try:
        dx, dw = Relu().backward(1.0)
    except TypeError as exc:
        line = what_raised(exc, MulLayer, Relu, apple_orange_graph)
    assert line.startswith(
        "One of your MulLayer, Relu or apple_orange_graph returned something this cell cannot use "
        "(TypeError: cannot unpack non-iterable"
    ), line
    assert line.endswith("fix it, then run this cell again.")
    assert "Your MulLayer raised" not in line and "\n" not in line


def sigmoid_prime(z):
    z * (1 - z)  # a forgotten return


def error_terms(z):
    delta = (1.0 - z) * sigmoid_prime(z)
    return delta


def sigmoid(z):
    return None  # a stub left empty


def hidden(z):
    out = sigmoid(z)
    return out @ np.ones(2)


def test_names_the_function_whose_none_the_raiser_used():
    """error_terms multiplies by what sigmoid_prime returns: when that is None, error_terms
    raises, and it is sigmoid_prime that needs fixing."""
    try:
        error_terms(np.ones(2))
    except TypeError as exc:
        line = what_raised(exc, error_terms, sigmoid_prime)
    assert line.startswith("Your sigmoid_prime returned None, which your error_terms used"), line
    assert "fix sigmoid_prime first" in line and "\n" not in line


def test_follows_a_none_kept_in_a_variable_to_the_function_that_gave_it():
    try:
        hidden(np.ones(2))
    except ValueError as exc:  # numpy's matmul refuses None without saying None
        line = what_raised(exc, hidden, sigmoid)
    assert line.startswith("Your sigmoid returned None, which your hidden used"), line


def test_where_in_yours_names_the_learners_line_not_numpys():
    from backprop.explain import where_in_yours

    try:
        hidden(np.ones(2))
    except ValueError as exc:
        where = where_in_yours(exc)
    assert where.startswith("test_explain.py, line ") and where.endswith(
        "in hidden: return out @ np.ones(2)"
    ), where

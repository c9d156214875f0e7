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
    assert line.startswith("This cell stopped with TypeError: cannot unpack non-iterable"), line
    assert "your MulLayer, Relu or apple_orange_graph returned" in line
    assert "Your MulLayer raised" not in line and "\n" not in line

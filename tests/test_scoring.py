"""Marks from outputs: a test cell earns its points when it ran without error; an answer cell
graded by hand gets 0 while it is the released stub and waits for a human otherwise."""

import nbformat
from nbconvert.filters import strip_ansi as nbconvert_strip_ansi

from grader import scoring

STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def cell(source, *, solution=False, grade=False, points=1, outputs=()):
    c = nbformat.v4.new_code_cell(source)
    c.metadata["nbgrader"] = {
        "grade_id": "x",
        "solution": solution,
        "grade": grade,
        "points": points,
    }
    c.outputs = list(outputs)
    return c


def error(ename="AssertionError", evalue="", traceback=()):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=list(traceback))


def test_a_test_cell_scores_all_or_nothing():
    assert scoring.cell_score(cell("assert True", grade=True, points=3)) == (3.0, 3.0)
    failed = cell("assert False", grade=True, points=3, outputs=[error()])
    assert scoring.cell_score(failed) == (0.0, 3.0)


def test_a_test_cell_scores_only_when_the_kernel_replied_ok():
    ran = cell("assert True", grade=True, points=3)
    assert scoring.cell_score(ran, status="ok") == (3.0, 3.0)
    assert scoring.cell_score(ran, status="error") == (0.0, 3.0)  # an error hidden from output
    assert scoring.cell_score(ran, status=None) == (0.0, 3.0)  # never run: no reply


def test_a_hand_graded_answer_is_zero_only_while_it_is_the_stub():
    assert scoring.cell_score(cell(STUB, solution=True, grade=True, points=2), STUB) == (0.0, 2.0)
    written = cell("x = 1", solution=True, grade=True, points=2)
    assert scoring.cell_score(written, STUB) == (None, 2.0)


def test_an_unanswered_exercise_is_diagnosed_as_not_implemented():
    answer = cell(STUB, solution=True)
    test = cell("check()", grade=True, outputs=[error("NameError", "name 'f' is not defined")])
    assert scoring._untagged_reason(test, answer, STUB, None) == "not-implemented"
    answer.source = "def f(): return 1"
    assert scoring._untagged_reason(test, answer, STUB, None) == "unexplained"


def test_an_error_raised_inside_the_answer_is_diagnosed_as_raised():
    """A test that calls the learner's function, which raises: the traceback goes through the
    answer cell (IPython names its frames by the cell's execution count)."""
    answer = cell("def f(x):\n    return x[3]", solution=True)
    answer.execution_count = 4
    frames = [
        "Cell In[7], line 2\n      1 assert f([1, 2, 3, 4]) == 4\n----> 2 f([1])",
        "Cell In[4], line 2, in f(x)\n      1 def f(x):\n----> 2     return x[3]",
    ]
    test = cell(
        "f([1])", grade=True, outputs=[error("IndexError", "list index out of range", frames)]
    )
    assert scoring._untagged_reason(test, answer, STUB, None) == "raised"
    answer.execution_count = 14  # "Cell In[14]" is another cell
    assert scoring._untagged_reason(test, answer, STUB, None) == "unexplained"
    answer.execution_count = None  # never ran
    assert scoring._untagged_reason(test, answer, STUB, None) == "unexplained"


def test_colours_are_stripped_as_nbconvert_does():
    red, green, grey, reset = "\x1b[0;31m", "\x1b[1;32m", "\x1b[38;5;241m", "\x1b[0m"
    line = f"{red}---> 12{reset} check({grey}x\x1b[39m) {green}[mistake: sign]{reset}"
    plain = "---> 12 check(x) [mistake: sign]"
    assert scoring.strip_ansi(line) == nbconvert_strip_ansi(line) == plain

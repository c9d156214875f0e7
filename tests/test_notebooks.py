"""The course notebooks: solutions run clean, student versions fail only where unanswered,
``notebooks/`` is what the release step makes, and every exercise's tests catch the common
mistakes (fixtures in ``tests/fixtures/answers``) through nbgrader's own validator."""

import ast
import re
from collections import Counter

import nbformat
import nbharness as h
import pytest

CONTRACT = {
    "01-chain-rule/chain_rule.ipynb": [
        "numerical_derivative",
        "numerical_gradient",
        "linear_neuron_grads",
        "fanout_grad",
    ],
    "02-computation-graphs/computation_graphs.ipynb": [
        "MulLayer",
        "AddLayer",
        "apple_orange_graph",
        "Relu",
        "Sigmoid",
    ],
    "03-sigmoid/sigmoid.ipynb": [
        "sigmoid",
        "sigmoid_prime",
        "sigmoid_layer_grads",
        "error_terms",
        "weight_steps",
    ],
    "04-vectorised-backprop/vectorised_backprop.ipynb": [
        "Affine",
        "SoftmaxWithLoss",
        "TwoLayerNet",
        "find_the_bug",
    ],
    "05-training-loop/training_loop.ipynb": [
        "iterate_minibatches",
        "sgd_step",
        "accuracy",
        "train",
    ],
}
ASSIGNMENTS = h.assignments()
pytestmark = pytest.mark.skipif(not ASSIGNMENTS, reason="no notebooks in solutions/ yet")


def _source_nb(assignment):
    return nbformat.read(h.notebook_path(assignment, h.SOLUTIONS), as_version=4)


def _exercises(nb):
    return [h.grade_id(c) for c in nb.cells if h.is_answer(c)]


def test_every_contract_notebook_exists():
    missing = [name for name in CONTRACT if not (h.SOLUTIONS / name).exists()]
    assert not missing, f"notebooks of CURRICULUM.md missing from solutions/: {missing}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercise_contract_and_points(assignment):
    nb = _source_nb(assignment)
    name = f"{assignment}/{h.notebook_path(assignment, h.SOLUTIONS).name}"
    exercises = _exercises(nb)
    for required in CONTRACT.get(name, []):
        assert required in exercises, f"{name}: no answer cell with grade_id {required!r}"
    ids = [h.grade_id(c) for c in nb.cells if h.grade_id(c)]
    assert len(ids) == len(set(ids)), f"duplicated grade_ids: {Counter(ids).most_common(3)}"
    points = 0.0
    tested = set()
    for cell in nb.cells:
        if h.is_answer(cell):
            gid = h.grade_id(cell)
            defined = re.findall(r"^(?:def|class) (\w+)", cell.source, flags=re.M)
            assert gid in defined, f"answer cell {gid} must define {gid} (defines {defined})"
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        if h.is_test(cell):
            gid = h.grade_id(cell)
            owner = h.exercise_of(gid, exercises)
            assert owner, f"test cell {gid} does not name an exercise (test_<exercise>...)"
            assert "### BEGIN HIDDEN TESTS" in cell.source, f"{gid} has no hidden tests"
            tested.add(owner)
            points += cell.metadata.nbgrader["points"]
    assert tested == set(exercises), f"exercises without a test cell: {set(exercises) - tested}"
    assert 10 <= points <= 20, f"{assignment} is worth {points} points; expected 10 to 20"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebook_runs_clean(assignment):
    nb = h.execute_in_copy(assignment, _source_nb(assignment))
    assert h.cell_errors(nb) == {}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_notebook_fails_only_where_unanswered(assignment):
    nb = nbformat.read(h.notebook_path(assignment), as_version=4)
    exercises = _exercises(nb)
    errors = h.cell_errors(h.execute_in_copy(assignment, nb))
    failing = set()
    for key, text in errors.items():
        assert isinstance(key, str) and key.startswith("test_"), (
            f"cell {key} errors in the student notebook:\n{text[:2000]}"
        )
        assert "NotImplementedError" in text or "[mistake: not-implemented]" in text, (
            f"{key} fails for another reason than a missing answer:\n{text[:2000]}"
        )
        failing.add(h.exercise_of(key, exercises))
    assert failing == set(exercises), f"test cells that pass unanswered: {set(exercises) - failing}"


def test_notebooks_are_what_release_makes():
    from grader.release import release

    assert release(check=True, out=lambda *_: None) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_fail_only_with_a_named_mistake(assignment):
    """A bare ``assert`` in a test cell fails with a message that names no mistake: the learner
    gets no ``[mistake: ...]`` tag and the grader's report cannot count it. Tests fail through
    the checker (``check_gradient``, ``fail``, ``unpack``, ...) instead."""
    bare = []
    for cell in _source_nb(assignment).cells:
        if h.grade_id(cell) and h.grade_id(cell).startswith("test_"):
            source = "\n".join(
                line for line in cell.source.splitlines() if not line.lstrip().startswith("%")
            )
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Assert):
                    bare.append(f"{h.grade_id(cell)}, line {node.lineno}")
    assert not bare, f"bare asserts in test cells: {bare}"


FIXTURES = h.fixtures()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_exercise_has_wrong_and_alternative_fixtures(assignment):
    kinds = {}
    for f in h.fixtures(assignment):
        kinds.setdefault(f.exercise, Counter())["pass" if f.expect == "pass" else "wrong"] += 1
    for exercise in _exercises(_source_nb(assignment)):
        count = kinds.get(exercise, Counter())
        assert count["wrong"] >= 2, f"{exercise}: needs at least two wrong-answer fixtures"
        assert count["pass"] >= 1, f"{exercise}: needs at least one alternative correct answer"


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.id for f in FIXTURES])
def test_fixture_through_nbgrader_validator(fixture):
    """A wrong answer fails its own test cell with the expected diagnosis; an alternative
    correct answer passes every test cell of its exercise."""
    nb = h.student_notebook(fixture.assignment, {fixture.exercise: fixture.source})
    exercises = _exercises(nb)
    failed = h.validate(nb, fixture.assignment)
    assert "__changed__" not in failed, failed["__changed__"]
    mine = {k: v for k, v in failed.items() if h.exercise_of(k, exercises) == fixture.exercise}
    if fixture.expect == "pass":
        assert not mine, f"a correct answer was rejected:\n{next(iter(mine.values()), '')[:2000]}"
        return
    assert mine, f"{fixture.id}: the wrong answer passed every test of {fixture.exercise}"
    found = [key for text in mine.values() for key in h.mistakes_in(text)]
    assert fixture.expect in found, (
        f"{fixture.id}: expected diagnosis [mistake: {fixture.expect}], got {found}:\n"
        + "\n".join(mine.values())[:3000]
    )
    if fixture.only is not None:
        assert set(mine) == {fixture.only}, (
            f"{fixture.id}: one slip, marked in {sorted(mine)}; only {fixture.only} should fail:\n"
            + "\n".join(mine.values())[:3000]
        )


ALTERNATIVES = [f for f in FIXTURES if f.expect == "pass"]


@pytest.mark.parametrize("fixture", ALTERNATIVES, ids=[f.id for f in ALTERNATIVES])
def test_alternative_correct_answers_pass_the_hidden_tests_too(fixture):
    """The validator above runs a student notebook's visible tests; the grader runs the hidden
    ones too, which must not reject another correct way of writing the answer."""
    nb = h.student_notebook(
        fixture.assignment, {fixture.exercise: fixture.source}, folder=h.SOLUTIONS
    )
    exercises = _exercises(nb)
    errors = h.cell_errors(h.execute_in_copy(fixture.assignment, nb))
    mine = {
        key: text
        for key, text in errors.items()
        if isinstance(key, str) and h.exercise_of(key, exercises) == fixture.exercise
    }
    assert not mine, f"rejected by the hidden tests:\n{next(iter(mine.values()), '')[:2000]}"


def test_an_error_in_the_answer_is_one_line_that_names_its_line():
    """An answer that raises (here a matmul of the wrong shapes) showed the whole traceback,
    down into the learner's cell; the test says what was raised and where, in one line, and
    still fails."""
    fixture = h.load_fixture(h.FIXTURES / "03-sigmoid" / "sigmoid_layer_grads__raises.py")
    nb = h.student_notebook(fixture.assignment, {fixture.exercise: fixture.source})
    text = re.sub(
        r"\x1b\[[0-9;]*m", "", h.validate(nb, fixture.assignment)["test_sigmoid_layer_grads"]
    )
    last = text.strip().splitlines()[-1]
    assert last.startswith("GradientMistake: sigmoid_layer_grads raised ValueError: matmul:"), last
    assert re.search(r"at Cell In\[\d+\], line 6, in sigmoid_layer_grads: dW = x @ delta", last)
    assert "[mistake: raised]" in last
    assert "ValueError  " not in text and "----> 6" not in text, text  # no traceback of the answer


# Wrong answers whose results the demonstration cells (the cells that are not tests) cannot use:
# those cells must still run, on the library's version or with one line saying what is wrong,
# since a learner runs the notebook top to bottom before every answer is right.
UNUSABLE = {
    "01-chain-rule/fanout_grad__returns_nothing",
    "01-chain-rule/numerical_derivative__returns_nothing",
    "05-training-loop/accuracy__returns_nothing",
    "05-training-loop/train__returns_nothing",
}
UNUSABLE_FIXTURES = [f for f in FIXTURES if f.id in UNUSABLE]


@pytest.mark.parametrize("fixture", UNUSABLE_FIXTURES, ids=[f.id for f in UNUSABLE_FIXTURES])
def test_demonstration_cells_run_with_a_wrong_answer(fixture):
    nb = h.student_notebook(fixture.assignment, {fixture.exercise: fixture.source})
    errors = h.cell_errors(h.execute_in_copy(fixture.assignment, nb))
    stray = {
        key: text
        for key, text in errors.items()
        if not (isinstance(key, str) and key.startswith("test_"))
    }
    assert not stray, "cells that are not tests failed:\n" + "\n".join(
        f"cell {key}: {text[:1500]}" for key, text in stray.items()
    )


# Wrong answers that make a training run in the demonstration cells blow up when those cells
# train with them: the cells must notice the answer is wrong and train with the library's loop.
DIVERGING = ["05-training-loop/sgd_step__sign_flipped"]
DIVERGING_FIXTURES = [f for f in FIXTURES if f.id in DIVERGING]


@pytest.mark.parametrize("fixture", DIVERGING_FIXTURES, ids=[f.id for f in DIVERGING_FIXTURES])
def test_demonstration_cells_print_no_numpy_warnings_with_a_wrong_answer(fixture):
    """An sgd_step that climbs the gradient made the spiral's training overflow, and numpy's
    RuntimeWarnings filled the cell under its decision boundary."""
    nb = h.execute_in_copy(
        fixture.assignment,
        h.student_notebook(fixture.assignment, {fixture.exercise: fixture.source}),
    )
    warned = {
        i: out.text[:1500]
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and not h.grade_id(cell)
        for out in cell.get("outputs", [])
        if out.output_type == "stream" and out.name == "stderr"
    }
    assert not warned, f"cells that are not tests wrote to stderr: {warned}"


def _printed_with(name, marker):
    """What the cell whose source holds ``marker`` printed, in the notebook run with the wrong
    answer of fixture ``name`` (``assignment/exercise__label.py``)."""
    fixture = h.load_fixture(h.FIXTURES / name)
    nb = h.execute_in_copy(
        fixture.assignment,
        h.student_notebook(fixture.assignment, {fixture.exercise: fixture.source}),
    )
    (cell,) = [c for c in nb.cells if marker in c.source]
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


def test_bill_explorer_falls_back_to_the_library_when_the_graph_returns_nothing():
    """The explorer needs a price and five gradients: given an apple_orange_graph that returns
    None, it showed an error where the picture belongs; the library's layers step in instead."""
    said = _printed_with(
        "02-computation-graphs/apple_orange_graph__returns_nothing.py", "apple_orange_explorer("
    )
    assert "the library's layers compute the numbers" in said, said


def test_layer_check_names_the_layers_when_a_backward_returns_nothing():
    """The last check of notebook 2 printed "relative error dx: nan" for a Relu.backward that
    returns None; it says which layers to look at instead."""
    said = _printed_with("02-computation-graphs/Relu__returns_nothing.py", "def run(x, w):")
    assert "nan" not in said and "your Relu, MulLayer or Sigmoid returned" in said, said
    # what went wrong and what to do, said plainly (it began "This cell stopped with ...")
    assert said.startswith("One of your Relu, MulLayer or Sigmoid returned something"), said
    assert "run their test cells above" in said, said


def test_steps_of_the_two_layer_net_blame_the_function_that_returned_nothing():
    """A sigmoid_prime that returns None makes error_terms, which multiplies by what it returns,
    raise: the closing cell of notebook 3 blamed error_terms, which is right."""
    said = _printed_with("03-sigmoid/sigmoid_prime__returns_nothing.py", "for step in range(301)")
    assert "\nYour sigmoid_prime returned None, which your error_terms used" in said, said
    assert "error_terms raised" not in said and "fix sigmoid_prime first" in said, said

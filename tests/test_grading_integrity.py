"""Grading cannot be cheated with one line in a cell: a learner's code that rebinds the checker,
patches the library, hides exceptions or empties the test cells earns nothing, while honest
submissions are graded as before. One notebook (01-chain-rule), graded with one worker."""

import json
import os

import nbformat
import nbharness as nh
import pytest

from grader import course, runner
from grader.__main__ import main
from grader.master import Master

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grading-integrity")]
A = "01-chain-rule"

# One line at the top of the first answer cell of a notebook whose answers are all wrong.
CHEATS = {
    "rebound-checker": "check_gradient = lambda *a, **k: None",
    "patched-library": "import backprop.gradcheck as g; "
    "g.check_gradient.__code__ = (lambda *a, **k: None).__code__",
    "custom-exception-handler": "get_ipython().set_custom_exc((BaseException,), "
    "lambda *a, **k: None)",
    "silent-traceback": "get_ipython().showtraceback = lambda *a, **k: None",
    "empty-test-cells": "get_ipython().input_transformers_post.append(lambda lines: [])",
    "patched-shell-class": "type(get_ipython()).transform_cell = lambda self, cell: ''",
}


def _wrong_answers():
    """``{exercise: fixture}``: a wrong answer for every exercise."""
    wrong = {}
    for fx in nh.fixtures(A):
        if fx.expect != "pass":
            wrong.setdefault(fx.exercise, fx)
    return wrong


WRONG = _wrong_answers()


def _all_wrong():
    """The student notebook with every answer wrong."""
    return nh.student_notebook(A, {e: fx.source for e, fx in WRONG.items()})


def _all_wrong_with(line):
    """Every answer wrong, and ``line`` at the top of the first answer cell."""
    nb = _all_wrong()
    first = next(c for c in nb.cells if nh.is_answer(c))
    first.source = f"{line}\n{first.source}"
    return nb


def _setup_cell_rebinding():
    """Every answer wrong, and the checker rebound in a cell of the learner's own, after the
    set-up cell."""
    nb = _all_wrong()
    first_answer = next(i for i, c in enumerate(nb.cells) if nh.is_answer(c))
    nb.cells.insert(first_answer, nbformat.v4.new_code_cell(CHEATS["rebound-checker"]))
    return nb


def _skipped_tests():
    """Every answer wrong, and every test cell tagged so that nbclient does not run it."""
    nb = _all_wrong()
    for cell in nb.cells:
        if nh.is_test(cell):
            cell.metadata["tags"] = ["skip-execution"]
    return nb


def _class():
    """``{student: notebook}``: one cheat each, the setup-cell and skipped-test variants, and
    two honest learners: every answer correct, and every answer wrong (``WRONG``)."""
    students = {f"cheat-{name}": _all_wrong_with(line) for name, line in CHEATS.items()}
    students["cheat-in-a-setup-cell"] = _setup_cell_rebinding()
    students["cheat-skipped-tests"] = _skipped_tests()
    students["honest-correct"] = nh.student_notebook(A)
    students["honest-wrong"] = _all_wrong()
    return students


class TestGradingIntegrity:
    @pytest.fixture(scope="class")
    @classmethod
    def results(cls, tmp_path_factory):
        """``{student: result}`` of the class, collected and autograded with one worker."""
        root = tmp_path_factory.mktemp("integrity")
        saved = os.environ.get(course.WORKSPACE_ENV)
        os.environ[course.WORKSPACE_ENV] = str(root / "workspace")
        try:
            for sid, nb in _class().items():
                path = root / "class" / sid / A / nh.notebook_path(A).name
                path.parent.mkdir(parents=True)
                nbformat.write(nb, path)
            assert main(["collect", str(root / "class")]) == 0
            assert main(["autograde", "-j", "1", "--cell-timeout", "20"]) == 0
            folder = course.folder("results") / A
            yield {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
        finally:
            if saved is None:
                os.environ.pop(course.WORKSPACE_ENV, None)
            else:
                os.environ[course.WORKSPACE_ENV] = saved

    @staticmethod
    def score(result):
        return sum(s or 0 for s, *_ in result["grades"].values())

    @pytest.mark.parametrize(
        "student",
        [f"cheat-{name}" for name in CHEATS] + ["cheat-in-a-setup-cell", "cheat-skipped-tests"],
    )
    def test_a_cheat_earns_nothing(self, results, student):
        result = results[student]
        assert self.score(result) == 0, result["grades"]
        assert not any(ex["passed"] for ex in result["exercises"]), result["exercises"]
        if student != "cheat-skipped-tests":  # tests that ran name the wrong answers' mistakes
            assert result["exercises"] == results["honest-wrong"]["exercises"]

    def test_an_honest_correct_submission_gets_full_marks(self, results):
        result = results["honest-correct"]
        full = sum(points for _, points, *_ in result["grades"].values())
        assert full > 0 and self.score(result) == full, result["grades"]
        assert result["flags"] == []

    def test_honest_wrong_answers_keep_their_diagnosis(self, results):
        result = results["honest-wrong"]
        assert self.score(result) == 0, result["grades"]
        for ex in result["exercises"]:
            assert not ex["passed"] and WRONG[ex["name"]].expect in ex["mistakes"], ex

    def test_an_error_hidden_from_the_output_is_shown_and_counted(self, tmp_path):
        """Without the master's reset: the reply's status still tells the error apart."""
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell(CHEATS["custom-exception-handler"]),
            nbformat.v4.new_code_cell("assert False"),
        ]
        log = runner.run(nb, tmp_path)
        assert log.statuses == {0: "ok", 1: "error"}
        assert [(o.ename, o.evalue) for o in nb.cells[1].outputs] == [
            ("HiddenError", runner.HIDDEN_ERROR)
        ]

    def test_the_reset_leaves_the_learners_names_alone(self, tmp_path):
        """The names a notebook's cells see are the same with the reset and without it."""
        master = Master.load(nh.notebook_path(A, nh.SOLUTIONS), A)
        names = "print(sorted(k for k in globals() if not k.startswith('_')))"
        seen = []
        for given in (None, master):
            nb = nh.student_notebook(A)
            nb.cells.append(nbformat.v4.new_code_cell(names))
            runner.run(nb, tmp_path, master=given)
            seen.append(nb.cells[-1].outputs[0].text)
        assert seen[0] == seen[1]


RELOADS = """
import importlib.machinery, json, sys
import backprop.gradcheck, backprop.layers
from grader.grading_env import reload_library

sys.dont_write_bytecode = True  # as where no bytecode cache is written: every load compiles
compiled = []
to_code = importlib.machinery.SourceFileLoader.source_to_code


def counting(self, data, path, *args, **kwargs):
    compiled.append(path)
    return to_code(self, data, path, *args, **kwargs)


importlib.machinery.SourceFileLoader.source_to_code = counting
codes, checkers = {}, []
for _ in range(3):
    reload_library("backprop", ("backprop.widgets",), codes)
    checkers.append(id(backprop.gradcheck.check_gradient))
print(json.dumps({
    "compiled": sorted({p.rsplit("/", 1)[-1]: compiled.count(p) for p in compiled}.items()),
    "fresh": len(set(checkers)) == 3,
}))
"""


def test_the_library_is_compiled_once_per_kernel_and_run_again_before_each_test():
    """A reset reloads the course library before every test cell: compiling its source each
    time cost three quarters of that (where no bytecode cache is written)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", RELOADS], capture_output=True, text=True, cwd=course.REPO
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["fresh"], "every reload makes new functions"
    counts = dict(report["compiled"])
    assert counts.get("gradcheck.py") == 1 and counts.get("layers.py") == 1, counts


def test_the_kernel_side_source_is_read_once_and_every_reset_gets_its_own_token(monkeypatch):
    import inspect

    from grader import grading_env

    read = []
    getsource = inspect.getsource
    monkeypatch.setattr(grading_env.inspect, "getsource", lambda f: read.append(f) or getsource(f))
    grading_env._kernel_side_source.cache_clear()
    first, token1 = grading_env._user_expression("note_start(get_ipython())")
    second, token2 = grading_env._user_expression("note_start(get_ipython())")
    assert read == list(grading_env.KERNEL_SIDE)
    assert token1 != token2 and first.replace(token1, token2) == second

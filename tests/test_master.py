"""A submission is graded against its master: built from the source notebook by nbgrader's
preprocessors, or taken from the grader's cache while nothing it was built from has changed."""

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))

import tiny_course as tiny  # noqa: E402

from grader import course, master  # noqa: E402
from grader.master import Master  # noqa: E402


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv(course.CACHE_ENV, str(tmp_path / "cache"))
    return tiny.write_source(tmp_path / "solutions")


def test_a_cached_master_is_the_one_built(source, builds):
    first = Master.load(source, tiny.ASSIGNMENT)
    second = Master.load(source, tiny.ASSIGNMENT)
    assert len(builds) == 1, "the second load built the master again"
    assert second.graded == first.graded and second.released == first.released
    assert second.fingerprint == first.fingerprint and second.stubs == first.stubs
    assert second.hidden_lines() == first.hidden_lines() != []
    assert second.graded_nb().cells[0].source == first.graded_nb().cells[0].source


def test_a_changed_source_is_built_again(source, builds):
    before = Master.load(source, tiny.ASSIGNMENT)
    nb = nbformat.read(source, as_version=4)
    test_add = next(c for c in nb.cells if master.grade_id(c) == "test_add")
    test_add.metadata["nbgrader"]["points"] = 5
    nbformat.write(nb, source)
    after = Master.load(source, tiny.ASSIGNMENT)
    assert len(builds) == 2 and after.fingerprint != before.fingerprint
    assert dict(after.graded_cells())["test_add"] == 5
    assert len(list((course.cache() / "masters").glob("*.json"))) == 1, "stale copies are kept"


def test_a_damaged_cache_is_built_again(source, builds):
    Master.load(source, tiny.ASSIGNMENT)
    (cached,) = (course.cache() / "masters").glob("*.json")
    cached.write_text("{not json")
    assert Master.load(source, tiny.ASSIGNMENT).exercises == ["relu_backward", "sigmoid", "add"]
    assert len(builds) == 2

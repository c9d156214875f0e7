"""``collect`` tells a notebook by its cells, not by its folder or name: a notebook filed under
another assignment is imported where it belongs, or listed with the reason, never renamed and
graded against the wrong assignment. Student ids are read as people write names (accents,
zips made on any system), and a bad one is named with what to do about it."""

import copy
import json
import os
import struct
import unicodedata
import zipfile
import zlib
from datetime import datetime, timezone

import nbformat
import nbharness as nh
import pytest

from grader import course
from grader.__main__ import main

pytestmark = pytest.mark.slow
ONE, TWO = "01-chain-rule", "02-computation-graphs"


def _stripped(nb):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    return nb


@pytest.fixture
def collected(tmp_path, capsys, monkeypatch):
    """A class with misfiled notebooks, collected: ``(exit code, error lines, submitted/)``."""
    if not {ONE, TWO} <= set(nh.assignments()):
        pytest.skip("the course's first two notebooks are not in solutions/")
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    one, two = nh.student_notebook(ONE), nh.student_notebook(TWO)
    files = {
        f"ivan/{TWO}/chain_rule.ipynb": one,  # 01's notebook in 02's folder
        f"jo/{ONE}/chain_rule.ipynb": one,
        f"jo/{TWO}/chain_rule.ipynb": one,  # a second copy, and he has one under 01
        f"kay/{TWO}/computation_graphs (1).ipynb": _stripped(two),  # known by its test cells
        f"lee/{TWO}/scratch.ipynb": nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell("print('hello')")]
        ),
        f"max/{ONE}/computation_graphs.ipynb": two,  # the two swapped
        f"max/{TWO}/chain_rule.ipynb": one,
    }
    for name, nb in files.items():
        path = tmp_path / "class" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    capsys.readouterr()
    code = main(["collect", str(tmp_path / "class")])
    lines = capsys.readouterr().err.strip().splitlines()
    submitted = course.folder("submitted")
    return code, lines, sorted(str(p.relative_to(submitted)) for p in submitted.rglob("*.ipynb"))


def test_a_notebook_is_imported_under_the_assignment_its_cells_belong_to(collected):
    code, lines, submitted = collected
    assert submitted == [
        f"ivan/{ONE}/chain_rule.ipynb",
        f"jo/{ONE}/chain_rule.ipynb",
        f"kay/{TWO}/computation_graphs.ipynb",
        f"max/{ONE}/chain_rule.ipynb",
        f"max/{TWO}/computation_graphs.ipynb",
    ]
    looks = f"looks like {ONE}'s notebook, found under {TWO}"
    assert sorted(lines) == sorted(
        [
            f"moved ivan/{TWO}/chain_rule.ipynb: {looks}; imported under {ONE}",
            f"skipped jo/{TWO}/chain_rule.ipynb: {looks}; jo has a notebook under {ONE}",
            f"skipped lee/{TWO}/scratch.ipynb: no cell of it matches {TWO}'s notebook "
            "(computation_graphs.ipynb)",
            f"moved max/{ONE}/computation_graphs.ipynb: looks like {TWO}'s notebook, found "
            f"under {ONE}; imported under {TWO}",
            f"moved max/{TWO}/chain_rule.ipynb: {looks}; imported under {ONE}",
        ]
    ), lines
    assert code == 1, "some files were skipped"


def test_a_malformed_cell_skips_its_notebook_not_the_collection(tmp_path, capsys, monkeypatch):
    """Cells are read to tell the notebook, and graded later: a cell without a type or a
    source, or with a source that is not text, skips its notebook with the cell named (grading
    it would fail), and the others are imported."""
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    good = nh.student_notebook(ONE)
    code_cell = next(c for c in good.cells if c.cell_type == "code")
    cells = {
        "no-source": {k: v for k, v in code_cell.items() if k != "source"},
        "no-type": {k: v for k, v in code_cell.items() if k != "cell_type"},
        "a-number": dict(code_cell, source=5),
        "numbers": dict(code_cell, source=[1, 2]),
        "not-a-dict": "print(1)",
    }
    for sid, cell in cells.items():
        path = tmp_path / "class" / sid / ONE / "chain_rule.ipynb"
        path.parent.mkdir(parents=True)
        nb = json.loads(nbformat.writes(good))
        nb["cells"].insert(2, cell)
        path.write_text(json.dumps(nb))
    _write(tmp_path / "class", {f"ok/{ONE}/chain_rule.ipynb": good})
    code, _, err = _collect(tmp_path / "class", capsys)
    assert _notebooks(course.folder("submitted")) == [f"ok/{ONE}/chain_rule.ipynb"]
    invalid = "not a valid notebook: cell 3"
    assert sorted(err) == [
        f"skipped a-number/{ONE}/chain_rule.ipynb: {invalid} (code) has a source that is not text",
        f"skipped no-source/{ONE}/chain_rule.ipynb: {invalid} (code) has no source",
        f"skipped no-type/{ONE}/chain_rule.ipynb: {invalid} has no cell type",
        f"skipped not-a-dict/{ONE}/chain_rule.ipynb: {invalid} is not a JSON object",
        f"skipped numbers/{ONE}/chain_rule.ipynb: {invalid} (code) has a source that is not text",
    ]
    assert code == 1


@pytest.fixture
def submitted(tmp_path, monkeypatch):
    """The ``submitted/`` folder of a new workspace (the course's first notebook needed)."""
    if ONE not in nh.assignments():
        pytest.skip("the course's first notebook is not in solutions/")
    monkeypatch.setenv(course.WORKSPACE_ENV, str(tmp_path / "workspace"))
    return course.folder("submitted")


def _write(folder, files):
    """Write ``{relative path: notebook}`` under ``folder``; returns ``folder``."""
    for name, nb in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    return folder


def _collect(source, capsys):
    """``collect source``: ``(exit code, output lines, error lines)``."""
    capsys.readouterr()
    code = main(["collect", str(source)])
    captured = capsys.readouterr()
    return code, captured.out.strip().splitlines(), captured.err.strip().splitlines()


def _notebooks(submitted):
    return sorted(p.relative_to(submitted).as_posix() for p in submitted.rglob("*.ipynb"))


def test_ids_with_accents_are_accepted_and_a_refused_one_says_what_is_allowed(
    submitted, tmp_path, capsys
):
    one = nh.student_notebook(ONE)
    decomposed = unicodedata.normalize("NFD", "Zoë")  # as macOS may spell the folder
    files = {
        f"José/{ONE}/chain_rule.ipynb": one,
        f"{decomposed}/{ONE}/chain_rule.ipynb": one,
        f"José Müller/{ONE}/chain_rule.ipynb": one,
    }
    code, _, err = _collect(_write(tmp_path / "class", files), capsys)
    assert _notebooks(submitted) == [f"José/{ONE}/chain_rule.ipynb", f"Zoë/{ONE}/chain_rule.ipynb"]
    assert err == [
        f"skipped José Müller/{ONE}/chain_rule.ipynb: 'José Müller' is not a valid student id "
        "(letters, digits and _ . @ + -, starting with a letter or digit; no spaces): rename "
        "it, e.g. to 'José_Müller'"
    ]
    assert code == 1


class _LegacyName(zipfile.ZipInfo):
    """A zip entry whose name is written in ``encoding`` without the UTF-8 flag, as Info-ZIP on
    Linux and macOS (UTF-8) or old Windows tools (a code page) write names."""

    def __init__(self, name, encoding, unicode_path=False):
        super().__init__(name)
        self.encoding = encoding
        if unicode_path:  # Info-ZIP's field 0x7075: the UTF-8 name, for the legacy one
            data = b"\x01" + struct.pack("<L", zlib.crc32(name.encode(encoding))) + name.encode()
            self.extra = struct.pack("<HH", 0x7075, len(data)) + data

    def _encodeFilenameFlags(self):
        return self.filename.encode(self.encoding), self.flag_bits & ~0x800


def test_zip_names_without_the_utf8_flag_are_read_as_their_maker_wrote_them(
    submitted, tmp_path, capsys
):
    one = nbformat.writes(nh.student_notebook(ONE))
    zipped = tmp_path / "class.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr(_LegacyName(f"José/{ONE}/chain_rule.ipynb", "utf-8"), one)
        z.writestr(_LegacyName(f"Zoé/{ONE}/chain_rule.ipynb", "latin-1", unicode_path=True), one)
    code, _, err = _collect(zipped, capsys)
    assert _notebooks(submitted) == [f"José/{ONE}/chain_rule.ipynb", f"Zoé/{ONE}/chain_rule.ipynb"]
    assert (code, err) == (0, [])


def test_a_name_a_zip_holds_twice_is_imported_from_its_later_file(submitted, tmp_path, capsys):
    """As unzip leaves it: the later file replaces the earlier, which is named as skipped."""
    earlier = nbformat.writes(nh.student_notebook(ONE, solved=False))
    later = nbformat.writes(nh.student_notebook(ONE))
    zipped = tmp_path / "class.zip"
    with zipfile.ZipFile(zipped, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr(f"alice/{ONE}/chain_rule.ipynb", earlier)
        z.writestr(f"bob/{ONE}/chain_rule.ipynb", earlier)
        z.writestr(f"alice/{ONE}/chain_rule.ipynb", later)
    code, _, err = _collect(zipped, capsys)
    assert _notebooks(submitted) == [f"alice/{ONE}/chain_rule.ipynb", f"bob/{ONE}/chain_rule.ipynb"]
    assert (submitted / "alice" / ONE / "chain_rule.ipynb").read_text() == later
    assert err == [
        f"skipped alice/{ONE}/chain_rule.ipynb: the zip holds two files of this name; the "
        "later is taken"
    ]
    assert code == 1


def test_an_id_that_differs_only_in_case_from_one_collected_before_goes_to_its_folder(
    submitted, tmp_path, capsys
):
    """One student, one row in the export: ``Alice`` in a later zip is ``alice`` collected
    before (on macOS the two folders would be one anyway)."""
    first = _write(tmp_path / "first", {f"alice/{ONE}/chain_rule.ipynb": nh.student_notebook(ONE)})
    assert _collect(first, capsys)[0] == 0
    again = nh.student_notebook(ONE, solved=False)
    later = _write(tmp_path / "later", {f"Alice/{ONE}/chain_rule.ipynb": again})
    code, out, err = _collect(later, capsys)
    assert _notebooks(submitted) == [f"alice/{ONE}/chain_rule.ipynb"]
    assert nbformat.read(submitted / "alice" / ONE / "chain_rule.ipynb", 4) == again
    assert err == [
        f"imported Alice's notebooks as alice's: the ids differ only in case, and "
        f"{submitted / 'alice'} was there already"
    ]
    assert code == 0 and out[-1].startswith("collected 1 new or changed notebook(s)")


def test_a_notebook_under_a_folder_that_is_no_assignment_is_placed_by_its_cells(
    submitted, tmp_path, capsys
):
    scratch = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")])
    files = {
        "erin/lab-1/chain_rule.ipynb": nh.student_notebook(ONE),
        "erin/lab-2/scratch.ipynb": scratch,
    }
    code, _, err = _collect(_write(tmp_path / "class", files), capsys)
    assert _notebooks(submitted) == [f"erin/{ONE}/chain_rule.ipynb"]
    assert sorted(err) == [
        f"moved erin/lab-1/chain_rule.ipynb: looks like {ONE}'s notebook, found under lab-1; "
        f"imported under {ONE}",
        "skipped erin/lab-2/scratch.ipynb: unknown assignment 'lab-2', and no cell of it "
        "matches a notebook of the course",
    ]
    assert code == 1


def test_moodle_and_canvas_downloads_are_understood(submitted, tmp_path, capsys):
    """Moodle: a folder per student (or its name before each file), the id from the name;
    Canvas: flat files, the id from the name before the numbers, ``late`` left out. Which
    assignment it is, the cells say."""
    one = nbformat.writes(nh.student_notebook(ONE))
    scratch = nbformat.writes(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")])
    )
    zipped = tmp_path / "download.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("download/Alice Smith_1234_assignsubmission_file_/chain_rule.ipynb", one)
        z.writestr("download/Seán O'Neil_2345_assignsubmission_file_chain_rule (1).ipynb", one)
        z.writestr("download/Eve Ng_3456_assignsubmission_file_/chain_rule.ipynb", one)
        z.writestr("download/Eve Ng_4567_assignsubmission_file_/chain_rule.ipynb", one)
        # blind marking: every folder is "Participant", told apart by the number
        z.writestr("blind/Participant_8123_assignsubmission_file_/chain_rule.ipynb", one)
        z.writestr("blind/Participant_8124_assignsubmission_file_/chain_rule.ipynb", one)
        z.writestr("smithcarol_5678_901_chain_rule.ipynb", one)
        z.writestr("jonesdave_late_6789_902_chain_rule-1.ipynb", one)
        z.writestr("ngfay_7890_903_notes.ipynb", scratch)
        z.writestr("frank.ipynb", one)
        z.writestr("gina/chain_rule_2_final.ipynb", one)  # not Canvas's: one number
    code, _, err = _collect(zipped, capsys)
    assert _notebooks(submitted) == [
        f"Alice_Smith/{ONE}/chain_rule.ipynb",
        f"Participant_8123/{ONE}/chain_rule.ipynb",
        f"Participant_8124/{ONE}/chain_rule.ipynb",
        f"Seán_O_Neil/{ONE}/chain_rule.ipynb",
        f"jonesdave/{ONE}/chain_rule.ipynb",
        f"smithcarol/{ONE}/chain_rule.ipynb",
    ]
    eve = "download/Eve Ng_{}_assignsubmission_file_/chain_rule.ipynb"
    assert sorted(err) == [
        f"skipped {eve.format(3456)}: duplicate student 'Eve_Ng' for {ONE} (also in "
        "download/Eve Ng_4567_*)",
        f"skipped {eve.format(4567)}: duplicate student 'Eve_Ng' for {ONE} (also in "
        "download/Eve Ng_3456_*)",
        "skipped frank.ipynb: expected student_id/assignment/notebook.ipynb, or a Moodle or "
        "Canvas download",
        "skipped gina/chain_rule_2_final.ipynb: expected student_id/assignment/notebook.ipynb, "
        "or a Moodle or Canvas download",
        "skipped ngfay_7890_903_notes.ipynb: no cell of it matches a notebook of the course",
    ]
    assert code == 1


@pytest.mark.parametrize("kind", ["folder", "zip", "zip of other files"])
def test_a_source_without_notebooks_is_an_error_that_says_so(submitted, tmp_path, capsys, kind):
    source = tmp_path / "class"
    source.mkdir()
    if kind != "folder":
        source = tmp_path / "class.zip"
        with zipfile.ZipFile(source, "w") as z:
            if kind == "zip of other files":
                z.writestr("alice/notes.txt", "my notes")
                z.writestr("__MACOSX/alice/._notes.txt", "")
    code, out, err = _collect(source, capsys)
    assert code == 2 and out == []
    assert err[-1] == f"error: {source}: no notebook (.ipynb file) in it, nothing collected"
    assert err[:-1] == (["skipped alice/notes.txt: not a notebook"] if "other" in kind else [])


def test_a_notebook_with_answers_wins_over_a_copy_as_released(submitted, tmp_path, capsys):
    """A student who downloaded the notebook twice and answered in ``chain_rule (1).ipynb``:
    the blank ``chain_rule.ipynb`` must not be graded instead. Between two answered copies the
    exact name still wins."""
    answered, blank = nh.student_notebook(ONE), nh.student_notebook(ONE, solved=False)
    files = {
        f"amy/{ONE}/chain_rule.ipynb": blank,
        f"amy/{ONE}/chain_rule (1).ipynb": answered,
        f"ben/{ONE}/chain_rule.ipynb": answered,
        f"ben/{ONE}/chain_rule (1).ipynb": _answered_otherwise(blank),
    }
    code, _, err = _collect(_write(tmp_path / "class", files), capsys)
    assert nbformat.read(submitted / "amy" / ONE / "chain_rule.ipynb", 4) == answered
    assert nbformat.read(submitted / "ben" / ONE / "chain_rule.ipynb", 4) == answered
    assert sorted(err) == [
        f"skipped amy/{ONE}/chain_rule.ipynb: another notebook of amy's is imported as "
        f"chain_rule.ipynb (amy/{ONE}/chain_rule (1).ipynb, which has answers; this one has "
        "none)",
        f"skipped ben/{ONE}/chain_rule (1).ipynb: another notebook of ben's is imported as "
        f"chain_rule.ipynb (ben/{ONE}/chain_rule.ipynb)",
    ]
    assert code == 1


def _answered_otherwise(blank):
    """``blank`` with one answer cell written in: an attempt, not the stub."""
    nb = copy.deepcopy(blank)
    cell = next(c for c in nb.cells if nh.is_answer(c))
    cell.source += "\n# my attempt"
    return nb


def _damaged(zipped, name, how):
    """Damage member ``name`` of the zip at ``zipped``: ``"data"`` flips a byte of its
    compressed data, ``"encrypted"`` marks it encrypted (as a zip tool with a password does)."""
    raw = bytearray(zipped.read_bytes())
    with zipfile.ZipFile(zipped) as z:
        info = z.getinfo(name)
    local = info.header_offset
    if how == "data":
        size = struct.unpack("<HH", raw[local + 26 : local + 30])
        start = local + 30 + size[0] + size[1]
        raw[start + info.compress_size // 2] ^= 0xFF
    else:
        raw[local + 6] |= 1  # general purpose flag, bit 0: encrypted
        central = raw.index(b"PK\x01\x02")
        while struct.unpack("<L", raw[central + 42 : central + 46])[0] != local:
            central = raw.index(b"PK\x01\x02", central + 4)
        raw[central + 8] |= 1
    zipped.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ("data", "damaged in the zip"),
        ("encrypted", "encrypted in the zip: zip it again without a password"),
    ],
)
def test_a_damaged_or_encrypted_notebook_in_a_zip_is_skipped_with_why(
    submitted, tmp_path, capsys, how, why
):
    one = nbformat.writes(nh.student_notebook(ONE))
    zipped = tmp_path / "class.zip"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"alice/{ONE}/chain_rule.ipynb", one)
        z.writestr(f"bob/{ONE}/chain_rule.ipynb", one)
    _damaged(zipped, f"bob/{ONE}/chain_rule.ipynb", how)
    code, _, err = _collect(zipped, capsys)
    assert _notebooks(submitted) == [f"alice/{ONE}/chain_rule.ipynb"]
    assert len(err) == 1 and err[0].startswith(f"skipped bob/{ONE}/chain_rule.ipynb: {why}")
    assert code == 1


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ("cut", "a damaged zip file (cut short: the list of its files, at its end, is missing)"),
        ("list", "a damaged zip file (Bad magic number for central directory)"),
        ("page", "named .zip, but not a zip file"),
    ],
)
def test_a_damaged_zip_is_named_so(submitted, tmp_path, capsys, how, why):
    """A download cut short, a zip whose list of files is damaged, a web page saved as a zip:
    not "not a folder or a zip file"."""
    zipped = tmp_path / "class.zip"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"alice/{ONE}/chain_rule.ipynb", nbformat.writes(nh.student_notebook(ONE)))
    raw = bytearray(zipped.read_bytes())
    if how == "cut":
        raw = raw[: len(raw) // 2]
    elif how == "list":
        raw[raw.index(b"PK\x01\x02")] ^= 0xFF
    else:
        raw = bytearray(b"<!DOCTYPE html><html>Sign in to download</html>")
    zipped.write_bytes(bytes(raw))
    code, out, err = _collect(zipped, capsys)
    assert (code, out, _notebooks(submitted)) == (2, [], [])
    assert err == [f"error: {zipped}: {why}: download or zip it again"]


def test_an_unreadable_notebook_is_skipped_with_a_short_reason(submitted, tmp_path, capsys):
    """The reason says where the JSON goes wrong, without quoting the file (nbformat's message
    begins with the file's first lines)."""
    text = nbformat.writes(nh.student_notebook(ONE))
    cut = [
        text[: len(text) // 2],  # in the middle of a string
        text[: text.index('",\n', len(text) // 2) + 2],  # between two values
    ]
    broken = {
        "cut": cut[0],
        "cut2": cut[1],
        "bad": text.replace('"cells": [', '"cells": [,', 1),
        "empty": "",
        "list": "[]",
    }
    for sid, content in broken.items():
        path = tmp_path / "class" / sid / ONE / "chain_rule.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(content)
    code, _, err = _collect(tmp_path / "class", capsys)
    assert code == 1
    cut_line = [part.rstrip().count("\n") + 1 for part in cut]
    assert sorted(err) == [
        f"skipped bad/{ONE}/chain_rule.ipynb: not a valid notebook: JSON error at line 2, "
        "column 12 (Expecting value)",
        f"skipped cut/{ONE}/chain_rule.ipynb: not a valid notebook: its JSON stops unfinished "
        f"at line {cut_line[0]} (cut short?)",
        f"skipped cut2/{ONE}/chain_rule.ipynb: not a valid notebook: its JSON stops unfinished "
        f"at line {cut_line[1]} (cut short?)",
        f"skipped empty/{ONE}/chain_rule.ipynb: not a valid notebook: the file is empty",
        f"skipped list/{ONE}/chain_rule.ipynb: not a valid notebook: no list of cells",
    ]


def test_a_source_that_does_not_exist_is_named_so(submitted, tmp_path, capsys):
    code, out, err = _collect(tmp_path / "nowhere.zip", capsys)
    assert (code, out) == (2, [])
    assert err == [f"error: {tmp_path / 'nowhere.zip'}: no such folder or file"]


def test_a_canvas_file_marked_late_wins_over_the_same_students_earlier_one(
    submitted, tmp_path, capsys
):
    """Two Canvas downloads put in one zip: one student's file from before the deadline and
    the one marked late. One student, not two; the late one is the newer."""
    blank = nh.student_notebook(ONE)
    earlier, later = _answered_otherwise(blank), _answered_otherwise(_answered_otherwise(blank))
    zipped = tmp_path / "canvas.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("smithalice_1234_901_chain_rule.ipynb", nbformat.writes(earlier))
        z.writestr("smithalice_late_1234_957_chain_rule.ipynb", nbformat.writes(later))
    code, _, err = _collect(zipped, capsys)
    assert _notebooks(submitted) == [f"smithalice/{ONE}/chain_rule.ipynb"]
    imported = nbformat.read(submitted / "smithalice" / ONE / "chain_rule.ipynb", as_version=4)
    assert imported.cells == later.cells
    assert err == [
        "skipped smithalice_1234_901_chain_rule.ipynb: another notebook of smithalice's is "
        "imported as chain_rule.ipynb (smithalice_late_1234_957_chain_rule.ipynb, handed in "
        "later)"
    ]
    assert code == 1


COURSE_NOT_A_CLASS = (
    "not a class's submissions: SOURCE is the folder or zip the submissions were downloaded "
    "as (student_id/assignment/notebook.ipynb, or a Moodle or Canvas download)"
)


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("repository", "the course's repository"),
        ("copy of the course", "a copy of the course (its solutions/ holds the masters)"),
        ("nbgrader course", "a copy of the course (its source/ holds the masters)"),
        ("workspace", "the grading workspace"),
        ("folder in the workspace", "a folder of the grading workspace"),
        ("folder around the workspace", "a folder that holds the grading workspace"),
        ("another workspace", "a grading workspace (it holds grader.lock)"),
        ("zip of the course", "a copy of the course (its solutions/ holds the masters)"),
    ],
)
def test_the_course_or_the_workspace_is_refused_as_a_class(submitted, tmp_path, capsys, kind, what):
    """The course's own folders hold notebooks laid out as a class's (``solutions/01-.../``
    reads as a student named ``solutions``): named as what they are, nothing imported."""
    one = nh.student_notebook(ONE)
    first = _write(tmp_path / "class", {f"alice/{ONE}/chain_rule.ipynb": one})
    assert _collect(first, capsys)[0] == 0
    workspace = submitted.parent
    sources = {
        "repository": course.REPO,
        "copy of the course": tmp_path / "backprop",
        "nbgrader course": tmp_path / "nbgrader-course",
        "workspace": workspace,
        "folder in the workspace": submitted,
        "folder around the workspace": tmp_path,
        "another workspace": tmp_path / "last-term",
        "zip of the course": tmp_path / "backprop-main.zip",
    }
    _write(tmp_path / "backprop", {f"solutions/{ONE}/chain_rule.ipynb": one})
    _write(tmp_path / "nbgrader-course", {f"source/{ONE}/chain_rule.ipynb": one})
    _write(tmp_path / "last-term", {f"submitted/bob/{ONE}/chain_rule.ipynb": one})
    (tmp_path / "last-term" / course.LOCK_FILE).touch()
    with zipfile.ZipFile(tmp_path / "backprop-main.zip", "w") as z:
        for folder in ("notebooks", "solutions"):
            z.writestr(f"backprop-main/{folder}/{ONE}/chain_rule.ipynb", nbformat.writes(one))
    before = _notebooks(submitted)
    code, out, err = _collect(sources[kind], capsys)
    assert (code, out) == (2, [])
    assert err == [f"error: {sources[kind]}: {what}, {COURSE_NOT_A_CLASS}"]
    assert _notebooks(submitted) == before


def test_windows_zip_paths_and_upper_case_suffixes_are_understood(submitted, tmp_path, capsys):
    """A zip made on Windows may write its folders with backslashes; a notebook may be named
    ``.IPYNB``. Both are what they would be with ``/`` and ``.ipynb``."""
    one = nbformat.writes(nh.student_notebook(ONE))
    zipped = tmp_path / "class.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("class\\alice\\", "")  # a folder's own entry
        z.writestr(f"class\\alice\\{ONE}\\chain_rule.ipynb", one)
        z.writestr(f"class/bob/{ONE}/CHAIN_RULE.IPYNB", one)
    code, _, err = _collect(zipped, capsys)
    assert _notebooks(submitted) == [f"alice/{ONE}/chain_rule.ipynb", f"bob/{ONE}/chain_rule.ipynb"]
    assert (code, err) == (0, [])


def _handed_in(path, when):
    """Give the file at ``path`` the modification time ``when`` (a datetime in UTC)."""
    seconds = when.replace(tzinfo=timezone.utc).timestamp()
    os.utime(path, (seconds, seconds))


def _shown(when):
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def test_an_older_download_does_not_replace_a_newer_notebook(submitted, tmp_path, capsys):
    """A file's time is when it was handed in: one older than the notebook collected is
    skipped (which keeps its time), one newer or of the same time replaces it (and a notebook
    replaced at the same time is still recorded as handed in again, later)."""
    blank = nh.student_notebook(ONE)
    first, second = _answered_otherwise(blank), _answered_otherwise(_answered_otherwise(blank))
    times = {
        "alice": (datetime(2026, 11, 3, 8, 0), datetime(2026, 11, 1, 9, 30)),  # older again
        "bob": (datetime(2026, 11, 1, 9, 0), datetime(2026, 11, 2, 17, 45)),  # newer
        "carl": (datetime(2026, 11, 2, 12, 0), datetime(2026, 11, 2, 12, 0)),  # the same time
    }
    for download, (nb, which) in {"newer": (first, 0), "older": (second, 1)}.items():
        files = {f"{sid}/{ONE}/chain_rule.ipynb": nb for sid in times}
        _write(tmp_path / download, files)
        for sid, when in times.items():
            _handed_in(tmp_path / download / sid / ONE / "chain_rule.ipynb", when[which])

    assert _collect(tmp_path / "newer", capsys)[0] == 0
    for sid, (when, _) in times.items():
        assert course.submitted_at(submitted / sid / ONE) == when
    code, _, err = _collect(tmp_path / "older", capsys)
    kept = {sid: nbformat.read(submitted / sid / ONE / "chain_rule.ipynb", 4) for sid in times}
    assert kept == {"alice": first, "bob": second, "carl": second}
    assert course.submitted_at(submitted / "alice" / ONE) == times["alice"][0]
    assert course.submitted_at(submitted / "bob" / ONE) == times["bob"][1]
    assert course.submitted_at(submitted / "carl" / ONE) > times["carl"][0]
    assert err == [
        f"skipped alice/{ONE}/chain_rule.ipynb: older than the notebook collected on "
        f"{_shown(times['alice'][0])} (this one: {_shown(times['alice'][1])}); --take-older "
        "takes it"
    ]
    assert code == 1


def test_take_older_takes_a_notebook_older_than_the_one_collected(submitted, tmp_path, capsys):
    """``collect --take-older`` takes the older notebook the skip line names (the earlier work
    is the one to grade, say) and says so; it counts as handed in after the one it replaces,
    so the gradebook takes it for a new submission. A newer one is taken as without it."""
    blank = nh.student_notebook(ONE)
    newer, older = _answered_otherwise(blank), _answered_otherwise(_answered_otherwise(blank))
    times = {"alice": (datetime(2026, 11, 3, 8, 0), datetime(2026, 11, 1, 9, 30))}
    times["bob"] = times["alice"][::-1]  # his second download is the newer
    for download, (nb, which) in {"first": (newer, 0), "second": (older, 1)}.items():
        _write(tmp_path / download, {f"{sid}/{ONE}/chain_rule.ipynb": nb for sid in times})
        for sid, when in times.items():
            _handed_in(tmp_path / download / sid / ONE / "chain_rule.ipynb", when[which])
    assert _collect(tmp_path / "first", capsys)[0] == 0
    assert _collect(tmp_path / "second", capsys)[0] == 1  # alice's is skipped as older
    assert nbformat.read(submitted / "alice" / ONE / "chain_rule.ipynb", 4) == newer

    capsys.readouterr()
    assert main(["collect", "--take-older", str(tmp_path / "second")]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"took alice/{ONE}/chain_rule.ipynb (--take-older): older than the notebook collected "
        f"on {_shown(times['alice'][0])} (this one: {_shown(times['alice'][1])}); it counts "
        "as handed in again"
    ]
    assert "collected 1 new or changed notebook(s), 1 unchanged, 0 skipped" in captured.out
    for sid in times:
        assert nbformat.read(submitted / sid / ONE / "chain_rule.ipynb", 4) == older
    assert course.submitted_at(submitted / "alice" / ONE) > times["alice"][0]
    assert course.submitted_at(submitted / "bob" / ONE) == times["bob"][1]
    # the instructor's choice stays: the later download is the older one now (bob's too)
    code, _, err = _collect(tmp_path / "first", capsys)
    assert code == 1 and [line.split(":")[0] for line in err] == [
        f"skipped {sid}/{ONE}/chain_rule.ipynb" for sid in times
    ], err
    assert nbformat.read(submitted / "alice" / ONE / "chain_rule.ipynb", 4) == older


@pytest.mark.parametrize("extended", [False, True])
def test_a_zip_members_time_is_the_one_unzip_gives_its_file(submitted, tmp_path, capsys, extended):
    """The date and time a zip holds for each file, in the local time of the machine that made
    it (read in this one's), or Info-ZIP's Unix time beside it when there is one (which unzip
    takes first)."""
    blank = nh.student_notebook(ONE)
    notebooks = [_answered_otherwise(blank), _answered_otherwise(_answered_otherwise(blank))]
    newer, older = datetime(2026, 11, 3, 8, 0), datetime(2026, 11, 1, 9, 30)
    zips = []
    for n, (nb, when) in enumerate(zip(notebooks, (newer, older), strict=True)):
        # With Info-ZIP's time, the local date and time say the opposite: not the one read.
        local = (older if n == 0 else newer) if extended else when
        member = zipfile.ZipInfo(f"alice/{ONE}/chain_rule.ipynb", local.timetuple()[:6])
        if extended:
            seconds = int(when.replace(tzinfo=timezone.utc).timestamp())
            member.extra = struct.pack("<HHBl", 0x5455, 5, 1, seconds)
        zips.append(tmp_path / f"{n}.zip")
        with zipfile.ZipFile(zips[-1], "w") as z:
            z.writestr(member, nbformat.writes(nb))
    assert _collect(zips[0], capsys)[0] == 0
    collected = course.submitted_at(submitted / "alice" / ONE)
    if extended:
        assert collected == newer
    code, _, err = _collect(zips[1], capsys)
    assert nbformat.read(submitted / "alice" / ONE / "chain_rule.ipynb", 4) == notebooks[0]
    assert course.submitted_at(submitted / "alice" / ONE) == collected
    assert len(err) == 1 and err[0].startswith(
        f"skipped alice/{ONE}/chain_rule.ipynb: older than the notebook collected on "
        f"{_shown(collected)} (this one: "
    ), err
    assert code == 1


def test_a_zip_member_without_a_date_replaces_the_notebook_collected(submitted, tmp_path, capsys):
    """A zip entry whose date is no date (month 0) tells nothing: it is taken as handed in
    now, after the notebook collected."""
    blank = nh.student_notebook(ONE)
    collected_at = datetime(2026, 11, 3, 8, 0)
    newer = _answered_otherwise(_answered_otherwise(blank))
    _write(tmp_path / "class", {f"alice/{ONE}/chain_rule.ipynb": _answered_otherwise(blank)})
    _handed_in(tmp_path / "class" / "alice" / ONE / "chain_rule.ipynb", collected_at)
    assert _collect(tmp_path / "class", capsys)[0] == 0
    zipped = tmp_path / "class.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        member = zipfile.ZipInfo(f"alice/{ONE}/chain_rule.ipynb", (1980, 0, 0, 0, 0, 0))
        z.writestr(member, nbformat.writes(newer))
    assert _collect(zipped, capsys)[:3:2] == (0, [])
    assert nbformat.read(submitted / "alice" / ONE / "chain_rule.ipynb", 4) == newer
    assert course.submitted_at(submitted / "alice" / ONE) > collected_at


@pytest.mark.parametrize("moment", ["before its time is recorded", "before it is written"])
def test_collect_stopped_while_it_replaces_a_notebook_is_finished_by_collecting_again(
    submitted, tmp_path, capsys, monkeypatch, moment
):
    """Ctrl+C while collect replaces a student's notebook, then collect again (as it says): the
    new notebook is in place, recorded as handed in after the old one, so that the gradebook
    takes it as handed in again (and keeps no mark given by hand to the old one)."""
    blank = nh.student_notebook(ONE)
    old, new = _answered_otherwise(blank), _answered_otherwise(_answered_otherwise(blank))
    path = f"alice/{ONE}/chain_rule.ipynb"
    for download, nb, when in (("first", old, 1), ("again", new, 2)):
        _write(tmp_path / download, {path: nb})
        _handed_in(tmp_path / download / path, datetime(2026, 11, when, 9, 0))
    assert _collect(tmp_path / "first", capsys)[0] == 0

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(course, "stamp" if moment.endswith("recorded") else "write_whole", stop)
        assert _collect(tmp_path / "again", capsys)[0] == 130
    assert _collect(tmp_path / "again", capsys)[0] == 0
    assert nbformat.read(submitted / path, 4) == new
    assert course.submitted_at(submitted / "alice" / ONE) >= datetime(2026, 11, 2, 9, 0)

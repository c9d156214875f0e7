"""Import submissions into the workspace: ``collect SOURCE``.

``SOURCE`` is a folder laid out ``student_id/assignment/notebook.ipynb`` or a zip of such
folders (wrapping folders above the student ids are fine, as LMS exports have them). Each file
is checked on its own; a bad one gets one line on the error stream and the rest is imported:
not a notebook, unreadable JSON, unknown assignment, an invalid student id, or the same student
twice for an assignment.

Which notebook of the course a file is, is told by its cells (``cellmatch.owners``: their
grade_ids, or the sources of the test cells), not by its folder or name. A notebook whose cells
match its assignment is imported under that assignment's notebook name (``topic (1).ipynb``
becomes ``topic.ipynb``). One whose cells match another assignment's notebook, or one under a
folder that is not an assignment (``erin/lab-1/chain_rule.ipynb``), is imported where its cells
belong, with a line that says so ("looks like 01-chain-rule's notebook, found under lab-1"),
unless the student has a notebook under that assignment already or the cells match several;
then it is skipped with that reason. A notebook whose cells match no notebook of the course is
imported only under the assignment's own notebook name; under a folder that is not an
assignment, it is skipped ("unknown assignment 'lab-1'").
"""

import struct
import sys
import unicodedata
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbformat

from . import cellmatch, course
from .classresults import masters

ID_MARKS = "_.@+-"  # allowed in a student id besides letters and digits
UTF8_FLAG = 0x800  # a zip entry's flag: its name is UTF-8
UNICODE_PATH = 0x7075  # Info-ZIP's extra field: the name in UTF-8, beside a legacy one
IGNORED = {"__MACOSX", ".ipynb_checkpoints", ".DS_Store", "Thumbs.db"}


@dataclass
class Entry:
    path: PurePosixPath  # as shown to the user
    read: object  # () -> bytes


@dataclass
class Placed:
    """A notebook to import: as ``assignment/name`` of ``student``."""

    entry: Entry
    student: str
    assignment: str
    name: str
    raw: bytes


def _zip_name(info):
    """The name of zip entry ``info`` as its maker wrote it. Python reads a name without the
    UTF-8 flag as cp437 (the old DOS code page), but Info-ZIP on Linux and macOS writes UTF-8
    names without the flag ('José' would read 'Jos├⌐'): such a name is the UTF-8 one of the
    Unicode path field when the entry has it, else its bytes as UTF-8 when they are valid
    UTF-8, else cp437."""
    if info.flag_bits & UTF8_FLAG:
        return info.filename
    raw = info.orig_filename.encode("cp437")  # the bytes in the zip: cp437 maps every byte
    try:
        return _unicode_path(info.extra, raw) or raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


def _unicode_path(extra, raw):
    """The name in the Unicode path field (0x7075) of a zip entry's ``extra`` bytes, if it has
    one made for its name ``raw`` (the field holds a CRC-32 of the name it stands for)."""
    while len(extra) >= 4:
        kind, size = struct.unpack("<HH", extra[:4])
        data, extra = extra[4 : 4 + size], extra[4 + size :]
        if kind == UNICODE_PATH and len(data) > 5 and data[0] == 1:
            if struct.unpack("<L", data[1:5])[0] == zlib.crc32(raw):
                return data[5:].decode("utf-8")
    return None


def _entries(source):
    source = Path(source)
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                rel = PurePosixPath(path.relative_to(source).as_posix())
                yield Entry(rel, path.read_bytes)
    elif zipfile.is_zipfile(source):
        archive = zipfile.ZipFile(source)
        named = sorted((_zip_name(info), info) for info in archive.infolist() if not info.is_dir())
        for name, info in named:
            yield Entry(PurePosixPath(name), lambda i=info: archive.read(i))
    else:
        raise course.UsageError(f"{source}: not a folder or a zip file")


def _as_id(text):
    """``text`` made a student id: each run of characters an id cannot have becomes ``_``, and
    what is not a letter or digit is dropped from both ends (empty when nothing is left)."""
    text = unicodedata.normalize("NFC", text)
    kept = "".join(c if c.isalnum() or c in ID_MARKS else " " for c in text)
    return "_".join(kept.split()).strip(ID_MARKS)


def _student_id(text):
    """``text`` as a student id (in Unicode's composed form, NFC, as macOS may hand it
    decomposed); raises ValueError saying what an id may hold when it is not one."""
    sid = unicodedata.normalize("NFC", text)
    if sid[:1].isalnum() and all(c.isalnum() or c in ID_MARKS for c in sid):
        return sid
    reason = (
        f"'{text}' is not a valid student id (letters, digits and {' '.join(ID_MARKS)}, "
        "starting with a letter or digit; no spaces)"
    )
    suggestion = _as_id(text)
    raise ValueError(reason + (f": rename it, e.g. to '{suggestion}'" if suggestion else ""))


def _parse(raw):
    """The notebook in ``raw`` bytes, or raise ValueError with a short reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. duplicate cell ids, repaired on grading
            nb = nbformat.reads(raw.decode("utf-8-sig"), as_version=4)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except Exception as error:  # nbformat raises several kinds for bad JSON
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise ValueError(f"unreadable notebook JSON ({reason})") from None
    if not isinstance(nb.get("cells"), list):
        raise ValueError("unreadable notebook JSON (no cells)")
    if not all(isinstance(cell, dict) for cell in nb.cells):
        raise ValueError("unreadable notebook JSON (a cell that is not an object)")
    return nb


def _place(nb, entry, folder, course_masters):
    """``(assignment, notebook name, note)``: where notebook ``nb``, found under ``folder`` (an
    assignment, or a folder of the student's that is not one), is imported; ``note`` says why
    it is not ``folder`` (else None). Raises ValueError with the reason when it cannot be
    placed."""
    everyone = [m for found in course_masters.values() for m in found]
    owners = cellmatch.owners(nb.cells, everyone)
    if folder not in course_masters and not owners:
        raise ValueError(
            f"unknown assignment '{folder}', and no cell of it matches a notebook of the course"
        )
    names = [f"{m.name}.ipynb" for m in course_masters.get(folder, [])]
    if not owners:
        if entry.path.name in names:
            return folder, entry.path.name, None
        raise ValueError(f"no cell of it matches {folder}'s notebook ({', '.join(names)})")
    mine = [m for m in owners if m.assignment == folder]
    if mine:
        same = [m for m in mine if f"{m.name}.ipynb" == entry.path.name]
        return folder, f"{(same or mine)[0].name}.ipynb", None
    whose = " or ".join(sorted({f"{m.assignment}'s" for m in owners}))
    note = f"looks like {whose} notebook, found under {folder}"
    if len(owners) > 1:
        raise ValueError(note)
    return owners[0].assignment, f"{owners[0].name}.ipynb", note


def collect(source, out=print, err=None):
    """Import ``source``; returns ``(imported, errors)`` counts."""
    problems = []
    report = err or (lambda line: print(line, file=sys.stderr))

    def skip(line):
        problems.append(line)
        report(line)

    known = course.assignments()
    candidates = []  # (entry, student, the folder it is under: an assignment, or not one)
    for entry in _entries(source):
        parts = entry.path.parts
        if any(p in IGNORED or p.startswith(".") for p in parts):
            continue
        where = str(entry.path)
        if entry.path.suffix != ".ipynb":
            skip(f"skipped {where}: not a notebook")
            continue
        if len(parts) < 3:
            skip(f"skipped {where}: expected student_id/assignment/notebook.ipynb")
            continue
        student, assignment = parts[-3], parts[-2]
        try:
            student = _student_id(student)
        except ValueError as error:
            skip(f"skipped {where}: {error}")
            continue
        candidates.append((entry, student, assignment))

    course_masters = {aid: masters(aid) for aid in known}
    placements = []  # (Placed, note)
    for entry, student, folder in candidates:
        try:
            raw = entry.read()
            nb = _parse(raw)
        except ValueError as error:
            unknown = f"unknown assignment '{folder}'"  # the cells cannot say which it is
            skip(f"skipped {entry.path}: {error if folder in course_masters else unknown}")
            continue
        try:
            assignment, name, note = _place(nb, entry, folder, course_masters)
        except ValueError as error:
            skip(f"skipped {entry.path}: {error}")
            continue
        placements.append((Placed(entry, student, assignment, name, raw), note))

    staying = {(_folded(p.student), p.assignment) for p, note in placements if not note}
    found = {}  # (student case-folded, assignment) -> [Placed]
    moved = 0
    for placed, note in placements:
        key = (_folded(placed.student), placed.assignment)
        if note and key in staying:
            skip(
                f"skipped {placed.entry.path}: {note}; {placed.student} has a notebook under "
                f"{placed.assignment}"
            )
            continue
        if note:
            report(f"moved {placed.entry.path}: {note}; imported under {placed.assignment}")
            moved += 1
        found.setdefault(key, []).append(placed)

    target = course.folder("submitted")
    collected = _collected(target)
    renamed = set()
    imported = unchanged = 0
    for (_, assignment), items in sorted(found.items()):
        students = sorted({p.student for p in items})
        folders = sorted({str(p.entry.path.parent) for p in items})
        if len(folders) > 1:
            for placed in items:
                skip(
                    f"skipped {placed.entry.path}: duplicate student '{students[0]}' for "
                    f"{assignment} (also in "
                    f"{', '.join(f for f in folders if f != str(placed.entry.path.parent))})"
                )
            continue
        try:
            student = _folder_of(students[0], collected)
        except ValueError as error:
            for placed in items:
                skip(f"skipped {placed.entry.path}: {error}")
            continue
        if student != students[0] and students[0] not in renamed:
            renamed.add(students[0])
            report(
                f"imported {students[0]}'s notebooks as {student}'s: the ids differ only in "
                f"case, and {target / student} was there already"
            )
        for placed in _one_per_name(items, skip):
            dest = target / student / assignment / placed.name
            if dest.exists() and dest.read_bytes() == placed.raw:
                unchanged += 1
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(placed.raw)
            course.stamp(dest.parent)
            imported += 1
    line = (
        f"collected {imported} new or changed notebook(s), {unchanged} unchanged, "
        f"{len(problems)} skipped, into {target}"
    )
    out(line + (f" ({moved} under another assignment than their folder's)" if moved else ""))
    return imported + unchanged, len(problems)


def _folded(student):
    """``student`` as ids are compared: case does not count (``Alice`` is ``alice``), since
    case-insensitive file systems (macOS, Windows) would put both in one folder."""
    return unicodedata.normalize("NFC", student).casefold()


def _collected(target):
    """``{case-folded id: [student folder]}`` of the students already in ``target``."""
    found = {}
    for path in sorted(target.iterdir()) if target.is_dir() else []:
        if path.is_dir():
            found.setdefault(_folded(path.name), []).append(path.name)
    return found


def _folder_of(student, collected):
    """The folder of ``submitted/`` that ``student``'s notebooks go to: ``student``'s own, else
    the one folder collected before under an id that differs only in case (``collected`` as
    ``_collected`` tells). Raises ValueError when there are several such folders."""
    same = collected.get(_folded(student), [])
    if student in same or not same:
        return student
    if len(same) > 1:
        raise ValueError(
            f"'{student}' differs only in case from several students collected before "
            f"({', '.join(same)})"
        )
    return same[0]


def _one_per_name(items, skip):
    """Of a student's notebooks placed under the same name, the one that has that name (else
    the first); the others are skipped."""
    chosen = {}
    for placed in sorted(items, key=lambda p: (p.entry.path.name != p.name, str(p.entry.path))):
        if placed.name in chosen:
            skip(
                f"skipped {placed.entry.path}: another notebook of {placed.student}'s is "
                f"imported as {placed.name} ({chosen[placed.name].entry.path})"
            )
            continue
        chosen[placed.name] = placed
    return list(chosen.values())

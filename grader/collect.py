"""Import submissions into the workspace: ``collect SOURCE``.

``SOURCE`` is a folder or a zip (wrapping folders above what follows are fine) laid out

- ``student_id/assignment/notebook.ipynb``;
- as Moodle's "download all submissions": ``Alice Smith_1234_assignsubmission_file_/x.ipynb``
  (or, without folders, ``Alice Smith_1234_assignsubmission_file_x.ipynb``); the id is the
  name before Moodle's number, spaces (and characters an id cannot have) made ``_``:
  ``Alice_Smith``; with blind marking, ``Participant_<number>``;
- as Canvas's: ``smithalice_1234_5678_x.ipynb`` (``smithalice_late_1234_...`` when late); the
  id is the name before the first number: ``smithalice``.

Each file is checked on its own; a bad one gets one line on the error stream and the rest is
imported: not a notebook, unreadable JSON, a cell that grading cannot read (without a type or
a source: ``_cell_problem``), unknown assignment, an invalid student id, the same student twice
for an assignment (two folders, or two LMS users, for one id), or the first of two files of one
name in a zip (the later one is imported, as unzip would leave it). A source without any
notebook is an error, and so is a folder or zip of the course's own (the repository, a copy of
the course, a grading workspace: ``_course_folder``, ``_course_zip``), refused before anything
is read. Ids are compared without case, also with the students collected before, whose folder
keeps its spelling.

Which notebook of the course a file is, is told by its cells (``cellmatch.owners``: their
grade_ids, or the sources of the test cells), not by its folder or name; in an LMS download,
by its cells alone. A notebook whose cells match its assignment is imported under that
assignment's notebook name (``topic (1).ipynb`` becomes ``topic.ipynb``). One whose cells match
another assignment's notebook, or one under a folder that is not an assignment
(``erin/lab-1/chain_rule.ipynb``), is imported where its cells belong, with a line that says so
("looks like 01-chain-rule's notebook, found under lab-1"), unless the student has a notebook
under that assignment already or the cells match several; then it is skipped with that reason.
A notebook whose cells match no notebook of the course is imported only under the assignment's
own notebook name; under a folder that is not an assignment, it is skipped ("unknown assignment
'lab-1'"). Of a student's notebooks imported under one name, one with answers wins over one as
released.

A notebook was handed in when its file was last changed (a download has no other time of it):
a plain file's modification time; a zip entry's time as unzip gives its file, Info-ZIP's Unix
time when the entry has one, else the entry's date and time, read as this machine's local time
(zip tools write their own). That time is recorded as the submission's (``course.stamp``). A
notebook older than the one collected for its student and assignment is skipped ("older than
the notebook collected on ...; --take-older takes it"): collecting an older download again does
not take back what was handed in since. A newer one, or one of the same time, replaces it, and
so does an older one with ``take_older`` (``collect --take-older``: the instructor wants the
earlier work graded, say); either is recorded as handed in after the one it replaces (a
microsecond after, when not later), so that the gradebook takes it for a new submission. A zip
entry whose date is no date is taken as handed in now, and replaces.
"""

import functools
import json
import re
import struct
import sys
import unicodedata
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

import nbformat

from . import cellmatch, course
from .classresults import masters

ID_MARKS = "_.@+-"  # allowed in a student id besides letters and digits
UTF8_FLAG = 0x800  # a zip entry's flag: its name is UTF-8
UNICODE_PATH = 0x7075  # Info-ZIP's extra field: the name in UTF-8, beside a legacy one
EXTENDED_TIME = 0x5455  # Info-ZIP's extra field: the file's times as Unix times (UTC)
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<uid>\d+)_assignsubmission_[a-z]+_(?P<file>.*)$")
CANVAS = re.compile(r"^(?P<name>.+?)(?P<late>_late)?_(?P<uid>\d+)_\d+_(?P<file>.+)$", re.I)
LAYOUTS = "student_id/assignment/notebook.ipynb, or a Moodle or Canvas download"
MASTERS = ("solutions", "source")  # where a copy of the course (or nbgrader's) keeps masters
IGNORED = {"__MACOSX", ".ipynb_checkpoints", ".DS_Store", "Thumbs.db"}


@dataclass
class Entry:
    path: PurePosixPath  # as shown to the user
    read: object  # () -> bytes
    modified: datetime | None  # when the file was last changed, in UTC (None: not known)
    replaced: bool = False  # a later file of the zip has the same name (and is the one unzipped)


@dataclass
class Found:
    """A notebook of the source, as its path tells: whose it is, the folder it is filed under
    (an assignment, or a folder that is not one; None in an LMS download, which has none), where
    the student's files are (to tell two students with one id apart), and the file's own name
    (without what an LMS puts before it)."""

    entry: Entry
    student: str
    folder: str | None
    origin: str
    name: str
    late: bool = False  # a Canvas file marked late: handed in after one without the mark


@dataclass
class Placed:
    """A notebook to import: as ``assignment/name`` of its student."""

    found: Found
    assignment: str
    name: str
    raw: bytes
    answered: bool  # some answer cell is not the stub as released

    @property
    def path(self):
        return self.found.entry.path

    @property
    def student(self):
        return self.found.student

    @property
    def handed_in(self):
        """When the student handed the notebook in, as far as the file tells: its time."""
        return self.found.entry.modified


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


def _zip_path(info):
    """The path of zip entry ``info``, its folders parted by ``/`` (a zip made on Windows may
    part them by backslashes)."""
    return _zip_name(info).replace("\\", "/")


def _unicode_path(extra, raw):
    """The name in the Unicode path field (0x7075) of a zip entry's ``extra`` bytes, if it has
    one made for its name ``raw`` (the field holds a CRC-32 of the name it stands for)."""
    for kind, data in _extra_fields(extra):
        if kind == UNICODE_PATH and len(data) > 5 and data[0] == 1:
            if struct.unpack("<L", data[1:5])[0] == zlib.crc32(raw):
                return data[5:].decode("utf-8")
    return None


def _extra_fields(extra):
    """``(kind, data)`` of each field of a zip entry's ``extra`` bytes."""
    while len(extra) >= 4:
        kind, size = struct.unpack("<HH", extra[:4])
        yield kind, extra[4 : 4 + size]
        extra = extra[4 + size :]


def _zip_time(info):
    """When zip entry ``info``'s file was last changed, in UTC, as unzip dates the file it
    writes: by Info-ZIP's extended timestamp (a Unix time) when the entry has one, else by its
    date and time, which zip tools write in the local time of their machine (read here in this
    machine's). None when they are not a date."""
    for kind, data in _extra_fields(info.extra):
        if kind == EXTENDED_TIME and len(data) >= 5 and data[0] & 1:  # bit 0: the time changed
            return _utc(struct.unpack("<l", data[1:5])[0])
    try:
        return datetime(*info.date_time).astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        return None


def _utc(seconds):
    """The Unix time ``seconds`` as a datetime in UTC without time zone (as ``course.stamp``
    records times)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


def _member(archive, info):
    """The bytes of zip member ``info``; ``ValueError`` (the file is skipped, with why) when
    they cannot be had: damaged in the zip, encrypted, or compressed in a way Python lacks."""
    try:
        return archive.read(info)
    except RuntimeError as error:  # zipfile's way to say it needs a password
        raise ValueError("encrypted in the zip: zip it again without a password") from error
    except NotImplementedError as error:
        raise ValueError(f"compressed in a way that cannot be read here ({error})") from error
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ValueError(f"damaged in the zip ({error}): download or zip it again") from error


ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")  # how a zip file begins
AGAIN = "download or zip it again"


def _entries(source):
    source = Path(source)
    if source.is_dir():
        _refuse_the_course(source, _course_folder(source.resolve()))
        for path in sorted(source.rglob("*")):
            if path.is_file():
                rel = PurePosixPath(path.relative_to(source).as_posix())
                yield Entry(rel, path.read_bytes, _utc(path.stat().st_mtime))
    elif zipfile.is_zipfile(source):
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise course.UsageError(f"{source}: a damaged zip file ({error}): {AGAIN}") from None
        _refuse_the_course(source, _course_zip(archive))
        yield from _zip_entries(archive)
    elif not source.exists():
        raise course.UsageError(f"{source}: no such folder or file")
    elif _starts_as_a_zip(source):
        raise course.UsageError(
            f"{source}: a damaged zip file (cut short: the list of its files, at its end, is "
            f"missing): {AGAIN}"
        )
    elif source.suffix.lower() == ".zip":
        raise course.UsageError(f"{source}: named .zip, but not a zip file: {AGAIN}")
    else:
        raise course.UsageError(f"{source}: not a folder or a zip file")


def _refuse_the_course(source, what):
    """Raise ``UsageError`` when ``source`` is the course's or the grader's own rather than a
    class's download (``what`` it is then, else None): its notebooks are laid out as a class's
    (``solutions/01-chain-rule/`` reads as a student named ``solutions``), and would be
    imported."""
    if what:
        raise course.UsageError(
            f"{source}: {what}, not a class's submissions: SOURCE is the folder or zip the "
            f"submissions were downloaded as ({LAYOUTS})"
        )


def _course_folder(folder):
    """What the absolute ``folder`` is when it is the course's or the grader's (else None):
    the repository or a folder around it, a copy of the course (masters in ``solutions/``, or
    nbgrader's ``source/``), the grading workspace, a folder of it or around it, or another
    grading workspace."""
    workspace = course.workspace()
    if folder == course.REPO:
        return "the course's repository"
    if course.REPO.is_relative_to(folder):
        return "a folder that holds the course's repository"
    if folder == workspace:
        return "the grading workspace"
    if folder.is_relative_to(workspace):
        return "a folder of the grading workspace"
    if workspace.is_relative_to(folder):
        return "a folder that holds the grading workspace"
    for masters_folder in MASTERS:
        if any((folder / masters_folder).glob("*/*.ipynb")):
            return _copy_of_the_course(masters_folder)
    for mark in (course.gradebook_file().name, course.LOCK_FILE):
        if (folder / mark).exists():
            return f"a grading workspace (it holds {mark})"
    return None


def _course_zip(archive):
    """What the open zip ``archive`` is when it holds a copy of the course (else None): masters
    in ``solutions/`` (or nbgrader's ``source/``), at its top or in the one folder that wraps
    it (a download of the course's repository)."""
    for info in archive.infolist():
        parts = PurePosixPath(_zip_path(info)).parts
        if len(parts) in (3, 4) and parts[-3] in MASTERS and _is_notebook(parts[-1]):
            return _copy_of_the_course(parts[-3])
    return None


def _copy_of_the_course(masters_folder):
    """What a copy of the course is called, by the folder of its masters."""
    return f"a copy of the course (its {masters_folder}/ holds the masters)"


def _zip_entries(archive):
    """The files of the open zip ``archive``, by name; of files of one name (a zip may hold
    several), all but the last are ``replaced``, as unzip would leave only the last."""
    named = {}  # {name: [member, in the zip's order]}
    for info in archive.infolist():
        name = _zip_path(info)
        if not name.endswith("/"):  # a folder's own entry
            named.setdefault(name, []).append(info)
    for name in sorted(named):
        for info in named[name]:
            yield _zip_entry(archive, name, info, replaced=info is not named[name][-1])


def _zip_entry(archive, name, info, replaced):
    """The file ``name`` of the open zip ``archive``, its member ``info``."""
    read = functools.partial(_member, archive, info)
    return Entry(PurePosixPath(name), read, _zip_time(info), replaced)


def _starts_as_a_zip(path):
    """True when the file at ``path`` begins as a zip file does (Python finds a zip by its end,
    which a download cut short lacks)."""
    try:
        with open(path, "rb") as file:
            return file.read(4) in ZIP_STARTS
    except OSError:
        return False


def _is_notebook(name):
    """Whether the file ``name`` is a notebook's (``.ipynb``, in any case)."""
    return name.lower().endswith(".ipynb")


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


def _found(entry, known):
    """Whose notebook ``entry`` is and where it is filed, as its path tells (``known``: the
    assignments); raises ValueError with the reason when the path does not tell."""
    parts = entry.path.parts
    filed = len(parts) >= 3 and parts[-2] in known
    downloaded = None if filed else _moodle(entry) or _canvas(entry)
    if downloaded:
        return downloaded
    if len(parts) < 3:
        raise ValueError(f"expected {LAYOUTS}")
    return Found(entry, _student_id(parts[-3]), parts[-2], str(entry.path.parent), parts[-1])


def _moodle(entry):
    """``entry`` read as a file of Moodle's download (else None): in a folder named
    ``<name>_<number>_assignsubmission_file_``, or named so followed by its own name. The
    number, Moodle's own for one assignment, tells two students of one name apart."""
    parts = entry.path.parts
    for depth in range(len(parts) - 1, -1, -1):
        match = MOODLE.match(parts[depth])
        in_folder = depth < len(parts) - 1
        if match and in_folder == (match["file"] == ""):
            origin = PurePosixPath(*parts[:depth], f"{parts[depth][: match.end('uid')]}_*")
            name = parts[-1] if in_folder else match["file"]
            return Found(entry, _moodle_id(match), None, str(origin), name)
    return None


def _moodle_id(match):
    """The student id of a Moodle folder or file name (``MOODLE`` ``match``): made from the
    name, or with blind marking, where every name is "Participant", ``Participant_<number>``."""
    if match["name"] == "Participant":
        return f"Participant_{match['uid']}"
    return _download_id(match["name"])


def _canvas(entry):
    """``entry`` read as a file of Canvas's download (else None): named
    ``<name>[_late]_<user number>_<file number>_<its own name>`` (both numbers, so that a
    learner's ``chain_rule_2_final.ipynb`` is not read as one)."""
    match = CANVAS.match(entry.path.name)
    if not match:
        return None
    # The student's on-time and late files come from one origin (one student, not two).
    origin = entry.path.parent / f"{match['name']}_{match['uid']}_*"
    late = match["late"] is not None
    return Found(entry, _download_id(match["name"]), None, str(origin), match["file"], late)


def _download_id(name):
    """The student id made from ``name`` in an LMS download (see ``_as_id``)."""
    return _student_id(_as_id(name) or name)


def _parse(raw):
    """The notebook in ``raw`` bytes, or raise ValueError with a short reason, which does not
    quote the file (nbformat's messages for bad JSON begin with its first lines)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if not text.strip():
        raise ValueError("not a valid notebook: the file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        # The text ends where the JSON needs more (a string is unterminated only at its end).
        if error.msg.startswith("Unterminated string") or not text[error.pos :].strip():
            end = text.rstrip().count("\n") + 1
            raise ValueError(
                f"not a valid notebook: its JSON stops unfinished at line {end} (cut short?)"
            ) from None
        at = f"line {error.lineno}, column {error.colno}"
        raise ValueError(f"not a valid notebook: JSON error at {at} ({error.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("not a valid notebook: no list of cells")
    for number, cell in enumerate(data["cells"], 1):
        problem = _cell_problem(cell)
        if problem:
            raise ValueError(f"not a valid notebook: cell {number} {problem}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. duplicate cell ids, repaired on grading
            return nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several kinds for what it cannot convert
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise ValueError(f"not a valid notebook ({reason})") from None


def _cell_problem(cell):
    """What keeps the notebook ``cell`` (as its JSON reads) from being graded, else None:
    grading reads every cell's type and source (text, or a list of lines of text). What grading
    repairs (no outputs, metadata that is not a dict, a type it does not know) or leaves alone
    (keys of other tools) is not checked."""
    if not isinstance(cell, dict):
        return "is not a JSON object"
    if not isinstance(cell.get("cell_type"), str):
        return "has no cell type"
    of_type = f"({cell['cell_type']})"
    if "source" not in cell:
        return f"{of_type} has no source"
    lines = cell["source"] if isinstance(cell["source"], list) else [cell["source"]]
    if not all(isinstance(line, str) for line in lines):
        return f"{of_type} has a source that is not text"
    return None


def _place(nb, found, course_masters):
    """``(assignment, notebook name, note)``: where notebook ``nb`` is imported; ``note`` says
    why it is not the folder it was found under (else None). Raises ValueError with the reason
    when it cannot be placed."""
    folder = found.folder
    everyone = [m for group in course_masters.values() for m in group]
    owners = cellmatch.owners(nb.cells, everyone)
    whose = " or ".join(sorted({f"{m.assignment}'s" for m in owners}))
    if folder is None:  # an LMS download: the cells alone tell
        if len(owners) == 1:
            return owners[0].assignment, f"{owners[0].name}.ipynb", None
        if owners:
            raise ValueError(f"its cells match several notebooks ({whose})")
        raise ValueError("no cell of it matches a notebook of the course")
    if folder not in course_masters and not owners:
        raise ValueError(
            f"unknown assignment '{folder}', and no cell of it matches a notebook of the course"
        )
    names = [f"{m.name}.ipynb" for m in course_masters.get(folder, [])]
    if not owners:
        if found.name in names:
            return folder, found.name, None
        raise ValueError(f"no cell of it matches {folder}'s notebook ({', '.join(names)})")
    mine = [m for m in owners if m.assignment == folder]
    if mine:
        same = [m for m in mine if f"{m.name}.ipynb" == found.name]
        return folder, f"{(same or mine)[0].name}.ipynb", None
    note = f"looks like {whose} notebook, found under {folder}"
    if len(owners) > 1:
        raise ValueError(note)
    return owners[0].assignment, f"{owners[0].name}.ipynb", note


def collect(source, out=print, err=None, take_older=False):
    """Import ``source``; returns ``(imported, errors)`` counts. A notebook older than the one
    collected for its student and assignment is skipped, or with ``take_older`` replaces it.
    Raises ``UsageError`` when ``source`` holds no notebook at all (an empty or wrong folder or
    zip)."""
    problems = []
    report = err or (lambda line: print(line, file=sys.stderr))

    def skip(line):
        problems.append(line)
        report(line)

    known = course.assignments()
    candidates = []  # [Found]
    notebooks = 0
    for entry in _entries(source):
        if any(p in IGNORED or p.startswith(".") for p in entry.path.parts):
            continue
        if not _is_notebook(entry.path.name):
            skip(f"skipped {entry.path}: not a notebook")
            continue
        if entry.replaced:
            skip(f"skipped {entry.path}: the zip holds two files of this name; the later is taken")
            continue
        notebooks += 1
        try:
            candidates.append(_found(entry, known))
        except ValueError as error:
            skip(f"skipped {entry.path}: {error}")

    if not notebooks:
        raise course.UsageError(f"{source}: no notebook (.ipynb file) in it, nothing collected")
    course_masters = {aid: masters(aid) for aid in known}
    placements = []  # (Placed, note)
    for found in candidates:
        try:
            raw = found.entry.read()
            nb = _parse(raw)
        except ValueError as error:
            filed = found.folder is None or found.folder in course_masters
            unknown = f"unknown assignment '{found.folder}'"  # the cells cannot say which it is
            skip(f"skipped {found.entry.path}: {error if filed else unknown}")
            continue
        try:
            assignment, name, note = _place(nb, found, course_masters)
        except ValueError as error:
            skip(f"skipped {found.entry.path}: {error}")
            continue
        (master,) = [m for m in course_masters[assignment] if f"{m.name}.ipynb" == name]
        answered = cellmatch.answered(nb.cells, master)
        placements.append((Placed(found, assignment, name, raw, answered), note))

    staying = {(_folded(p.student), p.assignment) for p, note in placements if not note}
    found = {}  # (student case-folded, assignment) -> [Placed]
    moved = 0
    for placed, note in placements:
        key = (_folded(placed.student), placed.assignment)
        if note and key in staying:
            skip(
                f"skipped {placed.path}: {note}; {placed.student} has a notebook under "
                f"{placed.assignment}"
            )
            continue
        if note:
            report(f"moved {placed.path}: {note}; imported under {placed.assignment}")
            moved += 1
        found.setdefault(key, []).append(placed)

    # Held while the workspace's notebooks are replaced: not while autograde reads them.
    with course.workspace_lock("collect"):
        imported, unchanged = _import(found, report, skip, take_older)
    line = (
        f"collected {imported} new or changed notebook(s), {unchanged} unchanged, "
        f"{len(problems)} skipped, into {course.folder('submitted')}"
    )
    out(line + (f" ({moved} under another assignment than their folder's)" if moved else ""))
    return imported + unchanged, len(problems)


def _import(found, report, skip, take_older=False):
    """Write the notebooks ``found`` (``{(student case-folded, assignment): [Placed]}``) into
    ``submitted/``, one older than the notebook it would replace only with ``take_older``;
    returns ``(imported, unchanged)`` counts."""
    target = course.folder("submitted")
    collected = _collected(target)
    renamed = set()
    imported = unchanged = 0
    for (_, assignment), items in sorted(found.items()):
        students = sorted({p.student for p in items})
        folders = sorted({p.found.origin for p in items})
        if len(folders) > 1:
            for placed in items:
                skip(
                    f"skipped {placed.path}: duplicate student '{students[0]}' for "
                    f"{assignment} (also in "
                    f"{', '.join(f for f in folders if f != placed.found.origin)})"
                )
            continue
        try:
            student = _folder_of(students[0], collected)
        except ValueError as error:
            for placed in items:
                skip(f"skipped {placed.path}: {error}")
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
            collected_at = course.submitted_at(dest.parent) if dest.exists() else None
            older = _older(placed.handed_in, collected_at)
            if older and not take_older:
                skip(f"skipped {placed.path}: {older}; {TAKE_OLDER} takes it")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            # Its time first: stopped in between, the old notebook counts as handed in again
            # (collect again puts the new one in place), never the new one as the old, whose
            # grades and marks given by hand it would keep.
            course.stamp(dest.parent, _recorded_time(placed.handed_in, collected_at))
            course.write_whole(dest, placed.raw)
            imported += 1
            if older:
                report(f"took {placed.path} ({TAKE_OLDER}): {older}; it counts as handed in again")
    return imported, unchanged


TAKE_OLDER = "--take-older"  # collect's option that takes a notebook older than the one collected


def _older(handed_in, collected):
    """How a notebook handed in at ``handed_in`` is older than the one collected at
    ``collected``, for the instructor; "" when it is not (either None: not known, and not
    older)."""
    if handed_in is None or collected is None or handed_in >= collected:
        return ""
    return (
        f"older than the notebook collected on {_shown(collected)} (this one: {_shown(handed_in)})"
    )


def _recorded_time(handed_in, collected):
    """The time to record for a notebook handed in at ``handed_in`` (None: not known, taken as
    now) that replaces one collected at ``collected`` (None: none): later than ``collected``
    by a microsecond at least, also when the files have the same time, so that the gradebook
    takes it for a new submission (``gradebook.record`` drops the marks given by hand)."""
    when = handed_in or datetime.now(timezone.utc).replace(tzinfo=None)
    if collected is not None and when <= collected:
        return collected + timedelta(microseconds=1)
    return when


def _shown(when):
    """``when`` (in UTC) as the instructor reads it."""
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


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
    """Of a student's notebooks placed under the same name, the one with answers over one as
    released (a blank copy beside the answered ``topic (1).ipynb``); between equals, a Canvas
    file marked late (the newer), then the one that has that name, else the first. The others
    are skipped."""
    chosen = {}
    order = sorted(
        items,
        key=lambda p: (not p.answered, not p.found.late, p.found.name != p.name, str(p.path)),
    )
    for placed in order:
        kept = chosen.get(placed.name)
        if kept:
            blank = kept.answered and not placed.answered
            why = ", which has answers; this one has none" if blank else ""
            if not blank and kept.found.late and not placed.found.late:
                why = ", handed in later"
            skip(
                f"skipped {placed.path}: another notebook of {placed.student}'s is imported "
                f"as {placed.name} ({kept.path}{why})"
            )
            continue
        chosen[placed.name] = placed
    return list(chosen.values())

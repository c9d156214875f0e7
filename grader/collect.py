"""Import submissions into the workspace: ``collect SOURCE``.

``SOURCE`` is a folder laid out ``student_id/assignment/notebook.ipynb`` or a zip of such
folders (wrapping folders above the student ids are fine, as LMS exports have them). Each file
is checked on its own; a bad one gets one line on the error stream and the rest is imported:
not a notebook, unreadable JSON, unknown assignment, an invalid student id, or the same student
twice for an assignment. A notebook with another name than the assignment's (``topic (1).ipynb``)
is imported under the expected name when it is the only one of that student and assignment.
"""

import re
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbformat

from . import course

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")
IGNORED = {"__MACOSX", ".ipynb_checkpoints", ".DS_Store", "Thumbs.db"}


@dataclass
class Entry:
    path: PurePosixPath  # as shown to the user
    read: object  # () -> bytes


def _entries(source):
    source = Path(source)
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                rel = PurePosixPath(path.relative_to(source).as_posix())
                yield Entry(rel, path.read_bytes)
    elif zipfile.is_zipfile(source):
        archive = zipfile.ZipFile(source)
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if not info.is_dir():
                yield Entry(PurePosixPath(info.filename), lambda i=info: archive.read(i))
    else:
        raise course.UsageError(f"{source}: not a folder or a zip file")


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
    return nb


def collect(source, out=print, err=None):
    """Import ``source``; returns ``(imported, errors)`` counts."""
    problems = []
    report = err or (lambda line: print(line, file=sys.stderr))

    def skip(line):
        problems.append(line)
        report(line)

    known = {aid: [p.name for p in course.source_notebooks(aid)] for aid in course.assignments()}
    target = course.folder("submitted")
    found = {}  # (student lower-cased, assignment) -> [(entry, student)]
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
        if assignment not in known:
            skip(f"skipped {where}: unknown assignment '{assignment}'")
            continue
        if not STUDENT_ID.match(student):
            skip(f"skipped {where}: '{student}' is not a valid student id")
            continue
        found.setdefault((student.lower(), assignment), []).append((entry, student))

    imported = unchanged = 0
    for (_, assignment), items in sorted(found.items()):
        names = known[assignment]
        students = sorted({s for _, s in items})
        folders = sorted({str(e.path.parent) for e, _ in items})
        if len(folders) > 1:
            for entry, _ in items:
                skip(
                    f"skipped {entry.path}: duplicate student '{students[0]}' for {assignment} "
                    f"(also in {', '.join(f for f in folders if f != str(entry.path.parent))})"
                )
            continue
        student = students[0]
        for entry, name in _match(items, names, skip):
            try:
                raw = entry.read()
                _parse(raw)
            except ValueError as error:
                skip(f"skipped {entry.path}: {error}")
                continue
            dest = target / student / assignment / name
            if dest.exists() and dest.read_bytes() == raw:
                unchanged += 1
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(raw)
            imported += 1
    out(
        f"collected {imported} new or changed notebook(s), {unchanged} unchanged, "
        f"{len(problems)} skipped, into {target}"
    )
    return imported + unchanged, len(problems)


def _match(items, names, skip):
    """Pair a student's notebooks with the assignment's notebook names."""
    entries = [entry for entry, _ in items]
    by_name = {e.path.name: e for e in entries}
    if len(names) == 1 and len(entries) == 1:
        return [(entries[0], names[0])]
    pairs = [(by_name[n], n) for n in names if n in by_name]
    for entry in entries:
        if entry.path.name not in names:
            skip(
                f"skipped {entry.path}: not one of the assignment's notebooks ({', '.join(names)})"
            )
    return pairs

"""Where the course lives: repository folders, the grading workspace, the nbgrader config."""

import contextlib
import errno
import os
import shlex
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

GRADER_DIR = Path(__file__).resolve().parent
REPO = GRADER_DIR.parent
SOURCE = REPO / "solutions"
RELEASE = REPO / "notebooks"
WORKSPACE_ENV = "BACKPROP_GRADING_DIR"
CACHE_ENV = "BACKPROP_CACHE_DIR"


class UsageError(Exception):
    """Bad input from the instructor: shown as one line, without a traceback."""


COMMAND = "python -m grader"  # what ``command()`` gives when it cannot tell
PATH_AT_START = os.environ.get("PATH", "")  # the command line's (``__main__`` adds to it)


def command():
    """The grader's command line as the instructor can type it here, with this Python:
    relative to the current folder when it is in it (``.venv/bin/python -m grader``, as the
    README has it), else by the name that finds it on the PATH (``python -m grader`` in an
    activated environment), else by its full path."""
    if not sys.executable:
        return COMMAND
    python = Path(sys.executable)
    if python.is_relative_to(Path.cwd()):
        return f"{shlex.quote(str(python.relative_to(Path.cwd())))} -m grader"
    for name in ("python", "python3"):
        found = shutil.which(name, path=PATH_AT_START)
        if found and Path(found).absolute() == python:
            return f"{name} -m grader"
    return f"{shlex.quote(str(python))} -m grader"


def workspace():
    """The grading workspace: $BACKPROP_GRADING_DIR, or ``.grading/`` in the repository."""
    return Path(os.environ.get(WORKSPACE_ENV) or REPO / ".grading").resolve()


def check_workspace(create=False):
    """The workspace, checked before a command uses it: ``UsageError`` naming it when it is a
    file, or, unless the command creates it (``create``: only ``collect``), when it is missing
    (a mistyped --workspace, say)."""
    folder = workspace()
    where = f"check --workspace and ${WORKSPACE_ENV}"
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: a file, not a grading workspace folder: {where}")
    if not create and not folder.exists():
        raise UsageError(
            f"no grading workspace at {folder}: run `{command()} collect` first, or {where}"
        )
    return folder


LOCK_FILE = "grader.lock"
_held = {}  # {command: file descriptor} of the workspace locks this process holds
LOOKS = 5  # times the lock is tried, TRY_AGAIN s apart, before it is found taken
TRY_AGAIN = 0.02


class Busy(UsageError):
    """Another grader command holds the workspace's lock (``workspace_lock``)."""


@contextlib.contextmanager
def workspace_lock(command):
    """Hold the workspace's lock while ``command`` (``autograde``, ``collect``, ``feedback``)
    uses it; raise ``Busy`` at once (in a tenth of a second, see ``_take``), naming the command
    that holds it and its process, when another process does. The lock is the operating
    system's on ``grader.lock`` in the workspace (``flock``): it goes with the process that
    holds it, even one that is killed, so none is ever left behind. Processes forked meanwhile
    must close the descriptors ``held_locks()`` gives."""
    folder = workspace()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _take(fd):
            raise Busy(f"{_running(fd, another=True)}; wait for it to finish")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {command}\n".encode())
        _held[command] = fd
        yield
    finally:
        _held.pop(command, None)
        os.close(fd)  # which releases the lock


def in_use():
    """What holds the workspace's lock (``workspace_lock``), as "an autograde is running in
    this workspace (pid N)", or None when nothing does: for a command that only reads the
    workspace (``export``, ``report``), whose figures may change under it. The lock is tested
    without waiting and not kept: taken shared for an instant, which lets two such tests pass
    together, and which a command that takes the lock meanwhile waits out (``_take``)."""
    try:
        fd = os.open(workspace() / LOCK_FILE, os.O_RDONLY)
    except OSError:  # no lock file: no command has used the workspace; unreadable: cannot tell
        return None
    try:
        if _take(fd, shared=True):
            _release(fd)
            return None
        return _running(fd)
    finally:
        os.close(fd)


def _running(fd, another=False):
    """Which command holds the lock on the lock file open at ``fd``, as its holder wrote it
    there: "an autograde is running in this workspace (pid N)" (with ``another``, "another
    autograde ...")."""
    holder = os.read(fd, 200).decode("utf-8", "replace").split()
    who = holder[1] if len(holder) > 1 else "grader command"
    one = "another" if another else "an" if who[0] in "aeiou" else "a"
    pid = f" (pid {holder[0]})" if holder else ""
    return f"{one} {who} is running in this workspace{pid}"


def held_locks():
    """The file descriptors of the workspace locks this process holds."""
    return tuple(_held.values())


def _take(fd, shared=False):
    """Take the lock on open file ``fd``, looking again a few times in a tenth of a second
    before it gives up: False when another process holds it. A command that only tests the lock
    (``in_use``) holds it for an instant, which is waited out."""
    for look in range(LOOKS):
        if _lock(fd, shared):
            return True
        if look < LOOKS - 1:
            time.sleep(TRY_AGAIN)
    return False


def _lock(fd, shared=False):
    """Take the lock on open file ``fd`` without waiting (``shared``: with other processes that
    take it shared, where the system can): False when another process has it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            _lock_byte(fd, msvcrt.LK_NBLCK)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _release(fd):
    """Let go of the lock ``_lock`` took on open file ``fd``."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        _lock_byte(fd, msvcrt.LK_UNLCK)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _lock_byte(fd, mode):
    """Windows: ``msvcrt.locking`` with ``mode`` on a byte of open file ``fd`` far past the
    holder's pid, which stays readable; the file's position is put back at its start."""
    import msvcrt

    os.lseek(fd, 4096, os.SEEK_SET)
    try:
        msvcrt.locking(fd, mode, 1)
    finally:
        os.lseek(fd, 0, os.SEEK_SET)


def assignments():
    """Assignment ids (``NN-topic``) in ``solutions/``, sorted."""
    if not SOURCE.is_dir():
        return []
    return sorted(p.name for p in SOURCE.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def known(ids):
    """``ids`` without repeats, once each is known to be an assignment in ``solutions/``; else
    ``UsageError``."""
    names = assignments()
    unknown = [a for a in ids if a not in names]
    if unknown:
        raise UsageError(f"unknown assignment(s): {', '.join(unknown)} (known: {', '.join(names)})")
    return list(dict.fromkeys(ids))


def source_notebooks(assignment):
    """The source notebooks of ``assignment``, sorted."""
    return sorted((SOURCE / assignment).glob("*.ipynb"))


def folder(name):
    """A folder of the workspace: ``submitted``, ``autograded``, ``feedback``, ``results``,
    ``exports`` (nbgrader's layout below it: ``<student>/<assignment>/``)."""
    return workspace() / name


def output_file(to, name):
    """Where a command writes the file the instructor asked for: ``to``, else ``name`` in
    ``exports/``. ``UsageError`` for a place in the workspace outside ``exports/``: those
    files (the gradebook, the submissions, the results) are the grader's own."""
    path = Path(to) if to else folder("exports") / name
    where = path.resolve()
    if where.is_relative_to(workspace()) and not where.is_relative_to(folder("exports")):
        raise UsageError(
            f"{path}: the grading workspace keeps its own files there; write to its exports/ "
            "folder or outside the workspace"
        )
    return path


PART = ".part"  # what ``write_whole`` writes a file as, until it is whole


def write_whole(path, text, mode=None):
    """Write ``text`` (or bytes) to the file ``path`` so that it is never seen half written: into
    ``.<name>.<process id>.part`` beside it (a part of its own for each process, so that two
    commands writing one file at once both finish), then renamed over it (made with
    permissions ``mode``, else as the process makes files). Ctrl+C, a killed process or an
    error on the way (a full disk) leaves the file that was there as it was (and no part behind
    it, but when killed). A folder at ``path`` is ``IsADirectoryError`` naming it."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}{PART}")
    try:
        with open(part, "wb") as file:
            file.write(text if isinstance(text, bytes) else text.encode("utf-8"))
        if mode is not None:
            os.chmod(part, mode)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


GRADING = ".grading"  # what a notebook's graded copy's folder is named while it is graded


def grading_folder(graded):
    """The folder where the submission whose graded copy goes to folder ``graded``
    (``autograded/<student>/<assignment>``) is graded, beside it and hidden: it replaces
    ``graded`` only when done (``worker.grade``)."""
    graded = Path(graded)
    return graded.with_name(f".{graded.name}{GRADING}")


def remove_grading_folders():
    """Remove what grading that was stopped left of the folders notebooks were graded in (their
    workers killed by Ctrl+C, or by a notebook): only while no autograde runs."""
    for leftover in folder("autograded").glob(f"*/.*{GRADING}"):
        shutil.rmtree(leftover, ignore_errors=True)


TIMESTAMP = "timestamp.txt"  # in submitted/<student>/<assignment>/, as nbgrader keeps it


def stamp(submission, when=None):
    """Record in its ``timestamp.txt`` that the submission in folder ``submission``
    (``submitted/<student>/<assignment>``) came in at ``when`` (a datetime in UTC without time
    zone; default: now), and return that time. nbgrader's formgrader counts a submission as
    graded only while this time is the one the gradebook holds for it (``gradebook.record``)."""
    when = when or datetime.now(timezone.utc).replace(tzinfo=None)
    (Path(submission) / TIMESTAMP).write_text(f"{when.isoformat(sep=' ')} UTC\n")
    return when


def submitted_at(submission):
    """When the submission in folder ``submission`` came in (as ``stamp`` recorded it). A folder
    without a record (put in the workspace by hand) gets one: the time its newest notebook was
    written."""
    try:
        date, time, _zone = (Path(submission) / TIMESTAMP).read_text().split()
        return datetime.fromisoformat(f"{date} {time}")
    except (OSError, ValueError):
        newest = max(p.stat().st_mtime for p in Path(submission).glob("*.ipynb"))
        written = datetime.fromtimestamp(newest, tz=timezone.utc).replace(tzinfo=None)
        return stamp(submission, written)


def cache():
    """Where the grader keeps what it can rebuild from the course's files (the masters, see
    ``master``), shared by every workspace: $BACKPROP_CACHE_DIR, else ``backprop-grader`` in
    the user's cache folder ($XDG_CACHE_HOME or ``~/.cache``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "backprop-grader"


def gradebook_file():
    """The workspace's gradebook, nbgrader's SQLite database."""
    return workspace() / "gradebook.db"


def db_url():
    return f"sqlite:///{gradebook_file()}"


def load_config(**overrides):
    """The course's nbgrader config, with ``{"Class.trait": value}`` overrides applied."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(GRADER_DIR)).load_config()
    for dotted, value in overrides.items():
        section, trait = dotted.split(".")
        setattr(config[section], trait, value)
    return config


def nbgrader_env():
    """Environment for nbgrader subprocesses: the venv's bin on PATH (nbgrader starts
    ``alembic`` by name) and this folder on JUPYTER_CONFIG_PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        p for p in [str(GRADER_DIR), env.get("JUPYTER_CONFIG_PATH", "")] if p
    )
    return env

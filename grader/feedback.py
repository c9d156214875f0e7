"""``feedback``: one HTML page per student and assignment, with hidden tests removed.

nbgrader's ``GenerateFeedback`` renders each autograded notebook as a page; its preprocessors
(``nbgrader_config.py``) clear the hidden tests and scrub them from every output (``scrub``).
The converter used here, ``PagesOnly``, differs from it in these ways:

- it writes the pages and nothing else. nbgrader also copies every other file of
  ``autograded/<student>/<assignment>/``: files the submission's code wrote, which can hold
  anything the code could read (its own cells with the hidden tests, for example);
- a page replaces the one of the last run only once it is whole (``write_whole``), and nothing
  is removed on Ctrl+C: a student whose page was not written again keeps the old one. nbgrader
  removes a student's pages before it writes them again, and again when anything goes wrong;
- a notebook that cannot be rendered or written is named with a one-line reason, and the others
  are rendered (nbgrader's removal of a folder it cannot write to fails again, and ends its run);
- it moves a progress bar;
- it renders in parallel: each of ``jobs_n`` worker processes renders the pages of a share of
  the students (``Renderers``);
- it writes pages only for notebooks whose grades are for the notebook handed in now
  (``classresults.grade_status``), and names the others with the reason;
- its pages are easier to read (``readable``): a long output line wraps, so the diagnosis that
  ends a failing test's traceback is read whole, and each test cell in the page's table of
  contents is named (nbgrader calls every one "Test cell").

Then every file in ``feedback/*/<assignment>/`` is checked for hidden-test lines
(``scrub.leaks``); a file that shows one is deleted and named.
"""

import contextlib
import multiprocessing
import re
import shutil
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

from . import children, course, nbgrader_parts, progress
from .classresults import (
    GRADED,
    HANDED_IN_AGAIN,
    grade_status,
    not_graded_yet,
    nothing_collected,
    nothing_graded,
    submissions,
    why_no_grade,
)
from .course import write_whole
from .scrub import Hidden, leaks

nbgrader_parts.load()
from nbgrader.converters import GenerateFeedback  # noqa: E402
from nbgrader.coursedir import CourseDirectory  # noqa: E402
from nbgrader.utils import capture_log  # noqa: E402


def _one_line(error):
    """``Kind: first line of the message``."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


WRAP_OUTPUT_LINES = (
    "<style>div.output_subarea pre {white-space: pre-wrap; overflow-wrap: anywhere}</style>"
)
TEST_CELL_LINK = re.compile(r'(<a href="#([^"<>]+)">)Test cell(</a>)')


def readable(page):
    """A feedback page's HTML with its long output lines wrapped, and each test cell of its table
    of contents named by its grade_id."""
    page = TEST_CELL_LINK.sub(r"\1\2\3", page)
    return page.replace("</head>", WRAP_OUTPUT_LINES + "\n</head>", 1)


def keep_only(pages):
    """Remove from the folder of ``pages`` everything else: what an earlier run left there
    (nbgrader's own feedback copies the files a submission wrote; a run killed while it wrote a
    page leaves its part). Housekeeping only: what cannot be removed is left."""
    for path in pages[0].parent.iterdir():
        if path not in pages:
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


class PagesOnly(GenerateFeedback):
    """``GenerateFeedback`` that writes only the pages, each one whole or not at all, and keeps
    going past a notebook it cannot render or write. Set ``failures`` (a list), ``bar`` (a
    progress bar), ``students`` (those to write pages for) and ``stop`` (anything with an
    ``is_set()``: a worker's stop event, ``CtrlC``) before ``start()``."""

    def init_notebooks(self):
        """The autograded notebooks of ``students`` only."""
        super().init_notebooks()
        self.assignments = {
            folder: notebooks
            for folder, notebooks in self.assignments.items()
            if Path(folder).parent.name in self.students
        }

    def convert_notebooks(self):
        """Write each student's pages (``write_page``), in place of nbgrader's loop: that one
        removes a student's pages before it renders them again, and removes them on Ctrl+C or
        any error (which, where they cannot be removed, ends the loop for every later student).
        A student whose pages are all written gets nothing else in that folder
        (``keep_only``)."""
        for folder in sorted(self.assignments):
            pages = [self.write_page(notebook) for notebook in sorted(self.assignments[folder])]
            if all(pages):
                keep_only(pages)

    def write_page(self, notebook):
        """Render the autograded ``notebook`` and write its page, ``readable``, over the old one
        (``write_whole``); returns the page. When that fails, the failure is added to
        ``failures`` as ``(student, notebook, reason)``, the old page (of a notebook graded
        before) is removed, and it returns None. Once ``stop`` is set, it raises
        ``KeyboardInterrupt`` instead of starting."""
        if self.stop is not None and self.stop.is_set():
            raise KeyboardInterrupt
        path = Path(notebook)
        student, assignment = path.parent.parent.name, path.parent.name
        page = Path(self._format_dest(assignment, student)) / (
            path.stem + self.exporter.file_extension
        )
        try:
            resources = self.init_single_notebook_resources(notebook)
            output, _ = self.exporter.from_filename(notebook, resources=resources)
            write_whole(page, readable(output), int(str(self.permissions), 8))
            return page
        except Exception as error:
            self.failures.append((student, path.stem, _one_line(error)))
            with contextlib.suppress(OSError):
                page.unlink(missing_ok=True)
            return None
        finally:
            self.bar.update()


def graded_notebooks(assignment):
    """The autograded notebooks of ``assignment``: ``autograded/<student>/<assignment>/*``."""
    return sorted(course.folder("autograded").glob(f"*/{assignment}/*.ipynb"))


def _assignments(ids):
    """The assignments to give feedback on: ``ids`` (each known, collected and graded), else
    every graded one; ``UsageError`` when there is nothing to give feedback on (naming, of
    ``ids``, those with nothing collected)."""
    if not ids:
        ids = [a for a in course.assignments() if graded_notebooks(a)]
        if not ids:
            raise course.UsageError(nothing_graded())
    ids = course.known(ids)
    collected = {aid for _, aid in submissions()}
    uncollected = [aid for aid in ids if aid not in collected]
    if uncollected:
        raise course.UsageError(nothing_collected(uncollected))
    for aid in ids:
        if not graded_notebooks(aid):
            raise course.UsageError(
                f"nothing graded for {aid} yet: run `{course.command()} autograde` first"
            )
    return ids


def render(assignment, students, bar, stop=None):
    """Write the pages of ``students``' notebooks of ``assignment``; returns one line per page
    it could not write. Raises ``KeyboardInterrupt`` on Ctrl+C, and before its next page once
    ``stop`` (see ``PagesOnly``) is set."""
    config = course.load_config()
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    app = PagesOnly(coursedir=coursedir, config=config)
    app.failures, app.bar, app.students, app.stop = [], bar, set(students), stop
    result = capture_log(app)
    if result.get("error", "").rstrip().endswith("KeyboardInterrupt"):
        raise KeyboardInterrupt  # Ctrl+C, which nbgrader's capture_log caught
    problems = [
        f"no feedback for {student}/{assignment}/{notebook}: {reason}"
        for student, notebook, reason in app.failures
    ]
    if not result["success"]:
        last = result.get("error", "").strip().splitlines()[-1:] or ["unknown error"]
        problems.append(f"no feedback for {assignment}: {last[0]}")
    return problems


# -- rendering in parallel ---------------------------------------------------------------------

# In a worker: the event that tells it to stop before its next student, and the queue its pages
# go to, one count each, for the parent's progress bar.
_STOP = _DONE = None


class _Ticks:
    """A worker's progress bar: each page it is done with is counted in the parent's."""

    def update(self, n=1):
        _DONE.put(n)


def _start_worker(stop, done, inherited):
    """Runs first in a worker (see ``children``: it ends with this process, Ctrl+C does not
    reach it, it closes ``inherited``). On Ctrl+C this process sets ``stop``, and the worker
    stops before its next page (``PagesOnly.write_page``)."""
    global _STOP, _DONE
    children.start(inherited)
    _STOP, _DONE = stop, done


def _render_part(assignment, students):
    """A worker's task: ``render`` the pages of ``students``, its share of ``assignment``."""
    return render(assignment, students, _Ticks(), _STOP)


def parts(ids, graded, jobs_n):
    """The pages to render, as ``[(assignment, students)]``: each assignment's ``graded``
    students dealt out in turn over at most ``jobs_n`` parts, so that parts are of one size."""
    found = []
    for aid in ids:
        students = sorted(graded[aid])
        n = max(1, min(jobs_n, len(students)))
        found += [(aid, set(students[i::n])) for i in range(n) if students[i::n]]
    return found


class Renderers:
    """``jobs_n`` worker processes that render pages (``render``), started at once; with one,
    pages are rendered in this process. Forked on Linux (they start with nbconvert imported),
    before any thread of this process, such as a progress bar's, starts; spawned elsewhere.
    ``close()`` ends them."""

    def __init__(self, jobs_n):
        self.pool = None
        if jobs_n <= 1:
            return
        fork = sys.platform.startswith("linux")  # macOS frameworks do not survive fork()
        context = multiprocessing.get_context("fork" if fork else "spawn")
        self.stop, self.done = context.Event(), context.SimpleQueue()
        self.pool = ProcessPoolExecutor(
            jobs_n,
            mp_context=context,
            initializer=_start_worker,
            # a spawned worker has none of this process's file descriptors to close
            initargs=(self.stop, self.done, course.held_locks() if fork else ()),
        )
        self.pool.submit(children.started)  # the first submit forks every worker

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def render(self, work, bar, ctrl_c):
        """Render ``work`` (from ``parts``), moving ``bar``; returns the problems, as
        ``render``. Ctrl+C (``ctrl_c``, a ``CtrlC``) lets each worker finish the page it is
        writing, then raises ``KeyboardInterrupt``."""
        if self.pool is None:
            return [p for aid, students in work for p in render(aid, students, bar, ctrl_c)]
        ticks = threading.Thread(target=self._move, args=(bar,), daemon=True)
        ticks.start()
        futures = [self.pool.submit(_render_part, aid, students) for aid, students in work]
        try:
            wait(futures)
        except KeyboardInterrupt:
            self.stop.set()
            wait(futures)  # each worker ends the page it is writing
            raise
        finally:
            self.done.put(None)
            ticks.join()
        return [problem for future in futures for problem in future.result()]

    def _move(self, bar):
        """Move ``bar`` by the pages the workers count, until None comes."""
        while (n := self.done.get()) is not None:
            bar.update(n)


# -- after rendering ----------------------------------------------------------------------------


def withhold_leaks(assignment):
    """Delete every file in ``feedback/*/<assignment>/`` that shows a hidden-test line of the
    assignment; returns one line per file deleted."""
    hidden = [Hidden.of_notebook(assignment, s.stem) for s in course.source_notebooks(assignment)]
    problems = []
    for path in sorted(course.folder("feedback").glob(f"*/{assignment}/**/*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found = [line for h in hidden for line in leaks(text, h)]
        if found:
            path.unlink()
            problems.append(f"withheld {path}: it shows the hidden test line {found[0]!r}")
    return problems


INTERRUPTED = "interrupted: the pages written so far are kept; run feedback again for the rest"


class CtrlC:
    """Ctrl+C in this process, within the block: it raises ``KeyboardInterrupt``, as Python's
    own handler does, and is also noted (``is_set()``). Python drops a ``KeyboardInterrupt``
    raised while it runs a finalizer or a weakref callback, which rendering a page does often
    (it prints "Exception ignored in: ..." and goes on); the note stays, the page loop stops at
    it (``PagesOnly.write_page``), and leaving the block raises ``KeyboardInterrupt`` when it is
    set. Where Ctrl+C is not Python's to handle (outside the main thread, or ignored, or handled
    by someone else), it changes nothing."""

    def __init__(self):
        self._pressed = False  # a plain flag: an Event's lock could deadlock its own handler
        self._before = None

    def is_set(self):
        """Whether Ctrl+C was pressed."""
        return self._pressed

    def _handle(self, signum, frame):
        self._pressed = True
        signal.default_int_handler(signum, frame)

    def __enter__(self):
        by_python = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        if by_python and threading.current_thread() is threading.main_thread():
            self._before = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, kind, error, traceback):
        if self._before is not None:
            signal.signal(signal.SIGINT, self._before)
        if kind is None and self._pressed:
            raise KeyboardInterrupt
        return False


def feedback(ids=None, out=print, jobs_n=1):
    """Write the pages, ``jobs_n`` at once, and check every page on disk; returns 0, or 1 when
    a page could not be written or had to be withheld (each named on stderr). A submitted
    notebook without a grade of its own gets no page: each is named with the reason, and each
    assignment with submissions not graded yet is named last (of ``ids`` when given; see
    ``classresults.not_graded_yet``). Ctrl+C,
    at any moment, stops it (exit code 130); the pages written so far are kept, and so are the
    old pages of the others. It holds the workspace (``course.workspace_lock``): an autograde
    would replace the graded notebooks it reads, and two feedbacks would write the same
    pages."""
    try:
        with CtrlC() as ctrl_c, course.workspace_lock("feedback"):
            return _feedback(ids, out, jobs_n, ctrl_c)
    except KeyboardInterrupt:
        out(INTERRUPTED)
        raise SystemExit(130) from None


def _feedback(named, out, jobs_n, ctrl_c):
    """``feedback`` once the workspace is this process's."""
    ids = _assignments(named)
    problems = []
    before = _pages(ids)
    status = {aid: grade_status(aid) for aid in ids}
    graded = {aid: {sid for sid, state in status[aid].items() if state == GRADED} for aid in ids}
    total = sum(
        1 for aid in ids for p in graded_notebooks(aid) if p.parent.parent.name in graded[aid]
    )
    work = parts(ids, graded, jobs_n)
    renderers = Renderers(min(jobs_n, len(work)))
    try:
        with progress.bar(total, "feedback", "page") as bar:
            problems += renderers.render(work, bar, ctrl_c)
    finally:
        renderers.close()
    for aid in ids:
        problems += withhold_leaks(aid)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    pages = _pages(ids)
    written = sum(1 for page, stamp in pages.items() if before.get(page) != stamp)
    line = f"{written} feedback page(s) written in {course.folder('feedback')}"
    if len(pages) > written:
        line += f"; {len(pages) - written} older one(s) there were left as they were"
    out(line)
    for aid in ids:
        for sid, state in sorted(status[aid].items()):
            if state != GRADED:
                old = " (the page there is for the notebook handed in before)"
                page = state == HANDED_IN_AGAIN and any(
                    course.folder("feedback").glob(f"{sid}/{aid}/*.html")
                )
                out(f"no page for {sid}/{aid}: {why_no_grade(state)}{old if page else ''}")
    for line in not_graded_yet(named or None, statuses=status):
        out(line)
    return 1 if problems else 0


def _pages(ids):
    """``{path: modification time}`` of the feedback pages of the assignments ``ids``."""
    pages = (p for aid in ids for p in course.folder("feedback").glob(f"*/{aid}/*.html"))
    return {page: page.stat().st_mtime_ns for page in pages}

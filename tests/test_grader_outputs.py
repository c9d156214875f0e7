"""Submissions that flood their output: endless printing, many lines, one huge line, many
displays, test cells that print a lot. The graded notebook and the feedback page keep a bounded
head and tail with a note of what was left out, and the scores are those of a quiet notebook."""

import json
import random
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_output

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "grading"))

import tiny_course as tiny  # noqa: E402

from grader import course, runner  # noqa: E402
from grader.__main__ import main  # noqa: E402
from grader.master import grade_id  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grader-outputs")]
A, NAME = tiny.ASSIGNMENT, f"{tiny.NOTEBOOK}.ipynb"
LIMITS = runner.OUTPUT_LIMITS
NOTE = re.compile(r"\.\.\. ([\d,]+) (lines|characters|displays)\b.* left out by the grader \.\.\.")
ADD = tiny.CORRECT["add"]


def _printing(what, stream="sys.stdout"):
    """An ``add`` that writes ``what`` (an expression for a string) before it answers."""
    return f"def add(a, b):\n    import sys\n    {stream}.write({what})\n    return a + b"


# student: (answers, score, flags, mistakes, warnings on)
CLASS = {
    # an answer cell that prints until its time limit
    "endless": (
        {"add": ADD + "\ni = 0\nwhile True:\n    print('debug', i, 'x' * 100)\n    i += 1"},
        4,
        [["timeout", "add"]],
        {},
        [],
    ),
    # 300,000 lines in 300 prints
    "lines": (
        {
            "add": ADD + "\nfor k in range(300):\n"
            "    print('\\n'.join(f'line {1000 * k + j}' for j in range(1000)))"
        },
        4,
        [],
        {},
        [],
    ),
    "long-line": ({"add": ADD + "\nprint('y' * 10_000_000)"}, 4, [], {}, []),
    # 1,000 displays, then one of 3 MB
    "displays": (
        {
            "add": ADD + "\nfor i in range(1000):\n    display(i)\n"
            "from IPython.display import HTML\ndisplay(HTML('<b>' + 'a' * 3_000_000 + '</b>'))"
        },
        4,
        [],
        {},
        [],
    ),
    # test cells that print 100,000 lines for each call of add, and pass or fail
    "loud-pass": (
        {"add": _printing("''.join(f'line {j}\\n' for j in range(100_000))")},
        4,
        [],
        {},
        [],
    ),
    "loud-fail": (
        {"add": _printing("''.join(f'line {j}\\n' for j in range(100_000))").replace("a + b", "5")},
        3,
        [],
        {"add": ["unexplained"]},
        [],
    ),
    "loud-warning": (
        {
            "add": _printing(
                "''.join(f'UserWarning: step {j}\\n' for j in range(100_000))", "sys.stderr"
            )
        },
        4,
        [],
        {},
        ["add"],
    ),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class collected and autograded (cells stopped after 8 s)."""
    root = tmp_path_factory.mktemp("outputs")
    with tiny.as_the_course(root) as master:
        folder = root / "class"
        for sid, (answers, *_) in CLASS.items():
            path = folder / sid / A / NAME
            path.parent.mkdir(parents=True)
            nbformat.write(tiny.student_nb(master.released_nb(), tiny.CORRECT | answers), path)
        assert main(["collect", str(folder)]) == 0
        assert main(["autograde", "-j", "2", "--cell-timeout", "8"]) == 0
        yield root


def result(student):
    return json.loads((course.folder("results") / A / f"{student}.json").read_text())


def graded_nb(student):
    return nbformat.read(course.folder("autograded") / student / A / NAME, as_version=4)


def cell(nb, gid):
    return next(c for c in nb.cells if grade_id(c) == gid)


def text(cell, name="stdout"):
    return "".join(o.text for o in cell.outputs if o.get("name") == name)


def notes(text):
    return [NOTE.fullmatch(line) for line in text.splitlines() if NOTE.fullmatch(line)]


@pytest.mark.parametrize("student", sorted(CLASS))
def test_a_flooded_notebook_is_small_says_what_it_left_out_and_scores_as_a_quiet_one(
    graded, student
):
    path = course.folder("autograded") / student / A / NAME
    assert path.stat().st_size < 500_000
    nb = graded_nb(student)
    flooded = cell(
        nb, "add" if student in ("endless", "lines", "long-line", "displays") else "test_add"
    )
    shown = "".join(o.get("text", "") for o in flooded.outputs)
    assert len(notes(shown)) >= 1, shown[:2000]
    assert len(flooded.outputs) <= LIMITS.displays + LIMITS.tail_displays + 10
    assert shown.count("\n") < 2 * (LIMITS.head_lines + LIMITS.tail_lines) + 10
    _, score, flags, mistakes, warned = CLASS[student]
    r = result(student)
    assert sum(s or 0 for s, *_ in r["grades"].values()) == score
    assert r["flags"] == flags
    assert {e["name"]: e["mistakes"] for e in r["exercises"] if e["mistakes"]} == mistakes
    assert [e["name"] for e in r["exercises"] if e["warnings"]] == warned


def test_endless_printing_keeps_its_first_and_last_lines(graded):
    answer = cell(graded_nb("endless"), "add")
    shown = text(answer)
    assert shown.startswith("debug 0 " + "x" * 100 + "\ndebug 1 ")
    (note,) = notes(shown)
    assert note.group(2) == "lines" and int(note.group(1).replace(",", "")) > 1000
    last = [int(i) for i in re.findall(r"^debug (\d+) x", shown, re.MULTILINE)]
    assert last[-1] > int(note.group(1).replace(",", "")), "the tail is the end of the output"
    assert "CellTimeoutError" in [o.get("ename") for o in answer.outputs]


def test_many_lines_keep_exactly_their_head_and_tail(graded):
    lines = [f"line {i}\n" for i in range(300_000)]
    head, tail = lines[: LIMITS.head_lines], lines[-LIMITS.tail_lines :]
    left = len("".join(lines)) - len("".join(head + tail))
    note = f"... {len(lines) - len(head) - len(tail):,} lines ({left:,} characters) of output left"
    expected = "".join(head) + note + " out by the grader ...\n" + "".join(tail)
    assert text(cell(graded_nb("lines"), "add")) == expected


def test_one_huge_line_keeps_its_two_ends(graded):
    left = 10_000_001 - LIMITS.head_chars - LIMITS.tail_chars
    assert text(cell(graded_nb("long-line"), "add")) == (
        "y" * LIMITS.head_chars
        + f"\n... {left:,} characters of output left out by the grader ...\n"
        + "y" * (LIMITS.tail_chars - 1)
        + "\n"
    )


def test_many_displays_keep_the_first_and_the_last(graded):
    outputs = cell(graded_nb("displays"), "add").outputs
    first = [o.data["text/plain"] for o in outputs[: LIMITS.displays]]
    assert first == [str(i) for i in range(LIMITS.displays)]
    note = outputs[LIMITS.displays]
    assert note.output_type == "stream"
    assert notes(note.text)[0].groups()[:2] == (f"{1001 - 120:,}", "displays")
    last = [o.data["text/plain"] for o in outputs[LIMITS.displays + 1 :]]
    assert last[:-1] == [str(i) for i in range(981, 1000)]
    assert "text/html" in last[-1] and "left out by the grader" in last[-1]
    assert outputs[-1].data.keys() == {"text/plain"}


def test_a_test_cell_that_prints_a_lot_still_passes_or_fails(graded):
    passing, failing = (cell(graded_nb(s), "test_add") for s in ("loud-pass", "loud-fail"))
    assert not [o for o in passing.outputs if o.output_type == "error"]
    assert notes(text(passing)) and text(passing).startswith("line 0\nline 1\n")
    errors = [o for o in failing.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["AssertionError"] and failing.outputs[-1] is errors[0]
    assert "hidden add" in "".join(errors[0].traceback), "the traceback is kept whole"
    assert notes(text(failing))


def test_a_test_cell_that_floods_stderr_keeps_its_warning(graded):
    warned = cell(graded_nb("loud-warning"), "test_add")
    stderr = text(warned, "stderr")
    assert stderr.startswith("UserWarning: step 0\n") and stderr.endswith("step 99999\n")
    assert notes(stderr) and not text(warned)
    (ex,) = [e for e in result("loud-warning")["exercises"] if e["name"] == "add"]
    assert ex["passed"] and ex["warnings"] == ["UserWarning: step 0"]


def test_feedback_pages_of_flooded_notebooks_stay_small(graded):
    assert main(["feedback"]) == 0
    for student in CLASS:
        page = course.folder("feedback") / student / A / f"{tiny.NOTEBOOK}.html"
        assert page.stat().st_size < 1_000_000, student
        assert "left out by the grader" in page.read_text(), student


def test_a_capped_cell_still_updates_and_clears_its_displays(tmp_path):
    """A display in a cell's head can be updated from a later cell, past the displays left
    out; ``clear_output`` starts the cell's caps again (a progress line is never cut)."""
    sources = [
        "h = display('first', display_id=True)\nfor i in range(500):\n    display(i)",
        "h.update('updated')",
        "from IPython.display import clear_output\nfor i in range(1000):\n"
        "    clear_output(wait=True)\n    print('step', i)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    runner.run(nb, tmp_path, runner.Limits(cell=60))
    shown, _, progress = (c.outputs for c in nb.cells)
    assert shown[0].data["text/plain"] == "'updated'"
    assert len(shown) == LIMITS.displays + 1 + LIMITS.tail_displays
    assert notes(shown[LIMITS.displays].text)
    assert [o.get("text") for o in progress] == ["step 999\n"]


def printed(outputs):
    """What ``outputs`` printed to stdout, whole: a kernel may send one print in pieces."""
    return "".join(o["text"] for o in outputs if o.get("name") == "stdout")


def _widget_run(monkeypatch, tmp_path, capturing):
    """Run a notebook whose first cell captures ``capturing`` (code) in an Output widget ``out``,
    the second prints ``after`` and the third prints the kernel's ``out.outputs`` as JSON.
    Returns the three cells' outputs, the run's log, and the size of each message the client
    sent to the kernel for its Output widgets."""
    from nbclient.output_widget import OutputWidget

    sent = []
    real = OutputWidget.send

    def send(self, data=None, metadata=None, buffers=None):
        sent.append(len(json.dumps(data)))
        return real(self, data, metadata, buffers)

    monkeypatch.setattr(OutputWidget, "send", send)
    sources = [
        "import ipywidgets\nout = ipywidgets.Output()\ndisplay(out)\nwith out:\n"
        + "".join(f"    {line}\n" for line in capturing.splitlines()),
        "print('after')",
        "import json\nprint(json.dumps([dict(o) for o in out.outputs]))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    log = runner.run(nb, tmp_path, runner.Limits(cell=60))
    kept = text(nb.cells[2])
    assert not notes(kept), "the kernel's widget holds more than the grader keeps"
    return nb.cells[0].outputs, nb.cells[1].outputs, json.loads(kept), log, sent


def test_an_output_widget_that_is_flooded_keeps_its_head_and_tail(monkeypatch, tmp_path):
    """Output captured by a widget is capped as a cell's is, the kernel's widget is sent what it
    kept once, and the next cell runs as usual."""
    capturing = "for i in range(20_000):\n    print(i, 'x' * 50)"
    flood, after, kept, log, sent = _widget_run(monkeypatch, tmp_path, capturing)
    lines = [f"{i} " + "x" * 50 + "\n" for i in range(20_000)]
    head, tail = lines[: LIMITS.head_lines], lines[-LIMITS.tail_lines :]
    left = len("".join(lines)) - len("".join(head + tail))
    note = f"... {len(lines) - len(head) - len(tail):,} lines ({left:,} characters) of output left"
    expected = "".join(head) + note + " out by the grader ...\n" + "".join(tail)
    assert kept == [{"output_type": "stream", "name": "stdout", "text": expected}]
    assert log.events == {} and printed(after) == "after\n"
    assert [o.output_type for o in flood] == ["display_data"], "the widget, not its output"
    assert len(sent) == 1 and sent[0] < len(expected) + 1000


def test_an_output_widget_sends_its_state_once_a_cell_not_once_an_output(monkeypatch, tmp_path):
    """A thousand outputs that come one by one (``flush=True``): nbclient's widget sent its whole
    list of outputs after each of them, traffic that grows with the square of their number."""
    capturing = "for i in range(1000):\n    print(i, 'y' * 50, flush=True)"
    _, after, kept, log, sent = _widget_run(monkeypatch, tmp_path, capturing)
    assert len(sent) == 1 and sent[0] < LIMITS.head_chars + LIMITS.tail_chars
    (stdout,) = kept
    (note,) = notes(stdout["text"])
    assert note.group(2) == "lines", "a hundred outputs in the head, then the tail"
    assert stdout["text"].startswith("0 yyy") and stdout["text"].endswith("999 " + "y" * 50 + "\n")
    assert log.events == {} and printed(after) == "after\n"


def test_an_output_widget_with_a_few_outputs_keeps_them_all(monkeypatch, tmp_path):
    """What an honest notebook captures is kept exactly as nbclient's widget kept it: the pieces
    of one stream in a row joined in one output."""
    capturing = (
        "import sys\nprint('one', flush=True)\nprint('two', flush=True)\ndisplay(42)\n"
        "print('three', flush=True)\nprint('careful', file=sys.stderr, flush=True)"
    )
    shown, after, kept, log, _ = _widget_run(monkeypatch, tmp_path, capturing)
    assert kept == [
        {"output_type": "stream", "name": "stdout", "text": "one\ntwo\n"},
        {"output_type": "display_data", "data": {"text/plain": "42"}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "three\n"},
        {"output_type": "stream", "name": "stderr", "text": "careful\n"},
    ]
    assert log.events == {} and printed(after) == "after\n"
    assert [o.output_type for o in shown] == ["display_data"]


# No kernel: kernel messages handed to the client one by one.


def _client(keep_whole=()):
    from grader.outputs import CappedClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    client = CappedClient(nb, LIMITS, keep_whole)
    client.clear_before_next_output = False
    return client, nb.cells[0]


def _send(client, cell, msg_type, **content):
    msg = {
        "msg_type": msg_type,
        "header": {"msg_type": msg_type},
        "parent_header": {"msg_id": "cell"},
        "content": content,
    }
    client.process_message(msg, cell, 0)


@pytest.mark.parametrize("pieces", ["one", "lines", "random"])
def test_a_stream_keeps_its_head_and_tail_however_it_comes_in(pieces):
    lines = [f"{i} " + "z" * (i % 300) + "\n" for i in range(20_000)]
    whole = "".join(lines)
    if pieces == "one":
        parts = [whole]
    elif pieces == "lines":
        parts = lines
    else:
        rng, parts, at = random.Random(7), [], 0
        while at < len(whole):
            step = rng.choice([1, 10, 500, 30_000])
            parts.append(whole[at : at + step])
            at += step
    client, cell = _client()
    bound = LIMITS.head_chars + LIMITS.tail_chars + 200
    for part in parts:
        _send(client, cell, "stream", name="stdout", text=part)
        assert sum(len(o.text) for o in cell.outputs) < bound  # bounded while it comes
    shown = text(cell)
    assert len(cell.outputs) <= LIMITS.stream_outputs + 1
    (note,) = notes(shown)
    head, _, tail = shown.partition(note.group(0) + "\n")
    assert whole.startswith(head) and whole.endswith(tail)
    assert len(head) <= LIMITS.head_chars and head.endswith("\n"), "whole lines"
    assert len(tail) <= LIMITS.tail_chars and tail == "".join(lines[-tail.count("\n") :])
    left = whole[len(head) : len(whole) - len(tail)]
    assert note.group(0) == f"... {left.count(chr(10)):,} lines ({len(left):,} characters) of " + (
        "output left out by the grader ..."
    )


def test_a_cut_inside_a_line_never_splits_a_hidden_test_line():
    """Feedback removes hidden-test lines from what a submission printed: only whole ones."""
    from grader.outputs import shown_forms

    hidden = "assert add(-1.5, 0.5) == -1.0, 'hidden add'"
    forms = shown_forms([hidden])
    quoted = json.dumps(hidden)[1:-1]
    line = "a" * (LIMITS.head_chars - 10) + hidden + "b" * 1_000_000 + quoted + "c" * 20_000
    for pieces in ([line + "\n"], [line[:700_000], line[700_000:] + "\n"]):
        client, cell = _client(forms)
        for part in pieces:
            _send(client, cell, "stream", name="stdout", text=part)
        head, _, tail = text(cell).partition(" left out by the grader ...\n")
        assert head.startswith("a" * 100) and hidden not in head and "assert" not in head
        assert tail == "c" * 19_999 + "\n"
        for form in forms:
            assert form[:5] not in head + tail and form[-5:] not in head + tail


def test_displays_errors_and_streams_keep_their_order():
    client, cell = _client()
    _send(client, cell, "stream", name="stdout", text="before\n")
    for i in range(300):
        _send(client, cell, "display_data", data={"text/plain": str(i)}, metadata={})
    _send(client, cell, "display_data", data={"image/png": "A" * 2_000_000}, metadata={})
    _send(client, cell, "error", ename="ValueError", evalue="boom", traceback=["x" * 100_000])
    kinds = [o.output_type for o in cell.outputs]
    assert kinds[0] == "stream" and kinds[-1] == "error"
    assert cell.outputs[-1].traceback == ["x" * 100_000]
    assert "image/png" in cell.outputs[-2].data["text/plain"]
    assert len(cell.outputs) == 1 + LIMITS.displays + 1 + LIMITS.tail_displays + 1


def _open_widget(client, cell, comm_id):
    """An Output widget, opened in ``client`` as the kernel opens one; what it sends to the
    kernel is kept in its ``sent``."""
    state = {"_model_module": "@jupyter-widgets/output", "_model_name": "OutputModel"}
    data = {"state": state | {"outputs": [], "msg_id": ""}, "buffer_paths": []}
    _send(client, cell, "comm_open", comm_id=comm_id, target_name="jupyter.widget", data=data)
    widget = client.comm_objects[comm_id]
    widget.sent = []
    widget.send = widget.sent.append
    return widget


def _capture(client, cell, comm_id, msg_id):
    """The kernel's widget ``comm_id`` starts (``msg_id`` "cell") or stops ("") capturing."""
    data = {"method": "update", "state": {"msg_id": msg_id}, "buffer_paths": []}
    _send(client, cell, "comm_msg", comm_id=comm_id, data=data)


def test_each_output_widget_has_caps_of_its_own_that_a_clear_starts_again():
    """Displays and streams captured by a widget are capped as a cell's; nothing goes to the
    kernel until the client sends the widgets' states (``send_widget_states``)."""
    client, cell = _client()
    flooded, quiet = _open_widget(client, cell, "a"), _open_widget(client, cell, "b")
    _capture(client, cell, "a", "cell")
    for i in range(300):
        _send(client, cell, "display_data", data={"text/plain": str(i)}, metadata={})
    _send(client, cell, "stream", name="stdout", text="".join(f"{i}\n" for i in range(5000)))
    _capture(client, cell, "a", "")
    _capture(client, cell, "b", "cell")
    _send(client, cell, "stream", name="stdout", text="quiet\n")
    assert cell.outputs == [] and flooded.sent == quiet.sent == []

    client.send_widget_states()
    ((a,), (b,)) = flooded.sent, quiet.sent
    shown = [o.get("data", {}).get("text/plain") for o in a["state"]["outputs"]]
    assert shown[: LIMITS.displays] == [str(i) for i in range(LIMITS.displays)]
    assert notes(a["state"]["outputs"][LIMITS.displays].text)[0].group(2) == "displays"
    tail = LIMITS.displays + 1 + LIMITS.tail_displays
    assert shown[LIMITS.displays + 1 : tail] == [str(i) for i in range(280, 300)]
    (stream_note,) = notes(a["state"]["outputs"][tail].text)
    assert stream_note.group(2) == "lines" and len(a["state"]["outputs"]) == tail + 1
    assert b["state"]["outputs"] == [new_output("stream", name="stdout", text="quiet\n")]

    # a progress line: each clear starts the widget's caps again, and only the last is sent
    for i in range(1000):
        _send(client, cell, "clear_output", wait=True)
        _send(client, cell, "stream", name="stdout", text=f"step {i}\n")
    client.send_widget_states()
    assert quiet.sent[-1]["state"]["outputs"] == [
        new_output("stream", name="stdout", text="step 999\n")
    ]
    assert len(quiet.sent) == 2 and len(flooded.sent) == 1


def test_output_still_coming_after_the_reply_is_all_kept(tmp_path, monkeypatch):
    """A grader that takes its time over each message (a busy machine) still keeps every output
    a cell sent before its reply, however long after the reply it gets to them: it waits for
    the kernel's word that the cell is done, not a fixed 4 s (nbclient's default)."""
    from grader.outputs import CappedClient

    real = CappedClient.process_message

    def slow(self, msg, cell, cell_index):
        if msg["msg_type"] == "stream":
            time.sleep(0.02)
        return real(self, msg, cell, cell_index)

    monkeypatch.setattr(CappedClient, "process_message", slow)
    sources = ["import sys\nfor i in range(300):\n    print(i)\n    sys.stdout.flush()", "2"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    log = runner.run(nb, tmp_path, runner.Limits(cell=30))
    assert printed(nb.cells[0].outputs).splitlines()[-1] == "299"
    assert nb.cells[1].outputs[0].data["text/plain"] == "2" and log.events == {}


def test_a_grader_far_behind_a_cells_output_loses_none_of_it(tmp_path, monkeypatch):
    """A cell that sends its outputs faster than a busy grader reads them (a progress line
    redrawn 2000 times) loses none of them, nor the kernel's word that it is done: with ZeroMQ's
    default of 1000 messages queued on each side, the rest was dropped, and the grader waited
    out the cell's time limit for a "done" that never came."""
    from grader.outputs import CappedClient

    real = CappedClient.process_message

    def slow(self, msg, cell, cell_index):
        time.sleep(0.003)
        return real(self, msg, cell, cell_index)

    monkeypatch.setattr(CappedClient, "process_message", slow)
    source = (
        "from IPython.display import clear_output\nfor i in range(2000):\n"
        "    clear_output(wait=True)\n    print('step', i)"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (source, "2")])
    start = time.monotonic()
    log = runner.run(nb, tmp_path, runner.Limits(cell=60))
    assert [o.get("text") for o in nb.cells[0].outputs] == ["step 1999\n"]
    assert nb.cells[1].outputs[0].data["text/plain"] == "2" and log.events == {}
    assert time.monotonic() - start < 55, "waited out the cell's time limit"

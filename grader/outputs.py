"""Keep what a graded cell shows within bounds as it arrives: its head, its tail, and a note.

A submission that prints in an endless loop sends output until its cell's time limit: kept whole,
it made a notebook of 100 MB, a grading worker of 600 MB and a feedback page of 90 MB. Here each
cell's outputs are capped while the kernel's messages come in (``CappedClient``, the
``NotebookClient`` the runner uses), by ``runner.OutputLimits``:

- stdout and stderr, each on its own: the head is kept as it comes; the rest of the stream goes
  to one output after it that holds only the last lines and, when something had to go, begins
  with a line that says how much (``... 298,512 lines (...) of output left out by the grader
  ...``).
- displays (``display()``, a cell's value, images, HTML): the first ones, then the last ones,
  after a note that says how many were left out. One display larger than a cap keeps only its
  text (cut like a stream), with a line naming the formats left out.
- errors (tracebacks) are always kept whole: a test's score depends on them.

A cut falls between lines where it can. Only a line longer than a limit is cut inside, and never
inside a hidden-test line it shows (``keep_whole``): feedback removes hidden-test lines from what a
submission printed (see ``scrub``), which it could not do with a part of one.

Output captured by an ipywidgets ``Output`` widget (``with out: print(...)``) is capped the same
way, each widget on its own (``CappedOutputWidget``, the client's stand-in for a front end's
widget), and its state goes back to the kernel once a cell's messages have been handled, not on
every output: nbclient's stand-in sent the widget's whole list of outputs after each one, and
a widget that printed in a loop cost the grader its cell's time limit in traffic.

The outputs are right at every moment, not only when the cell ends: memory stays bounded during
a flood, and output that still comes after a cell was stopped at its time limit is capped too.
A cut never changes a score: scores come from errors and the kernel's replies (see
``scoring``), and stdout and stderr each keep their head and tail, so a cell that wrote to stderr
still shows it.
"""

import collections
import contextlib
import json

from nbclient import NotebookClient
from nbclient.output_widget import OutputWidget
from nbformat.v4 import new_output, output_from_msg

NOTE = "... {} left out by the grader ..."


def _counted(n, word):
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def stream_note(lines, chars):
    """The line that stands for ``lines`` lines of ``chars`` characters left out."""
    what = _counted(chars, "character")
    if lines:
        what = f"{_counted(lines, 'line')} ({what})"
    return NOTE.format(f"{what} of output") + "\n"


def _size(value):
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sum(map(len, value))
    return len(json.dumps(value, default=str))


def data_size(data):
    """Characters of a display's data, all its formats together."""
    return sum(_size(v) for v in data.values()) if isinstance(data, dict) else 0


def shown_forms(lines):
    """The ways ``lines`` (hidden-test lines) show inside printed text, as ``scrub`` looks for
    them: as they are, in a Python string literal and in a JSON one."""
    forms = set()
    for line in lines:
        forms |= {line, line.replace("\\", "\\\\").replace("'", "\\'"), json.dumps(line)[1:-1]}
    return tuple(sorted(form for form in forms if len(form) > 1))


def _outside(text, pos, keep_whole, forward):
    """``pos``, a place to cut ``text``, moved out of any string of ``keep_whole`` that ``text``
    shows across it: to that string's end when ``forward``, else to its start."""
    moved = True
    while moved:
        moved = False
        for form in keep_whole:
            start = text.find(form, max(0, pos - len(form) + 1), pos + len(form) - 1)
            if 0 <= start < pos:
                pos = start + len(form) if forward else start
                moved = True
    return pos


class _Head:
    """What is left of a stream's head: ``lines`` lines, ``chars`` characters, in ``pieces``
    outputs."""

    def __init__(self, lines, chars, pieces, keep_whole=()):
        self.lines, self.chars, self.pieces = lines, chars, pieces
        self.keep_whole = keep_whole
        self.ends_a_line = True  # the text kept so far ends with a newline (or is empty)

    def take(self, text):
        """``(kept, rest)``: the part of ``text`` the head keeps, and the rest."""
        if self.pieces <= 0:
            return "", text
        cut = min(len(text), self.chars)
        if text.count("\n", 0, cut) >= self.lines:
            cut = -1
            for _ in range(self.lines):
                cut = text.find("\n", cut + 1)
            cut += 1
        elif cut < len(text):  # out of characters: cut after the last whole line, if any
            newline = text.rfind("\n", 0, cut)
            cut = newline + 1 if newline >= 0 else _outside(text, cut, self.keep_whole, False)
        kept = text[:cut]
        self.lines -= kept.count("\n")
        self.chars -= len(kept)
        self.pieces -= 1
        if kept:
            self.ends_a_line = kept.endswith("\n")
        return kept, text[cut:]


class _Tail:
    """The last ``lines`` lines (at most ``chars`` characters) of text that comes in pieces, and
    how much came before them (``dropped_lines``, ``dropped_chars``)."""

    def __init__(self, lines, chars, keep_whole=()):
        self.lines, self.chars = lines, chars
        self.keep_whole = keep_whole
        self.text = ""
        self.dropped_lines = self.dropped_chars = 0

    def _drop(self, text):
        self.dropped_lines += text.count("\n")
        self.dropped_chars += len(text)

    def add(self, piece):
        margin = 2 * self.chars  # the tail is in the end of this piece, with room around its cut
        if len(piece) >= margin:
            self._drop(self.text)
            self._drop(piece[:-margin])
            text = piece[-margin:]
        else:
            text = self.text + piece
        # Lines to drop from the front: all but the last `lines` (a last line may lack "\n").
        excess = text.count("\n") + (not text.endswith("\n")) - self.lines
        start = 0
        for _ in range(excess):
            start = text.find("\n", start) + 1
            if start == 0:
                start = len(text)
                break
        if len(text) - self.chars > start:  # out of characters: start at a whole line, if any
            start = len(text) - self.chars
            if text[start - 1] != "\n":
                newline = text.find("\n", start, len(text) - 1)
                if newline >= 0:
                    start = newline + 1
                else:
                    start = _outside(text, start, self.keep_whole, True)
        self._drop(text[:start])
        self.text = text[start:]


def cut_text(text, limits, keep_whole=()):
    """``text`` as a stream of output would show it under ``limits``: when too long, its head
    and tail with a note in between."""
    head = _Head(limits.head_lines, limits.head_chars, 1, keep_whole)
    kept, rest = head.take(text)
    tail = _Tail(limits.tail_lines, limits.tail_chars, keep_whole)
    tail.add(rest)
    if not tail.dropped_chars:
        return text
    gap = "" if head.ends_a_line else "\n"
    return kept + gap + stream_note(tail.dropped_lines, tail.dropped_chars) + tail.text


def shrink_display(content, limits, keep_whole=()):
    """Cap one display (``content`` of a display_data, execute_result or update_display_data
    message, changed in place): beyond ``limits.display_chars`` of data, only its text is kept
    (cut like a stream when long), with a line naming the formats left out."""
    data = content.get("data")
    size = data_size(data)
    if size <= limits.display_chars:
        return
    plain = data.get("text/plain")
    plain = "".join(plain) if isinstance(plain, list) else plain
    plain = cut_text(plain, limits, keep_whole) if isinstance(plain, str) else ""
    formats = ", ".join(sorted(k for k in data if k != "text/plain"))
    if formats:
        note = NOTE.format(f"a display of {size:,} characters ({formats})")
        plain = f"{plain}\n{note}" if plain else note
    content["data"] = {"text/plain": plain}
    content["metadata"] = {}


def _remove_last(outs, out):
    """Take ``out``, which was just appended, out of ``outs``."""
    if outs and outs[-1] is out:
        outs.pop()


class _Stream:
    """One stream (stdout or stderr) of a cell: its head stays in the outputs as it comes; the
    rest goes to one output after it, which shows the tail."""

    def __init__(self, name, limits, keep_whole):
        self.name = name
        self.head = _Head(limits.head_lines, limits.head_chars, limits.stream_outputs, keep_whole)
        self.tail = _Tail(limits.tail_lines, limits.tail_chars, keep_whole)
        self.shown = None  # the output that shows the tail, once there is one

    def add(self, outs, out):
        """``out``, a stream output just appended to ``outs``: keep it, trim it, or move its
        text to the tail."""
        if self.shown is None:
            kept, rest = self.head.take(out.text)
            if not rest:
                return
            self.shown = new_output("stream", name=self.name, text="")
            if kept:
                out.text = kept
            else:
                _remove_last(outs, out)
            outs.append(self.shown)
        else:
            rest = out.text
            _remove_last(outs, out)
        self.tail.add(rest)
        text = self.tail.text
        if self.tail.dropped_chars:
            gap = "" if self.head.ends_a_line else "\n"
            text = gap + stream_note(self.tail.dropped_lines, self.tail.dropped_chars) + text
        self.shown.text = text


class _Displays:
    """A cell's displays: the first ones stay as they come; after them, only the last ones
    stay, after a note that says how many were left out."""

    def __init__(self, limits):
        self.count, self.chars = limits.displays, limits.displays_chars
        self.tail_count, self.tail_chars = limits.tail_displays, limits.tail_displays_chars
        self.tail = collections.deque()  # (output, its size), oldest first
        self.size = self.dropped = self.dropped_chars = 0
        self.start = None  # index in the outputs where the tail begins (nothing before moves)
        self.note = None

    def add(self, outs, out):
        """``out``, a display just appended to ``outs``: keep it, or keep it for now in the
        tail. True when it is in the head (it may then be updated through its display id)."""
        size = data_size(out.get("data"))
        if self.start is None:
            if self.count > 0 and size <= self.chars:
                self.count -= 1
                self.chars -= size
                return True
            self.start = len(outs) - 1
        self.tail.append((out, size))
        self.size += size
        while self.tail and (len(self.tail) > self.tail_count or self.size > self.tail_chars):
            oldest, oldest_size = self.tail.popleft()
            index = next((i for i in range(self.start, len(outs)) if outs[i] is oldest), None)
            if index is None:
                pass  # no longer there (outputs cleared some other way): nothing to remove
            elif self.note is None:
                self.note = outs[index] = new_output("stream", name="stdout", text="")
            else:
                del outs[index]
            self.size -= oldest_size
            self.dropped += 1
            self.dropped_chars += oldest_size
        if self.note is not None:
            chars = _counted(self.dropped_chars, "character")
            self.note.text = NOTE.format(f"{_counted(self.dropped, 'display')} ({chars})") + "\n"
        return False


class CellOutputs:
    """The caps on one cell's outputs (``limits``: a ``runner.OutputLimits``; ``keep_whole``:
    strings a cut inside a line must not split)."""

    def __init__(self, limits, keep_whole=()):
        self.limits, self.keep_whole = limits, keep_whole
        self.reset()

    def reset(self):
        """The cell's outputs were cleared (``clear_output``): start again."""
        self.streams = {}
        self.displays = _Displays(self.limits)

    def add(self, outs, out):
        """``out`` was just appended to ``outs``: keep it, trim it, or move it to a tail. True
        when it stays in the head, at the index it was appended at."""
        if out.output_type == "error":
            return True
        if out.output_type == "stream":
            stream = self.streams.get(out.name)
            if stream is None:
                stream = self.streams[out.name] = _Stream(out.name, self.limits, self.keep_whole)
            stream.add(outs, out)
            return False
        return self.displays.add(outs, out)


def joined_streams(outs):
    """``outs`` with each run of stream outputs of one name joined in one output, as a front
    end's output area shows them (and as nbclient's Output widget keeps them)."""
    joined = []
    for out in outs:
        last = joined[-1] if joined else {}
        if out["output_type"] == last.get("output_type") == "stream" and (
            out["name"] == last["name"]
        ):
            joined[-1] = new_output("stream", name=out["name"], text=last["text"] + out["text"])
        else:
            joined.append(out)
    return joined


class CappedOutputWidget(OutputWidget):
    """nbclient's stand-in for a front end's ``Output`` widget, with what it captures capped as a
    cell's outputs are (its own ``CellOutputs``, started again when it is cleared), and its state
    sent back to the kernel only by ``send_state``.

    nbclient's widget sends its whole list of outputs to the kernel after every output: traffic
    that grows with the square of a flood's length, each message sent on the shell channel while
    the client waits there for the cell's reply (one of 280 kB was seen to hide that reply until
    the cell's time limit). A front end does not do that: its widget manager sends one update,
    then holds back the next ones, keeping only the latest state, until the kernel has handled
    it, which a kernel busy with a cell does only after the cell. So sending the state once the
    cell's messages have been handled leaves the kernel's widget with the same ``outputs`` as a
    front end would: what was captured, capped, with each run of one stream joined as a front end
    shows it (``joined_streams``).
    """

    def __init__(self, comm_id, state, kernel_client, executor):
        super().__init__(comm_id, state, kernel_client, executor)
        self.caps = CellOutputs(executor.output_limits, executor.keep_whole)
        self.changed = False  # True while the kernel has not been sent the outputs

    def output(self, outs, msg, display_id, cell_index):
        """Add the output of ``msg`` to the widget's outputs (not to ``outs``, the cell's),
        within its caps."""
        if self.clear_before_next_output:
            self.outputs = []
            self.caps.reset()
            self.clear_before_next_output = False
        self.parent_header = msg["parent_header"]
        out = output_from_msg(msg)
        self.outputs.append(out)
        self.caps.add(self.outputs, out)
        self.sync_state()

    def clear_output(self, outs, msg, cell_index):
        super().clear_output(outs, msg, cell_index)
        if not self.outputs:
            self.caps.reset()

    def sync_state(self):
        """Note that the state changed, for ``send_state`` (nbclient's widget sends it here, after
        every output)."""
        self.changed = True

    def send_state(self):
        """Send the widget's outputs to the kernel, if they changed since they were last sent."""
        if not self.changed:
            return
        self.changed = False
        outputs = joined_streams(self.outputs)
        self.send({"method": "update", "state": {"outputs": outputs}, "buffer_paths": []})
        if hasattr(self.executor, "widget_state"):  # as nbclient's widget keeps it
            self.executor.widget_state[self.comm_id]["outputs"] = outputs


class CappedClient(NotebookClient):
    """nbclient's ``NotebookClient`` with each cell's outputs capped by ``output_limits`` (a
    ``runner.OutputLimits``) as they arrive, never cutting inside a string of ``keep_whole``
    (see ``shown_forms``). A cell's caps hold until its last message (after a time limit, its
    output can go on coming while the next cell runs). The stand-in for an Output widget is a
    ``CappedOutputWidget``, whose state is sent back to the kernel after each cell."""

    def __init__(self, nb, output_limits, keep_whole=(), **kw):
        super().__init__(nb, **kw)
        self.output_limits, self.keep_whole = output_limits, tuple(keep_whole)
        self.cell_outputs = {}  # cell index: CellOutputs
        self.widget_registry["@jupyter-widgets/output"]["OutputModel"] = CappedOutputWidget

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        self.cell_outputs[cell_index] = CellOutputs(self.output_limits, self.keep_whole)
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            self.send_widget_states()

    def send_widget_states(self):
        """Send the kernel the state of each Output widget whose outputs changed (the cell's
        messages have been handled: nothing waits on the shell channel)."""
        for widget in self.comm_objects.values():
            if isinstance(widget, CappedOutputWidget):
                widget.send_state()

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] in ("display_data", "execute_result", "update_display_data"):
            shrink_display(msg["content"], self.output_limits, self.keep_whole)
        return super().process_message(msg, cell, cell_index)

    def _caps(self, cell_index):
        if cell_index not in self.cell_outputs:
            self.cell_outputs[cell_index] = CellOutputs(self.output_limits, self.keep_whole)
        return self.cell_outputs[cell_index]

    def output(self, outs, msg, display_id, cell_index):
        hooked = bool(self.output_hook_stack[msg["parent_header"].get("msg_id")])
        clears = self.clear_before_next_output and not hooked
        out = super().output(outs, msg, display_id, cell_index)
        if out is None or hooked:  # an Output widget's, not the cell's
            return out
        caps = self._caps(cell_index)
        if clears:
            caps.reset()
        index = len(outs) - 1
        if not caps.add(outs, out) and display_id:
            # only displays in the head can be updated: the others move or go
            with contextlib.suppress(KeyError, ValueError):
                self._display_id_map[display_id][cell_index].remove(index)
        return out

    def clear_output(self, outs, msg, cell_index):
        super().clear_output(outs, msg, cell_index)
        if not outs:
            self._caps(cell_index).reset()

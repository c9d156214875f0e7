"""One line instead of a traceback when a learner's code raises: in a demonstration cell
(``what_raised``), and in a test, where ``gradcheck.call_yours`` names the learner's line
(``where_in_yours``)."""

import itertools
import linecache
import os
import re
import sysconfig

# Code in these folders is not the learner's: the standard library, installed packages (numpy,
# IPython) and this library.
NOT_YOURS = tuple(
    os.path.join(os.path.realpath(folder), "")
    for folder in {
        *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
        os.path.dirname(__file__),
    }
)


def what_raised(exc, *yours):
    """A sentence naming which of ``yours`` (the learner's functions and classes) raised ``exc``.

    The innermost frame of the traceback that belongs to one of them (a function, or a method
    of a class) names the culprit. An error about a ``None`` is traced to the function of
    theirs that gave it (``none_from``): a right answer that used a ``None`` another one
    returned is not blamed. When none of theirs raised, the cell itself raised on something
    one of them returned: the sentence names them all (or the one, if only one is given). A
    ``NotImplementedError`` (the stub of an answer cell) is named as work still to do.
    """
    code_names = {}
    for obj in yours:
        parts = vars(obj).items() if isinstance(obj, type) else [(None, obj)]
        for method, fn in parts:
            if hasattr(fn, "__code__"):
                code_names[fn.__code__] = f"{obj.__name__}.{method}" if method else obj.__name__
    culprit = None
    tb = exc.__traceback__
    while tb is not None:
        culprit = code_names.get(tb.tb_frame.f_code, culprit)
        tb = tb.tb_next
    error = error_line(exc)
    source = none_from(exc, [obj.__name__ for obj in yours if not isinstance(obj, type)])
    if source is not None and source != culprit:
        user = f"your {culprit}" if culprit else "this cell"
        return (
            f"Your {source} returned None, which {user} used ({error}): fix {source} first "
            "(its test cell above says what is wrong), then run this cell again."
        )
    if culprit is None and len(yours) > 1:
        # None of theirs raised: the cell itself failed on what one of them returned (None, a
        # tuple of the wrong length, ...), and blaming the first would accuse a right answer.
        names = [obj.__name__ for obj in yours]
        either = ", ".join(names[:-1]) + " or " + names[-1]
        return (
            f"One of your {either} returned something this cell cannot use ({error}): run their "
            "test cells above, which say which one is wrong and why; fix it, then run this cell "
            "again."
        )
    if culprit is None:
        culprit = yours[0].__name__ if yours else "code"
    if isinstance(exc, NotImplementedError):  # an answer cell not filled in yet
        return f"Your {culprit} is not implemented yet: fill it in above, then run this cell again."
    return (
        f"Your {culprit} raised {error}; fix it with the test cell above, then run this cell again."
    )


def error_line(exc):
    """``exc`` as one line: ``ValueError: shapes (2,3) and (2,3) not aligned ...``."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def none_from(exc, names):
    """The one of ``names`` (functions) whose ``None`` result made ``exc`` happen, or None.

    The expression that raised, in the innermost frame, either calls one of ``names`` while
    ``exc`` is about a None (``(t - y) * sigmoid_prime(z)``: ``unsupported operand type(s) for
    *: 'float' and 'NoneType'``), or uses a variable holding None that an assignment above took
    from a call of one of them (``out = sigmoid(z)``, then ``out @ w``, which numpy refuses with
    a ValueError that does not say None).
    """
    if exc.__traceback__ is None or not names:
        return None
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    code, frame = tb.tb_frame.f_code, tb.tb_frame
    lines = linecache.getlines(code.co_filename, frame.f_globals)
    if not lines:
        return None
    called = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, names)) + r")\s*\(")
    segment = _failing_expression(tb, lines)
    if "NoneType" in str(exc) and (found := called.search(segment)):
        return found.group(1)
    for var in set(re.findall(r"(?<![\w.])[A-Za-z_]\w*", segment)):
        if var not in frame.f_locals or frame.f_locals[var] is not None:
            continue
        assigned = re.compile(rf"^\s*{re.escape(var)}\s*=(?!=)(.*)$")
        for line in reversed(lines[max(code.co_firstlineno - 1, 0) : tb.tb_lineno - 1]):
            if (match := assigned.match(line)) is not None:
                if found := called.search(match.group(1)):
                    return found.group(1)
                break
    return None


def _failing_expression(tb, lines):
    """The source of the expression ``tb`` (a traceback entry) stopped at: its exact columns
    where Python records them (3.11 and later), else its whole line."""
    line = lines[tb.tb_lineno - 1] if 0 < tb.tb_lineno <= len(lines) else ""
    positions = getattr(tb.tb_frame.f_code, "co_positions", None)
    if positions is None or tb.tb_lasti < 0:
        return line
    start, end, col, end_col = next(itertools.islice(positions(), tb.tb_lasti // 2, None))
    if start != tb.tb_lineno or end != start or col is None or end_col is None:
        return line
    return line.encode()[col:end_col].decode(errors="replace")


def where_in_yours(exc):
    """Where in the learner's code ``exc`` was raised, as a traceback names it: ``Cell In[12],
    line 6, in sigmoid_layer_grads: dW = x @ delta``, for the innermost frame outside
    ``NOT_YOURS`` (a numpy function that raised was called from that line); None when no frame
    is the learner's."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not os.path.realpath(filename).startswith(NOT_YOURS):
            found = tb
        tb = tb.tb_next
    if found is None:
        return None
    code = found.tb_frame.f_code
    line = linecache.getline(code.co_filename, found.tb_lineno, found.tb_frame.f_globals).strip()
    place = _cell_name(code.co_filename) or os.path.basename(code.co_filename)
    function = getattr(code, "co_qualname", code.co_name)
    inside = "" if function == "<module>" else f", in {function}"
    return f"{place}, line {found.tb_lineno}{inside}: {line}"


def _cell_name(filename):
    """``Cell In[12]`` for the file IPython compiled a cell into, else None."""
    try:
        from IPython import get_ipython

        label = get_ipython().compile.format_code_name(filename)
    except Exception:  # not in IPython, or an IPython without cell names
        return None
    return " ".join(label) if label else None

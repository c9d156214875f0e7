"""The grading environment: what a test cell's verdict relies on in the kernel, put back before
each graded test cell.

A learner's code runs in the same kernel before the tests, and one line of it used to be enough
for full marks with every answer wrong: rebinding the checker the tests call
(``check_gradient = lambda *a, **k: None``), patching the course library's code, hiding
exceptions (``set_custom_exc``, a silent ``showtraceback``) or emptying the test cells (an input
transformer, or a ``skip-execution`` tag). The grader answers with two rules:

- a test cell scores only when the kernel's reply to it says "ok" (``scoring.cell_score``);
  the runner adds an error output where a reply was an error that the output does not show,
  and to a test cell that got no reply;
- before each graded test cell the runner silently runs ``Reset.before_test``, which puts back
  what the kernel had when it started (noted by ``Reset.at_start``): IPython's custom exception
  handler, the shell's, kernel's and session's methods (in their classes, their code, and
  instance attributes that shadow them), the input and AST transformers; then it reloads the
  course library (``LIBRARY``; its source compiled once per kernel) and runs the master
  notebook's own import statements again, so the names the tests call are the library's own.
  Reloading makes new classes and functions; no test of the course compares with library
  objects by identity, and every solution and wrong-answer fixture is graded as before
  (tests/test_grader_e2e.py).

Both are sent as a user expression of an empty cell: IPython evaluates those without its input
or AST transformers. The expression evaluates to a token made for the run; a reset that does
not return it did not run, and the test cell is not run either.

This is not a sandbox: grading runs learners' code with the instructor's rights, and a
determined learner can still get around it (or do harm). It closes the easy ways.
"""

import ast
import functools
import inspect
import secrets
from dataclasses import dataclass

# The library whose modules are reloaded before each test, less the modules no test relies on:
# the widgets (interactive dashboards) take as long to reload as all the others together.
LIBRARY = "backprop"
NOT_RELOADED = ("backprop.widgets",)


# --- Run in the kernel (sent as source: they may use only the standard library and IPython) ---


def _objects(shell):
    """The objects that run a cell and report on it: the shell, its kernel and the session."""
    kernel = getattr(shell, "kernel", None)
    found = [shell, kernel, getattr(kernel, "session", None)]
    return [obj for obj in found if obj is not None]


def _own_methods(obj):
    """Instance attributes of ``obj`` that shadow a method of its class."""
    return {k: v for k, v in vars(obj).items() if callable(getattr(type(obj), k, None))}


def _class_methods(shell):
    """``[(class, {name: method})]`` of the classes of ``_objects(shell)`` (not ``object``)."""
    classes = {cls for obj in _objects(shell) for cls in type(obj).__mro__ if cls is not object}
    return [(cls, {k: v for k, v in vars(cls).items() if callable(v)}) for cls in classes]


def _transformer_lists(shell):
    """``(owner, attribute)`` of every list of transformers a cell's code goes through."""
    manager = shell.input_transformer_manager
    return [
        (shell, "input_transformers_post"),
        (shell, "ast_transformers"),
        (manager, "cleanup_transforms"),
        (manager, "line_transforms"),
        (manager, "token_transformers"),
    ]


def note_start(shell):
    """Note what ``restore_shell`` puts back, before the notebook's first cell."""
    shell._grading_start = {
        "custom_exceptions": shell.custom_exceptions,
        "manager": shell.input_transformer_manager,
        "lists": [(o, a, list(getattr(o, a))) for o, a in _transformer_lists(shell)],
        "methods": [(obj, _own_methods(obj)) for obj in _objects(shell)],
        "classes": _class_methods(shell),
    }
    shell._grading_start["code"] = {
        f: f.__code__
        for _, methods in shell._grading_start["classes"]
        for f in methods.values()
        if hasattr(f, "__code__")
    }


def restore_shell(shell):
    """Put back the shell's state noted by ``note_start``."""
    start = shell._grading_start
    shell.custom_exceptions = start["custom_exceptions"]
    for obj, methods in start["methods"]:
        for name in _own_methods(obj):
            if name not in methods:
                del vars(obj)[name]
        vars(obj).update(methods)
    for cls, methods in start["classes"]:
        for name, method in vars(cls).copy().items():
            if callable(method) and name not in methods:
                delattr(cls, name)
        for name, method in methods.items():
            if vars(cls).get(name) is not method:
                setattr(cls, name, method)
    for function, code in start["code"].items():
        if function.__code__ is not code:
            function.__code__ = code
    shell.input_transformer_manager = start["manager"]
    for owner, attribute, items in start["lists"]:
        setattr(owner, attribute, list(items))


def reload_library(package, skip, codes):
    """Reload the loaded modules of ``package`` (except ``skip``), each after the modules it
    takes names from, so that every module holds the fresh objects of the others.

    ``codes`` (kept by the caller from one reload to the next): each module's code, compiled at
    its first reload; later reloads only run it again, as ``importlib.reload`` does, without
    compiling the source each time (three quarters of a reload's time where no bytecode cache
    is written)."""
    import graphlib
    import importlib
    import inspect
    import sys

    names = {n for n in sys.modules if n == package or n.startswith(package + ".")} - set(skip)
    uses = {}
    for name in names:
        values = vars(sys.modules[name]).values()
        used = {
            v.__name__ if inspect.ismodule(v) else getattr(v, "__module__", None) for v in values
        }
        uses[name] = (used & names) - {name}
    for name in graphlib.TopologicalSorter(uses).static_order():
        module = sys.modules[name]
        if name not in codes:
            loader = getattr(module.__spec__, "loader", None)
            codes[name] = loader.get_code(name) if hasattr(loader, "get_code") else None
        if codes[name] is None:
            importlib.reload(module)
        else:
            exec(codes[name], vars(module))


# --- Run in the grader ---


def master_imports(master):
    """The top-level ``import`` and ``from ... import`` statements of the master notebook's code
    cells that are neither answers nor tests (its set-up cells), one per line."""
    from .master import nbgrader_meta

    lines = []
    for cell in master.graded["cells"]:
        meta = nbgrader_meta(cell)
        if cell["cell_type"] != "code" or meta.get("solution") or meta.get("grade"):
            continue
        source = "\n".join(
            line for line in cell["source"].splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        lines += [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(lines)


KERNEL_SIDE = (
    _objects,
    _own_methods,
    _class_methods,
    _transformer_lists,
    note_start,
    restore_shell,
    reload_library,
)


@functools.cache
def _kernel_side_source():
    """The source of the kernel-side functions (``KERNEL_SIDE``), read once per process."""
    return "from IPython import get_ipython\n\n" + "\n\n".join(
        inspect.getsource(f) for f in KERNEL_SIDE
    )


def _user_expression(call):
    """``(expression, token)``: an expression that defines the kernel-side functions in a
    namespace of their own, runs ``call`` there and evaluates to ``token``."""
    token = secrets.token_hex(8)
    program = f"{_kernel_side_source()}\n{call}\ndone = {token!r}\n"
    # a lambda's argument, not a name of the learner's namespace, holds them
    return f'(lambda scope: exec({program!r}, scope) or scope["done"])({{}})', token


@dataclass
class Reset:
    """What the runner sends to a kernel: ``at_start`` before the first cell, ``before_test``
    before each graded test cell; each is ``(user expression, token it evaluates to)``."""

    at_start: tuple
    before_test: tuple

    @classmethod
    def of(cls, master):
        imports = master_imports(master)
        return cls(
            at_start=_user_expression("note_start(get_ipython())"),
            before_test=_user_expression(
                "restore_shell(get_ipython())\n"
                f"reload_library({LIBRARY!r}, {NOT_RELOADED!r}, "
                "get_ipython()._grading_start.setdefault('library_code', {}))\n"
                f"exec({imports!r}, get_ipython().user_ns)"
            ),
        )

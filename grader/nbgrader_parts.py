"""nbgrader's modules without the start-up of its package.

Any ``import nbgrader.api`` first runs ``nbgrader/__init__.py``, which loads nbgrader's four
Jupyter server extensions (their handlers, the exchange and the command-line apps): 0.3-0.6 s of
CPU in every grader process that touches the gradebook, for code the grader never runs in its
own process. ``load()`` puts in the package's place a module of the same name and path that has
not run its ``__init__``: its submodules import as usual, and the first look-up of anything else
in the package itself (what a server extension does) runs the real ``__init__`` then.
"""

import importlib.util
import sys

NAME = "nbgrader"


def load():
    """Make ``import nbgrader.X`` skip nbgrader's package start-up (nothing happens when the
    package is imported already or cannot be found)."""
    if NAME in sys.modules:
        return
    spec = importlib.util.find_spec(NAME)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)

    def __getattr__(name):  # noqa: N807 (a module's own attribute hook)
        if importlib.util.find_spec(f"{NAME}.{name}") is not None:
            return importlib.import_module(f"{NAME}.{name}")  # `from . import utils`
        del package.__getattr__
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = __getattr__
    sys.modules[NAME] = package

"""nbgrader's modules without the start-up of its package, nor that of two packages it imports
for code the grader never runs.

Any ``import nbgrader.api`` first runs ``nbgrader/__init__.py``, which loads nbgrader's four
Jupyter server extensions (their handlers, the exchange and the command-line apps): 0.3-0.6 s of
CPU in every grader process that touches the gradebook, for code the grader never runs in its
own process. Two of nbgrader's own modules then import packages at the top for functions the
grader never calls: ``nbgrader.utils`` imports ``setuptools.archive_util`` (to unpack zip
files), whose package start-up imports ``pkg_resources``, which reads the metadata of every
installed distribution; ``nbgrader.auth`` imports ``requests`` (for JupyterHub). The two cost
another 0.3 s.

``load()`` puts in each package's place a module of the same name and path that has not run its
``__init__``: its submodules import as usual, and the first look-up of anything else in the
package itself runs the real ``__init__`` then (what a server extension does with nbgrader, or a
call that needs ``requests``).
"""

import importlib.util
import sys

NAME = "nbgrader"
# nbgrader, then the packages nbgrader imports for code the grader never runs (see above)
DEFERRED = (NAME, "setuptools", "requests")


def load():
    """Make ``import nbgrader.X`` skip the package start-ups of ``DEFERRED`` (nothing happens
    for a package that is imported already or cannot be found)."""
    for name in DEFERRED:
        _defer(name)


def _defer(name):
    """Put a module in package ``name``'s place that runs its ``__init__`` when first used."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)

    def __getattr__(attribute):  # noqa: N807 (a module's own attribute hook)
        if importlib.util.find_spec(f"{name}.{attribute}") is not None:
            return importlib.import_module(f"{name}.{attribute}")  # `from . import utils`
        del package.__getattr__
        spec.loader.exec_module(package)
        return getattr(package, attribute)

    package.__getattr__ = __getattr__
    sys.modules[name] = package

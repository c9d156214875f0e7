"""Backprop from scratch: the helper library the course notebooks import.

Modules, one idea each:

- ``functions``: sigmoid, relu, softmax and losses as plain numpy functions.
- ``layers``: computation-graph nodes with ``forward`` / ``backward``.
- ``net``: ``Sequential`` stacks of layers and the ``TwoLayerNet``.
- ``optim``: stochastic gradient descent, updating parameters in place.
- ``gradcheck``: numerical gradients and the diagnosis of common mistakes.
- ``data``: the data sets that ship with the package (never downloaded).
- ``plots``, ``graphs``, ``widgets``: pictures and interactive dashboards.
"""

__version__ = "0.1.0"

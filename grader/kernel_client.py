"""The grader's end of a kernel's channels: jupyter_client's client, with room to queue what a
cell sends while the grader is busy.

ZeroMQ queues at most 1000 messages at each end of the kernel's output channel by default, and
drops what comes after. A cell that redraws a progress line 2000 times sends 4000 messages in a
second or two; a grader that reads them more slowly (on a machine busy with other notebooks)
lost the rest of the cell's output, and the kernel's word that the cell was done, then waited
out the cell's time limit for it. ``QUEUE`` messages at the grader's end keep what such a cell
sends; memory stays bounded, as a message that takes long to make (a figure) is large and one
made in a moment (a line) is small.
"""

import zmq
from jupyter_client.asynchronous import AsyncKernelClient

QUEUE = 100_000  # messages queued at the grader's end of a kernel's channels, at most


class QueueingClient(AsyncKernelClient):
    """An ``AsyncKernelClient`` whose channels queue up to ``QUEUE`` incoming messages."""

    def _context_default(self):
        context = super()._context_default()
        context.setsockopt(zmq.RCVHWM, QUEUE)  # the default of each socket made from it
        return context

"""Run a notebook's code cells in a fresh kernel, within time limits, surviving crashes.

This is the only place where submitted code is executed; the interface is one function,
``run(nb, cwd, limits) -> RunLog``, which fills the cells' outputs in place. Scores are computed
elsewhere, from those outputs, outside the learner's process.

- Per-cell limit: a cell that runs too long is interrupted and gets a ``CellTimeoutError``
  output; the kernel goes on with the next cell.
- Whole-notebook limit: once it is used up, the remaining cells are not run and get a
  ``NotRun`` output.
- Dead kernel (``os._exit``, a segfault) or a kernel that ignores the interrupt: the notebook is
  run again in a new kernel, without the cells that killed it (they get a ``DeadKernelError``
  output), so the learner keeps the marks of everything else.
"""

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field

import nbformat

TIMEOUT, CRASHED, NOT_RUN = "timeout", "dead-kernel", "not-run"


@dataclass
class Limits:
    cell: float = 30.0  # seconds per cell
    notebook: float = 600.0  # seconds for the whole notebook, restarts included
    restarts: int = 3  # new kernels after a crash, at most
    probe: float = 5.0  # seconds an interrupted kernel has to answer again


@dataclass
class RunLog:
    """What happened, by cell index: ``{index: TIMEOUT | CRASHED | NOT_RUN}``."""

    events: dict = field(default_factory=dict)
    kernels: int = 0
    reached: int = -1  # index of the last cell run to completion
    seconds: float = 0.0


class _Restart(Exception):
    """The kernel is gone or stuck: start a new one and run the notebook again."""


def _error(ename, evalue):
    return nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


def _mark(cell, event, limits):
    text = {
        TIMEOUT: f"this cell ran longer than its time limit ({limits.cell:g} s) and was stopped",
        CRASHED: "the kernel died while running this cell (os._exit, a crash or a stuck "
        "kernel); the rest of the notebook was run again without it",
        NOT_RUN: f"not run: the notebook's time limit ({limits.notebook:g} s) was used up",
    }[event]
    name = {TIMEOUT: "CellTimeoutError", CRASHED: "DeadKernelError", NOT_RUN: "NotRun"}[event]
    cell.outputs.append(_error(name, text))


def _client(nb, cwd, limits, deadline):
    from nbclient import NotebookClient

    def timeout_for(cell):
        return max(0.1, min(limits.cell, deadline - time.monotonic()))

    return NotebookClient(
        nb,
        kernel_name="python3",
        timeout=limits.cell,
        timeout_func=timeout_for,
        interrupt_on_timeout=False,
        allow_errors=True,
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )


async def _attempt(nb, cwd, limits, deadline, log):
    """Run every code cell once in a new kernel; raises _Restart when the kernel is lost."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    client = _client(nb, cwd, limits, deadline)
    log.kernels += 1
    async with client.async_setup_kernel(stderr=subprocess.DEVNULL):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell.outputs, cell.execution_count = [], None
            if log.events.get(index) in (CRASHED, TIMEOUT):
                _mark(cell, log.events[index], limits)
                continue
            if time.monotonic() >= deadline:
                log.events[index] = NOT_RUN
                _mark(cell, NOT_RUN, limits)
                continue
            try:
                await client.async_execute_cell(cell, index)
            except CellTimeoutError:
                log.events[index] = TIMEOUT
                _mark(cell, TIMEOUT, limits)
                if not await _recovered(client, limits):
                    raise _Restart(index) from None
            except DeadKernelError:
                log.events[index] = CRASHED
                _mark(cell, CRASHED, limits)
                raise _Restart(index) from None
            log.reached = index


async def _recovered(client, limits):
    """Interrupt the kernel; True when it answers a trivial request again within ``probe`` s."""
    from queue import Empty

    from nbclient.util import ensure_async

    try:
        await ensure_async(client.km.interrupt_kernel())
        msg_id = client.kc.execute("pass", store_history=False)
        deadline = time.monotonic() + limits.probe
        while time.monotonic() < deadline:
            msg = await ensure_async(
                client.kc.shell_channel.get_msg(timeout=deadline - time.monotonic())
            )
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
    except (Empty, RuntimeError):
        pass
    return False


async def _run(nb, cwd, limits):
    log = RunLog()
    start = time.monotonic()
    deadline = start + limits.notebook
    while True:
        try:
            await _attempt(nb, cwd, limits, deadline, log)
            break
        except _Restart as lost:
            if log.kernels > limits.restarts:
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type == "code" and index > lost.args[0]:
                        log.events[index] = NOT_RUN
                        cell.outputs = []
                        _mark(cell, NOT_RUN, limits)
                break
    log.seconds = time.monotonic() - start
    return log


def run(nb, cwd, limits=None):
    """Execute ``nb`` (in place) with ``cwd`` as working directory; returns a ``RunLog``."""
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    return asyncio.run(_run(nb, cwd, limits or Limits()))

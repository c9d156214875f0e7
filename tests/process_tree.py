"""The processes a grader command leaves running: its workers, template and kernels."""

import psutil


def descendants(pid):
    """The processes descended from process ``pid`` (psutil's), running or not by now."""
    return psutil.Process(pid).children(recursive=True)


def running(processes):
    """Those of ``processes`` (psutil's) that still run (not gone, not zombies)."""
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def described(processes):
    """``[(pid, command)]`` of ``processes``, those that are gone marked so."""
    out = []
    for p in processes:
        try:
            out.append((p.pid, " ".join(p.cmdline()[:4])))
        except psutil.Error:
            out.append((p.pid, "gone"))
    return out

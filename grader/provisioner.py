"""jupyter_client's side of a kernel forked from a template (see ``forkserver``).

jupyter_client manages a forked kernel as any other: ``ForkedProvisioner`` replaces the
``Popen`` of its default provisioner with a request to the template and hands back a
``Popen``-like handle (``ForkedKernel``). Where the template cannot help (a kernel command that
is not this Python's ipykernel, a template that died), the kernel is launched the usual way.
"""

import asyncio
import os
import signal
import subprocess
import time

from jupyter_client.provisioning import LocalProvisioner

from .forkserver import kernel_args


class ForkedKernel:
    """The part of ``subprocess.Popen`` that jupyter_client uses, for a kernel that is not this
    process's child: the template reaps it, so it is alive while its pid exists."""

    stdin = stdout = stderr = None

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -signal.SIGKILL  # the true code went to the template
            except PermissionError:
                pass
        return self.returncode

    def wait(self, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum):
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


class ForkedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, with kernels forked from ``template`` when it can."""

    template = None  # set on the instance before the kernel starts

    async def launch_kernel(self, cmd, **kwargs):
        args = kernel_args(cmd)
        cwd = kwargs.get("cwd") or os.getcwd()
        pid = None
        if self.template is not None and args is not None:
            # In a thread: the template may be busy (importing, warming up) for a while, and the
            # caller's event loop has a notebook to run meanwhile.
            env = kwargs.get("env", os.environ)
            pid = await asyncio.to_thread(self.template.fork, args, cwd, env)
        if pid is None:
            return await super().launch_kernel(cmd, **kwargs)
        self.process = ForkedKernel(pid)
        self.pid = self.pgid = pid  # the kernel leads its own process group
        self.cwd = cwd
        return self.connection_info

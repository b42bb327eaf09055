"""The parent's side of one worker process: start it, read it, signal it, reap it.

A worker is ``python -m server serve`` again (``WorkerLaunch``), in a session
of its own (a Ctrl-C meant for the parent reaches only the parent, which
then signals each worker exactly once), with its end of a socket pair passed
by descriptor. ``WorkerProcess.spawn`` is synchronous on purpose: it must run
on the parent's main thread (never ``trio.to_thread``, which is what
``trio.lowlevel.open_process`` uses), because the kernel delivers the
worker's parent-death signal when the *thread* that forked it ends
(``server.workers.worker.die_with_parent``). Forking and at once executing a
new interpreter is safe while trio runs; only a fork that keeps running
Python would not be.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from server.logs import log_event
from server.workers.exceptions import LinkError
from server.workers.link import WORKER_ENV, LineBuffer, LinkMessage, WorkerIdentity, decode_message

log = logging.getLogger(__name__)

#: How often exit is polled where there is no pidfd (not Linux).
_POLL_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class WorkerLaunch:
    """How to start a worker: the command, and its whole environment."""

    command: Sequence[str]
    environment: Mapping[str, str]


def describe_status(status: int) -> str:
    """``exit status 1`` or ``signal SIGKILL`` (``Popen.returncode`` convention)."""
    if status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:
            return f"signal {-status}"
    return f"exit status {status}"


class WorkerProcess:
    """One running worker (``spawn`` it). ``aclose()`` kills it if it still
    runs and reaps it: no zombie, no orphan."""

    def __init__(self, index: int, popen: subprocess.Popen[bytes], link: socket.socket) -> None:
        self.index = index
        self._popen = popen
        self._link = trio.SocketStream(trio.socket.from_stdlib_socket(link))
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # no pidfd: poll instead
            self._pidfd = os.pidfd_open(popen.pid)

    @classmethod
    def spawn(cls, index: int, launch: WorkerLaunch, call_slots: Path | None) -> WorkerProcess:
        """Start worker ``index`` (blocking for the fork; main thread only, see
        the module docstring). Raises ``OSError`` when it cannot be started."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            identity = WorkerIdentity(index, os.getpid(), theirs.fileno(),
                                      str(call_slots) if call_slots else None)
            popen = subprocess.Popen(
                list(launch.command), env={**launch.environment, WORKER_ENV: identity.to_env()},
                stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker has its copy; ours would hide the parent's death
        return cls(index, popen, ours)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def send_signal(self, signum: int) -> None:
        """Signal the worker unless it has been reaped already."""
        if self._popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        """Wait for the worker to exit, reap it, return its ``returncode``."""
        if self._popen.returncode is None:
            if self._pidfd is not None:
                await trio.lowlevel.wait_readable(self._pidfd)
            else:
                while self._popen.poll() is None:  # noqa: ASYNC110 - nothing to wait on
                    await trio.sleep(_POLL_INTERVAL)
        return self._popen.wait()

    async def receive_messages(self, handle: Callable[[LinkMessage], None]) -> None:
        """Give ``handle`` each message the worker sends, until its end of the
        link closes. A message that cannot be read is logged and skipped."""
        lines = LineBuffer()
        while True:
            try:
                data = await self._link.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            for line in lines.feed(data):
                try:
                    if isinstance(line, LinkError):
                        raise line
                    message = decode_message(line)
                except LinkError as exc:
                    log_event(log, logging.ERROR, "worker message skipped", worker=self.index,
                              pid=self.pid, error=str(exc))
                    continue
                handle(message)

    async def send_lines(self, lines: trio.MemoryReceiveChannel[bytes]) -> None:
        """Write each line from ``lines`` to the worker, until the channel or
        the link closes."""
        async with lines:
            async for line in lines:
                try:
                    await self._link.send_all(line)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    async def aclose(self) -> None:
        """Kill the worker if it still runs, reap it, close our descriptors."""
        with trio.CancelScope(shield=True):
            if self._popen.returncode is None:
                self.kill()
                await self.wait()
            await self._link.aclose()
            if self._pidfd is not None:
                trio.lowlevel.notify_closing(self._pidfd)
                os.close(self._pidfd)
                self._pidfd = None

"""The worker's side: tie this process's life to its parent, and report to it.

A worker must not outlive its parent. Two guards, because either alone has a
gap: on Linux the kernel sends us SIGTERM when the parent dies
(``PR_SET_PDEATHSIG``, set by ``die_with_parent`` first thing, before the slow
start-up), which drains like any SIGTERM; everywhere, the end of file on the
link (``ParentLink.wait_parent_gone``) drains too, once trio runs. Either way
live calls get the grace period, then the worker exits. The same read hands
the calls the parent announces (``server.workers.link.Announce``) to the
pipeline's announce-time greeting.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Protocol

import trio
from prometheus_client.registry import Collector

from server.control.app import OnAnnounce
from server.logs import log_event
from server.store.embedded import PR_SET_PDEATHSIG
from server.workers.exceptions import LinkError
from server.workers.link import (
    REPORT_INTERVAL,
    LineBuffer,
    SpillNotice,
    StatusReport,
    WorkerIdentity,
    collect_families,
    decode_announce,
    encode_message,
)
from server.workers.slots import SharedCallSlots

log = logging.getLogger(__name__)

_LINK_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
#: The longest line the parent sends (an announce is well under 1 KiB).
MAX_PARENT_LINE_BYTES = 4096


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux; elsewhere only
    the link's end of file tells). Exits at once if it is already gone.

    The parent must have started us from a thread that lives as long as it
    (its main thread): the kernel ties the signal to that thread.
    """
    if sys.platform.startswith("linux"):
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit("voicebot serve worker: the parent process is gone")


class ReportedCalls(Protocol):
    """What a status report reads from the call server."""

    @property
    def ready(self) -> bool: ...

    @property
    def active_calls(self) -> int: ...


class ParentLink:
    """This worker's end of the link to its parent, and the call slots it
    shares with the other workers (``call_slots``: ``None`` without
    ``--max-calls``). Close it with ``close()``."""

    def __init__(self, identity: WorkerIdentity, max_calls: int) -> None:
        self.identity = identity
        sock = trio.socket.from_stdlib_socket(socket.socket(fileno=identity.link_fd))
        self._stream = trio.SocketStream(sock)
        self.call_slots = SharedCallSlots(Path(identity.call_slots), max_calls) \
            if identity.call_slots and max_calls else None
        self._spilled = False
        self._wake = trio.Event()

    def spilled_nowait(self) -> None:
        """Outcomes went to the spill file: the next report asks the parent to replay it."""
        self._spilled = True
        self._wake.set()

    async def serve_reports(self, calls: ReportedCalls, registry: Collector, *,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                            ) -> None:
        """Forever: a status report now and every ``REPORT_INTERVAL``, a spill
        notice as soon as there is one. Returns when the parent is gone."""
        task_status.started()
        while True:
            messages: list[StatusReport | SpillNotice] = []
            if self._spilled:
                self._spilled = False
                messages.append(SpillNotice())
            messages.append(StatusReport(calls.ready, calls.active_calls,
                                         collect_families(registry)))
            try:
                await self._stream.send_all(b"".join(encode_message(m) for m in messages))
            except _LINK_ERRORS:
                return  # wait_parent_gone says so, and drains
            with trio.move_on_after(REPORT_INTERVAL):
                await self._wake.wait()
            self._wake = trio.Event()

    async def wait_parent_gone(self, on_announce: OnAnnounce | None = None) -> None:
        """Return once the parent has exited (the link's end of file). Meanwhile
        each call the parent announces goes to ``on_announce`` (dropped without
        it); a line that cannot be read is logged and skipped."""
        lines = LineBuffer(MAX_PARENT_LINE_BYTES)
        try:
            while data := await self._stream.receive_some(65536):
                for line in lines.feed(data):
                    try:
                        if isinstance(line, LinkError):
                            raise line
                        announce = decode_announce(line)
                    except LinkError as exc:
                        log_event(log, logging.ERROR, "parent message skipped", error=str(exc))
                        continue
                    if on_announce is not None:
                        on_announce(announce.parameters, announce.sample_rate)
        except _LINK_ERRORS:
            pass
        log_event(log, logging.WARNING, "parent process gone, draining",
                  parent_pid=self.identity.parent_pid)

    def close(self) -> None:
        """Release the call slots and the link."""
        if self.call_slots is not None:
            self.call_slots.close()
        self._stream.socket.close()

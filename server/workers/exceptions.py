"""Errors of ``server.workers``: the parent of ``voicebot serve --workers N`` and
its link to each worker.

The tree::

    ServerError                (server.exceptions) root of the server package
    └── WorkerError            root of this subpackage; fields: worker (index, when known)
        ├── WorkerStartError   the workers could not be started at all: one exited or
        │                      missed its start deadline before ever being ready;
        │                      fields: worker, status (exit status, when it exited)
        └── LinkError          a worker sent its parent a message that cannot be read
                               (malformed, or a line over the size cap); the parent
                               logs it and skips the message

A worker that dies *after* start-up is no error: the parent logs it and
restarts it (``server.workers.pool``).
"""

from __future__ import annotations

from server.exceptions import ServerError


class WorkerError(ServerError):
    """Root of every error raised by ``server.workers``."""

    def __init__(self, message: str, *, worker: int | None = None) -> None:
        super().__init__(message)
        self.worker = worker


class WorkerStartError(WorkerError):
    """``voicebot serve --workers N`` could not start its workers (exit non-zero)."""

    def __init__(self, message: str, *, worker: int, status: int | None = None) -> None:
        super().__init__(message, worker=worker)
        self.status = status


class LinkError(WorkerError):
    """A message from a worker that cannot be read."""

"""Errors of ``server.store``: call state in Redis, the embedded server, the spill file.

The tree::

    ServerError                    (server.exceptions) root of the server package
    └── StoreError                 root of this subpackage; fields: call_id when known
        ├── StoreUnavailable       Redis unreachable, timed out or refused a command
        │                          (they broke it; retrying later may help);
        │                          fields: operation
        ├── RecordError            a stored record could not be read back
        │   ├── SchemaVersionError the record carries a schema version this code does
        │   │                      not know; fields: kind, version (never guessed)
        │   └── RecordFormatError  the record is malformed (bad JSON, missing or
        │                          wrongly typed field); fields: kind
        ├── EmbeddedRedisError     the embedded redis-server could not be started
        │                          or its data directory is in use; fields: detail
        └── SpillError             the local spill file could not be written;
                                   fields: path

Nothing here is raised into a live call: the recorder (``recorder.py``) catches
``StoreUnavailable`` at its boundary and buffers or retries instead.
"""

from __future__ import annotations

from server.exceptions import ServerError


class StoreError(ServerError):
    """Root of every error raised by ``server.store``."""


class StoreUnavailable(StoreError):
    """Redis did not answer (connection refused/reset, timeout, command error)."""

    def __init__(self, message: str, *, operation: str, call_id: str | None = None) -> None:
        super().__init__(message, call_id=call_id)
        self.operation = operation


class RecordError(StoreError):
    """A stored record could not be decoded."""

    def __init__(self, message: str, *, kind: str, call_id: str | None = None) -> None:
        super().__init__(message, call_id=call_id)
        self.kind = kind


class SchemaVersionError(RecordError):
    """The record's schema version is not one this code can read."""

    def __init__(self, *, kind: str, version: object, call_id: str | None = None) -> None:
        super().__init__(
            f"{kind} record has unknown schema version {version!r}", kind=kind, call_id=call_id
        )
        self.version = version


class RecordFormatError(RecordError):
    """The record is malformed: bad JSON, a missing field or a wrong type."""


class EmbeddedRedisError(StoreError):
    """The embedded redis-server could not be started or stopped cleanly."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class SpillError(StoreError):
    """The local JSON-lines spill file could not be written or read."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path

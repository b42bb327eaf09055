"""Errors of the server package (wire formats, call handling, control plane).

The tree (each module adds its leaves here, keeping the drawing current)::

    ServerError                   root; fields: call_id when known
    ├── ConfigError               bad ``voicebot serve`` option / environment value
    ├── FrameError                malformed inbound frame (event when known, reason)
    │   └── BadPayload            media payload is not valid base64 / not whole samples
    ├── ConnectionClosed          the call's WebSocket is closed (code, reason, by_us)
    ├── RequestError              an HTTP request we refuse on either port (status, reason)
    ├── CallLimitExceeded         a per-call cap was exceeded (queued outbound audio); limit
    ├── StoreError                call-state store (its own tree: server.store.exceptions)
    └── WorkerError               ``voicebot serve --workers N`` (its own tree:
                                  server.workers.exceptions)
"""

from __future__ import annotations


class ServerError(Exception):
    """Root of every error raised by ``server``."""

    def __init__(self, message: str, *, call_id: str | None = None) -> None:
        super().__init__(message)
        self.call_id = call_id


class ConfigError(ServerError):
    """An option or environment variable of ``voicebot serve`` is invalid."""


class ConnectionClosed(ServerError):
    """The call's WebSocket is closed (``server.ws.connection``).

    ``code`` is the close code (1006 when no close frame was exchanged: EOF,
    reset, a torn stream), ``reason`` the close reason, ``by_us`` whether this
    side closed it ("we closed it") or the peer/network did ("they broke it").
    """

    def __init__(self, code: int, reason: str = "", by_us: bool = False) -> None:
        who = "we" if by_us else "the peer"
        super().__init__(f"WebSocket closed by {who}: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason
        self.by_us = by_us


class RequestError(ServerError):
    """An HTTP request (an upgrade on the call port, or a control request) that
    we refuse; ``status`` is the HTTP answer (4xx: the client's fault). The
    message is log-safe and may be sent back: it never quotes the request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CallLimitExceeded(ServerError):
    """A per-call cap was exceeded (e.g. the outbound audio queue); the call ends
    with end reason ``limit`` and close code 1008. ``limit`` names the cap."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class FrameError(ServerError):
    """An inbound text frame we cannot read: not JSON, not an object, a required
    field missing or of the wrong type. The call skips the frame and counts it.

    ``event`` is the frame's event name when it could be read, else ``None``;
    ``reason`` is a short, log-safe description (never the frame itself).
    """

    def __init__(self, reason: str, *, event: str | None = None) -> None:
        super().__init__(f"bad {event or 'frame'}: {reason}")
        self.event = event
        self.reason = reason


class BadPayload(FrameError):
    """A ``media`` frame whose payload is not strict base64 or whose decoded
    bytes are not whole PCM16 samples (odd length)."""

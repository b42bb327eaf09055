"""Wire-format helpers shared by the vendor clients (sans-IO, no clock).

- :func:`json_object` parses one server message or body that must be a JSON
  object, raising :class:`~providers.exceptions.ProtocolError` otherwise.
- :func:`close_of` reads a WebSocket close (code, reason) from trio-websocket's
  ``ConnectionClosed``; a connection that dropped without a close frame has no
  reason and reads as 1006 (abnormal closure), as RFC 6455 says.
- :func:`retry_after` reads ``retry-after-ms`` / ``retry-after`` (seconds; an
  HTTP date counts as unknown).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from providers.exceptions import ProtocolError

if TYPE_CHECKING:
    from trio_websocket import ConnectionClosed

#: The close code RFC 6455 reserves for "the connection dropped without a close frame".
ABNORMAL_CLOSURE: Final = 1006


def json_object(text: str | bytes, *, vendor: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object; ProtocolError (with the start of the text)
    when it is not JSON or not an object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {_head(text)!r}", vendor=vendor) from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"not a JSON object: {_head(text)!r}", vendor=vendor)
    return value


def _head(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return text[:80]


def close_of(exc: ConnectionClosed) -> tuple[int, str | None]:
    """``(code, reason)`` of the close behind ``exc``; ``(1006, None)`` when the
    peer vanished without a close frame. An empty reason reads as None."""
    reason = exc.reason
    if reason is None:
        return ABNORMAL_CLOSURE, None
    return int(reason.code), (reason.reason or None)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (names in any
    case); None when absent, negative or an HTTP date."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None

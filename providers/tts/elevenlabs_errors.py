"""ElevenLabs errors (sans-IO): what a close, an in-band error frame or a refused
handshake/request means, as :mod:`providers.exceptions` types.

- :func:`stream_error`: a close we did not ask for (code 1006 when the socket
  just dropped), named by the error frame sent before it: ``invalid_api_key`` &c.
  → ``AuthError``, quota codes → ``QuotaExceeded``, anything else
  ``StreamClosed`` (status = close code, code = the vendor's error code).
- :func:`is_recoverable`: which closes are worth a new connection — network and
  server closes, the in-band ``internal_error`` (the vendor's transient failure:
  "…you were not charged…") and the idle close; not a refused key, an exhausted
  quota or a message the vendor rejected.
- :func:`http_error` / :func:`handshake_error`: an HTTP refusal (``{"detail":
  {"status", "message"}}``): 429 → ``RateLimited`` and 5xx →
  ``VendorUnavailable``, both with ``retry-after``; 401/403 → ``AuthError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

from providers.exceptions import (
    AuthError,
    HandshakeRejected,
    QuotaExceeded,
    RateLimited,
    StreamClosed,
    VendorError,
    VendorUnavailable,
)
from providers.tts.elevenlabs_wire import VENDOR, ErrorFrame
from providers.wire import retry_after

#: Vendor error codes meaning "the key is wrong" and "out of credit".
_AUTH_CODES: Final = frozenset({"invalid_api_key", "unauthorized", "missing_api_key",
                                "auth_error"})
_QUOTA_CODES: Final = frozenset({"quota_exceeded", "insufficient_credits",
                                 "payment_required"})
#: Close codes after which a fresh connection is worth trying.
_RECOVERABLE_CLOSES: Final = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
_IDLE_CODES: Final = frozenset({"input_timeout_exceeded", "inactivity_timeout"})
#: In-band errors (``{"error": …, "code": 1008}`` then close 1008) that are the
#: vendor's transient failure ("…you were not charged…"): retry on a new socket.
_TRANSIENT_CODES: Final = frozenset({"internal_error"})


def stream_error(code: int, reason: str | None, last_error: ErrorFrame | None) -> VendorError:
    """The exception for a close we did not ask for (``code`` 1006 when the socket
    just dropped). An error frame sent before the close names the cause."""
    detail = reason or (last_error.message if last_error else None)
    vendor_code = last_error.error if last_error else None
    text = f"elevenlabs closed the stream: {code} {vendor_code or ''} {detail or ''}"
    text = " ".join(text.split())
    if vendor_code in _AUTH_CODES:
        return AuthError(text, vendor=VENDOR, status=code, code=vendor_code, detail=detail)
    if vendor_code in _QUOTA_CODES:
        return QuotaExceeded(text, vendor=VENDOR, status=code, code=vendor_code, detail=detail)
    return StreamClosed(text, vendor=VENDOR, status=code, code=vendor_code, detail=detail)


def is_recoverable(error: VendorError) -> bool:
    """Worth a new connection: network/server closes, the in-band
    ``internal_error`` and our own idle timeout; not a refused key, exhausted
    quota or a message the vendor rejected (``invalid_message``, too many
    contexts)."""
    if not isinstance(error, StreamClosed):
        return False
    return (error.status in _RECOVERABLE_CLOSES or error.code in _IDLE_CODES
            or error.code in _TRANSIENT_CODES)


def _detail(body: bytes | None) -> tuple[str | None, str | None]:
    """``(status, message)`` from ``{"detail": {"status", "message"}}`` or
    ``{"detail": "text"}``."""
    if not body:
        return None, None
    try:
        data = json.loads(body)
    except ValueError:
        return None, body[:200].decode("utf-8", "replace")
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, Mapping):
        status = detail.get("status") or detail.get("code")
        message = detail.get("message")
        return (str(status) if status else None), (str(message) if message else None)
    if isinstance(detail, str):
        return None, detail
    return None, None


def http_error(status: int, headers: Mapping[str, str], body: bytes | None) -> VendorError:
    """Translate an HTTP error status (a refused upgrade or a failed ``/stream``)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    code, message = _detail(body)
    text = " ".join(f"elevenlabs refused the request: HTTP {status} {code or ''} "
                    f"{message or ''}".split())
    if code in _QUOTA_CODES:
        return QuotaExceeded(text, vendor=VENDOR, status=status, code=code, detail=message)
    if status == 429:
        return RateLimited(text, vendor=VENDOR, retry_after=retry_after(lowered),
                           status=status, code=code, detail=message)
    request_id = lowered.get("request-id") or lowered.get("x-request-id")
    if 500 <= status <= 599:
        return VendorUnavailable(text, vendor=VENDOR, status=status, code=code, detail=message,
                                 retry_after=retry_after(lowered), request_id=request_id)
    cls = AuthError if status in (401, 403) else HandshakeRejected
    return cls(text, vendor=VENDOR, status=status, code=code, detail=message,
               request_id=request_id)


def handshake_error(
    status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes | None
) -> VendorError:
    """A refused WebSocket upgrade (trio-websocket ``ConnectionRejected``)."""
    decoded = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
    return http_error(status, decoded, body)

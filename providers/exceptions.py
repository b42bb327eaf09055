"""Errors raised by vendor clients, simulators and local engines.

Foreign errors (wsproto/trio-websocket close codes, httpx errors, HTTP statuses,
vendor error frames) are translated once, at each client's boundary, into these.
``ProviderError`` is the root. The tree (each client adds its leaves here)::

    ProviderError                 any provider failure; fields: vendor
    ├── ProviderClosed            we closed it (aclose/cancel); not a vendor fault
    ├── DeadlineExceeded          a named deadline of ours passed; fields: deadline, seconds
    ├── LocalEngineError          an embedded engine (espeak-ng, pocketsphinx) failed
    └── VendorError               they broke it; fields: status, code, detail
        ├── ConnectError          vendor unreachable: DNS, refused, reset, TLS, WS handshake I/O
        ├── HandshakeRejected     upgrade/request refused (Deepgram ``dg-error``); request_id
        │   └── AuthError         key missing or refused (HTTP 401/403)
        ├── RateLimited           429 rate_limit_exceeded: retryable; retry_after (s) or None,
        │                         request_id
        ├── QuotaExceeded         429 insufficient_quota / billing: never retried
        ├── VendorUnavailable     HTTP 5xx on a handshake or request: retryable; retry_after,
        │                         request_id
        ├── StreamClosed          the vendor closed a live stream unexpectedly; close code, reason
        ├── ProtocolError         the vendor sent something we cannot parse
        └── EmptyReply            a TTS reply, or one flushed piece of it, ended (its
                                  isFinal) without any audio; piece, text

Which errors a client retries by itself: a reconnect after a session-level failure
retries ``ConnectError``, ``RateLimited``, ``VendorUnavailable``, a ``connect``
``DeadlineExceeded`` and the ``StreamClosed`` codes its vendor documents as
transient, until its reconnect deadline; when that passes it raises
``DeadlineExceeded(deadline="reconnect")`` chained (``from``) to the last error.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Root of every provider error. ``vendor`` names the service ("deepgram", ...)."""

    def __init__(self, message: str, *, vendor: str) -> None:
        super().__init__(message)
        self.vendor = vendor


class ProviderClosed(ProviderError):
    """The session was closed by us; using it afterwards is a programming error."""


class VendorError(ProviderError):
    """The vendor refused or failed. ``status`` is an HTTP status or WebSocket
    close code when there is one; ``code`` the vendor's own error code."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, vendor=vendor)
        self.status = status
        self.code = code
        self.detail = detail


class DeadlineExceeded(ProviderError):
    """One of our named deadlines (``connect``, ``first_token``, ``idle``, ``close``)
    passed. Raised instead of ``trio.TooSlowError`` so callers can tell which one."""

    def __init__(self, message: str, *, vendor: str, deadline: str, seconds: float) -> None:
        super().__init__(message, vendor=vendor)
        self.deadline = deadline
        self.seconds = seconds


class ConnectError(VendorError):
    """The vendor could not be reached (DNS, refused, reset, TLS, broken upgrade)."""


class HandshakeRejected(VendorError):
    """The WebSocket upgrade got an HTTP error. ``code``/``detail`` come from the
    vendor's error header or JSON body; ``request_id`` is what its support asks for."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, vendor=vendor, status=status, code=code, detail=detail)
        self.request_id = request_id


class AuthError(HandshakeRejected):
    """The API key is missing or refused (HTTP 401/403, on a handshake or a request)."""


class RateLimited(VendorError):
    """Too many requests right now; retrying after ``retry_after`` seconds (None when
    the vendor did not say) may succeed if the caller's deadline allows it."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        retry_after: float | None,
        status: int | None = 429,
        code: str | None = None,
        detail: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, vendor=vendor, status=status, code=code, detail=detail)
        self.retry_after = retry_after
        self.request_id = request_id


class VendorUnavailable(VendorError):
    """The vendor failed on its side (HTTP 5xx): transient, so a retry after
    ``retry_after`` seconds (None when the vendor did not say) may succeed if the
    caller's deadline allows it. ``request_id`` is what its support asks for."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, vendor=vendor, status=status, code=code, detail=detail)
        self.retry_after = retry_after
        self.request_id = request_id


class QuotaExceeded(VendorError):
    """The account is out of credit or over its quota. Retrying cannot help."""


class StreamClosed(VendorError):
    """The vendor closed a live stream we did not ask to close. ``status`` is the
    WebSocket close code, ``code`` the vendor's code found in the reason (``NET-0001``)
    and ``detail`` the reason text."""


class ProtocolError(VendorError):
    """The vendor sent a message we cannot parse (bad JSON, missing fields)."""


class LocalEngineError(ProviderError):
    """An embedded engine failed or was misused: library or data missing, unknown
    voice, bad parameter, synthesis error. ``vendor`` names the engine."""


class EmptyReply(VendorError):
    """A TTS reply ended (the vendor's ``isFinal``) without any audio for text that
    was sent: the vendor dropped it. Only that reply failed; the caller falls back
    (template audio, another engine) instead of playing silence. When only one
    piece of the reply was dropped, ``piece`` is its index among the reply's text
    pieces and ``text`` the piece (the pieces before it were delivered); both
    None when the whole reply had no audio."""

    def __init__(self, message: str, *, vendor: str, piece: int | None = None,
                 text: str | None = None) -> None:
        super().__init__(message, vendor=vendor)
        self.piece = piece
        self.text = text

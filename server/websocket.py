"""The call server's WebSocket: a thin trio shell around wsproto, one task per call.

Why not trio-websocket's server (our vendor clients do use trio-websocket):
its connection runs a reader task that passes every message to the receiving
task through a memory channel, and serializes sends through a lock. On this
server's hot path, ten inbound 100 ms messages per call-second and hundreds
of calls per core, those hand-offs were the largest single cost
(``bench/results/load.md`` has the before/after). Here the task that calls
``get_message`` reads the socket itself, feeds wsproto, answers pings and
closes inline and returns whole messages; sends from any task are serialized
by a flag, not a lock.

What it does (RFC 6455 through wsproto, server side only):

- the opening handshake within ``handshake_seconds``; ``serve_websocket``
  hands the handler a ``WebSocketRequest`` to ``accept()`` or ``reject()``.
  A request that is not a valid upgrade gets 400 (426 for a wrong
  ``Sec-WebSocket-Version``) without reaching the handler.
- text and binary messages, whole or fragmented, up to ``max_message_size``;
  a bigger one is refused with close code 1009.
- pings are answered with pongs; pongs are ignored.
- the closing handshake from either side: ``aclose(code)`` sends a close
  frame and waits for the peer's (the caller bounds the wait); a close frame
  from the peer is answered at once.
- a frame wsproto cannot parse closes with its code (1002, 1007...); EOF or a
  broken socket ends the connection with 1006.

Every way the connection ends surfaces as ``server.exceptions.ConnectionClosed``
(with the close code and whether we closed it). A send that trio cancels while
the frame may be half written marks the stream torn: nothing more is written
to it, ``aclose`` only closes the socket. Not offered: extensions
(permessage-deflate) and subprotocols; telephony streams use neither.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import cast

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from server.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

Headers = Sequence[tuple[bytes, bytes]]

_ABNORMAL = 1006  # no close frame: EOF, reset, torn stream
_TOO_BIG = 1009
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    """Sizes and deadlines of one server's connections."""

    max_message_size: int = 256 * 1024
    receive_buffer_size: int = 64 * 1024
    handshake_seconds: float = 10.0


class WebSocketRequest:
    """An upgrade request not answered yet: ``accept()`` it or ``reject()`` it.

    ``path`` is the request target (path and query); ``headers`` are the
    request's headers with lower-case names (Host and the Sec-WebSocket-*
    negotiation headers excluded).
    """

    def __init__(self, stream: trio.abc.Stream, conn: WSConnection, request: Request,
                 limits: WebSocketLimits) -> None:
        self.path: str = request.target
        self.headers: Headers = list(request.extra_headers)
        self._stream = stream
        self._conn = conn
        self._limits = limits
        self.answered = False

    async def accept(self) -> ServerWebSocket:
        """Complete the upgrade (101) and return the open connection."""
        self._answer()
        try:
            await self._stream.send_all(self._conn.send(AcceptConnection()))
        except _STREAM_ERRORS as exc:
            raise ConnectionClosed(_ABNORMAL, "peer left during the handshake") from exc
        return ServerWebSocket(self._stream, self._conn, self._limits)

    async def reject(self, status: int, *, extra_headers: Headers = (), body: bytes = b"") -> None:
        """Refuse the upgrade with an HTTP ``status`` and a short text ``body``."""
        self._answer()
        headers = [(b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                   *extra_headers]
        data = self._conn.send(RejectConnection(status_code=status, headers=headers,
                                                has_body=True))
        data += self._conn.send(RejectData(data=body, body_finished=True))
        with contextlib.suppress(*_STREAM_ERRORS):  # they left before hearing no
            await self._stream.send_all(data)

    def _answer(self) -> None:
        if self.answered:
            raise RuntimeError("this upgrade request was already answered")
        self.answered = True


class ServerWebSocket:
    """One accepted connection. ``get_message`` is for one task (the call's
    receive loop); ``send_message`` may be called from any task."""

    def __init__(self, stream: trio.abc.Stream, conn: WSConnection,
                 limits: WebSocketLimits) -> None:
        self._stream = stream
        self._conn = conn
        self._limits = limits
        self._messages: deque[str | bytes] = deque()
        self._parts: list[str | bytes] = []
        self._parts_size = 0
        self._closed: tuple[int, str, bool] | None = None  # code, reason, by us
        self._torn = False
        self._sending = False
        self._send_idle: trio.Event | None = None

    @property
    def closed(self) -> ConnectionClosed | None:
        """How the connection ended, or ``None`` while it is open."""
        return None if self._closed is None else ConnectionClosed(*self._closed)

    # -- receiving -----------------------------------------------------------

    async def get_message(self) -> str | bytes:
        """The next whole message (``str`` for text frames, ``bytes`` for binary).

        Raises ``ConnectionClosed`` once the connection is closed, by either side.
        """
        if self._messages:
            await trio.lowlevel.checkpoint()  # a burst must not starve other calls
            return self._messages.popleft()
        while self._closed is None:
            try:
                data = await self._stream.receive_some(self._limits.receive_buffer_size)
            except _STREAM_ERRORS:
                data = b""
            self._conn.receive_data(bytes(data) if data else None)  # None: EOF → 1006
            await self._handle_events()
            if self._messages:
                return self._messages.popleft()
        raise ConnectionClosed(*self._closed)

    async def _handle_events(self) -> None:
        for event in self._conn.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._parts.append(event.data if isinstance(event.data, str)
                                   else bytes(event.data))
                self._parts_size += len(event.data)
                if self._parts_size > self._limits.max_message_size:
                    await self._close_now(_TOO_BIG, "message too big")
                    return
                if event.message_finished:
                    parts, self._parts, self._parts_size = self._parts, [], 0
                    self._messages.append(_join(parts, text=isinstance(event, TextMessage)))
            elif isinstance(event, Ping):
                await self._send_quietly(event.response())
            elif isinstance(event, CloseConnection):
                await self._on_close_event(event)
                return

    async def _on_close_event(self, event: CloseConnection) -> None:
        state = self._conn.state
        if state is ConnectionState.REMOTE_CLOSING:
            # They close first: answer with their code, as RFC 6455 §5.5.1 asks.
            await self._send_quietly(event.response())
            by_us = False
        elif state is ConnectionState.CLOSED:
            by_us = False  # EOF or a reset: wsproto reports 1006
        else:
            # wsproto could not parse their frames: close with its verdict.
            await self._send_quietly(CloseConnection(event.code, event.reason))
            by_us = True
        self._mark_closed(event.code, event.reason or "", by_us=by_us)
        await self._stream.aclose()

    # -- sending -------------------------------------------------------------

    async def send_message(self, message: str | bytes) -> None:
        """Send one whole message; raises ``ConnectionClosed`` once closed."""
        await self._send(Message(data=message))

    async def _send(self, event: Message | Pong | CloseConnection) -> None:
        while self._sending:
            if self._send_idle is None:
                self._send_idle = trio.Event()
            await self._send_idle.wait()
        if self._closed is not None and not isinstance(event, CloseConnection):
            raise ConnectionClosed(*self._closed)
        if self._torn:
            raise ConnectionClosed(_ABNORMAL, "stream torn by a cancelled send", True)
        try:
            data = self._conn.send(event)
        except LocalProtocolError as exc:  # they started closing while we spoke
            raise ConnectionClosed(_ABNORMAL, "connection is closing", False) from exc
        # Cancellation before this point leaves the stream clean; after it,
        # trio may have written part of the frame, so the stream is torn.
        await trio.lowlevel.checkpoint_if_cancelled()
        self._sending = True
        try:
            await self._stream.send_all(data)
        except trio.Cancelled:
            self._torn = True
            raise
        except _STREAM_ERRORS as exc:
            self._mark_closed(_ABNORMAL, "connection lost", by_us=False)
            raise ConnectionClosed(*self._closed_or_lost()) from exc
        finally:
            self._sending = False
            if self._send_idle is not None:
                self._send_idle.set()
                self._send_idle = None

    async def _send_quietly(self, event: Pong | CloseConnection) -> None:
        """A control frame the protocol owes: if the socket is gone, so be it."""
        with contextlib.suppress(ConnectionClosed):
            await self._send(event)

    # -- closing -------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``: send a close frame, wait for theirs, close the socket.

        Bound the wait with a cancel scope (the server uses ``close_seconds``);
        the socket is closed however the wait ends. Idempotent.
        """
        if self._closed is not None:
            return
        try:
            if not self._torn and self._conn.state is ConnectionState.OPEN:
                await self._send_quietly(CloseConnection(code, reason or None))
                self._mark_closed(code, reason, by_us=True)
                await self._drain_until_closed()
        finally:
            self._mark_closed(code, reason, by_us=True)
            await self._stream.aclose()

    async def _drain_until_closed(self) -> None:
        while self._conn.state is not ConnectionState.CLOSED:
            try:
                data = await self._stream.receive_some(self._limits.receive_buffer_size)
            except _STREAM_ERRORS:
                return
            if not data:
                return
            self._conn.receive_data(bytes(data))
            for event in self._conn.events():
                if isinstance(event, CloseConnection):
                    return

    async def _close_now(self, code: int, reason: str) -> None:
        await self._send_quietly(CloseConnection(code, reason))
        self._mark_closed(code, reason, by_us=True)
        await self._stream.aclose()

    def _mark_closed(self, code: int, reason: str, *, by_us: bool) -> None:
        if self._closed is None:
            self._closed = (code, reason, by_us)

    def _closed_or_lost(self) -> tuple[int, str, bool]:
        return self._closed or (_ABNORMAL, "connection lost", False)


def _join(parts: list[str | bytes], *, text: bool) -> str | bytes:
    if len(parts) == 1:
        return parts[0]
    if text:
        return "".join(cast(list[str], parts))
    return b"".join(cast(list[bytes], parts))


# -- serving ------------------------------------------------------------------

Handler = Callable[[WebSocketRequest], Awaitable[None]]

_BAD_REQUEST_BODY = b"not a WebSocket upgrade request\n"


async def serve_websocket(
    handler: Handler, host: str | None, port: int, limits: WebSocketLimits, *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept WebSocket upgrades on ``host:port`` forever, each in its own task.

    ``handler`` gets every valid upgrade request and must answer it; the
    socket is closed when the handler returns (a request it left unanswered
    gets 500). Reports the bound port through ``task_status``.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, partial(serve_connection, handler, limits),
                            listeners)
        task_status.started(bound)


async def serve_connection(handler: Handler, limits: WebSocketLimits,
                           stream: trio.abc.Stream) -> None:
    """Serve one connection (any trio stream: tests use in-memory ones): read
    the upgrade request, give it to ``handler``, close the stream afterwards."""
    try:
        request = await read_request(stream, limits)
        if request is not None:
            try:
                await handler(request)
            finally:
                if not request.answered:
                    with trio.CancelScope(shield=True), trio.move_on_after(1):
                        await request.reject(500, body=b"internal error\n")
    finally:
        await stream.aclose()


async def read_request(stream: trio.abc.Stream,
                       limits: WebSocketLimits) -> WebSocketRequest | None:
    """Read the upgrade request; ``None`` if the peer left, stalled or sent garbage."""
    conn = WSConnection(ConnectionType.SERVER)
    with trio.move_on_after(limits.handshake_seconds):
        while True:
            try:
                data = await stream.receive_some(limits.receive_buffer_size)
            except _STREAM_ERRORS:
                return None
            if not data:
                return None
            try:
                conn.receive_data(bytes(data))
                for event in conn.events():
                    if isinstance(event, Request):
                        return WebSocketRequest(stream, conn, event, limits)
            except RemoteProtocolError as exc:
                hint = exc.event_hint
                status = hint.status_code if isinstance(hint, RejectConnection) else 400
                log.info("bad upgrade request refused: %s", exc)
                await _send_plain_response(stream, status, _BAD_REQUEST_BODY)
                return None
    log.info("upgrade request not received within %.1f s", limits.handshake_seconds)
    return None


async def _send_plain_response(stream: trio.abc.Stream, status: int, body: bytes) -> None:
    """A minimal HTTP/1.1 answer written by hand: h11 may refuse to answer a
    request it could not parse, but the client still deserves a status."""
    reasons = {400: b"Bad Request", 426: b"Upgrade Required"}
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n" % (
                status, reasons.get(status, b"Error"), len(body)))
    if status == 426:
        head += b"sec-websocket-version: 13\r\n"
    with contextlib.suppress(*_STREAM_ERRORS):
        await stream.send_all(head + b"\r\n" + body)

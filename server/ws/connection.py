"""The call server's WebSocket connection: one task reads, any task sends.

Why not trio-websocket's server (our vendor clients do use trio-websocket):
its connection runs a reader task that passes every message to the receiving
task through a memory channel, serializes sends through a lock, and parses
every frame with wsproto. Here the task that calls ``get_message`` reads the
socket itself and returns whole messages; sends are serialized by a flag.
Frames are delimited here (``server.ws.frames``): a whole, masked text/binary
frame (nearly all of a call's traffic) is unmasked and decoded here, and
every other frame (fragments, pings, closes, anything malformed) goes to
wsproto whole, so wsproto stays the judge of the protocol's corners.
``python -m bench ws`` measures the difference per message, side by side
(``bench/RESULTS.md``).

What a connection does (RFC 6455, server side):

- text and binary messages, whole or fragmented, up to ``max_message_size``;
  a bigger one is refused with close code 1009 as soon as its header says so;
- inbound budgets, token buckets refilled with the trio clock: fragments and
  control frames (each a wsproto parse, a ping also a pong) 64 at once and 32
  per second; whole messages 1,000 at once and 200 per second; bytes 1 MiB at
  once and 256 KiB per second. Exotel sends 10–50 whole messages and at most
  ~64 KB a second and never fragments, so only a misbehaving or hostile peer
  runs one dry; it is closed with 1008 (the call ends ``limit``, the address
  is penalized: ``server.ws.listen.HandshakeGate``). A whole 64 KiB read of
  tiny frames therefore costs at most the bucket, never a read's worth;
- while we close (``aclose`` waits for the peer's close frame) data frames are
  read and dropped, not kept;
- pings are answered with pongs; pongs are ignored;
- the closing handshake from either side: ``aclose(code)`` sends a close
  frame and reads until the peer's (the caller bounds the wait); a close frame
  from the peer is answered at once;
- a frame wsproto rejects closes with its code (1002, 1007 for bad UTF-8...);
  EOF or a broken socket ends the connection with 1006.

Every way the connection ends surfaces as ``server.exceptions.ConnectionClosed``
(close code, and whether we closed it). A send that trio cancels while the
frame may be half written marks the stream torn: nothing more is written to
it and ``aclose`` only closes the socket. The opening handshake and the
listener are ``server.ws.listen``.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from typing import cast

import trio
from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from server.exceptions import ConnectionClosed
from server.ws.frames import BINARY, TEXT, data_frame, decode_frame, read_head

ABNORMAL_CLOSURE = 1006  # no close frame: EOF, reset, torn stream
_TOO_BIG = 1009
_POLICY_VIOLATION = 1008
_CONTINUATION = 0x0
STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    """Sizes and deadlines of one server's connections (handshake included)."""

    max_message_size: int = 256 * 1024
    receive_buffer_size: int = 64 * 1024
    handshake_seconds: float = 10.0
    #: Inbound budgets (module docstring): burst and sustained rate per second.
    slow_frames_burst: int = 64
    slow_frames_per_s: float = 32.0
    messages_burst: int = 1000
    messages_per_s: float = 200.0
    bytes_burst: int = 1024 * 1024
    bytes_per_s: float = 256 * 1024


class Budget:
    """A token bucket: ``take(n, now)`` spends ``n`` tokens if there are enough,
    after refilling at ``rate`` per second up to ``burst`` since the last call."""

    __slots__ = ("_at", "_left", "burst", "rate")

    def __init__(self, burst: float, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self._left = float(burst)
        self._at: float | None = None

    def take(self, amount: float, now: float) -> bool:
        if self._at is not None:
            self._left = min(self.burst, self._left + (now - self._at) * self.rate)
        self._at = now
        if amount > self._left:
            return False
        self._left -= amount
        return True


class ServerWebSocket:
    """One accepted connection. ``get_message`` is for one task (the call's
    receive loop); ``send_message`` may be called from any task."""

    def __init__(self, stream: trio.abc.Stream, conn: WSConnection,
                 limits: WebSocketLimits) -> None:
        self._stream = stream
        self._conn = conn
        self._limits = limits
        self._buffer = bytearray()
        self._fragmented = False  # a fragmented message is being passed to wsproto
        self._slow_frames = Budget(limits.slow_frames_burst, limits.slow_frames_per_s)
        self._message_budget = Budget(limits.messages_burst, limits.messages_per_s)
        self._byte_budget = Budget(limits.bytes_burst, limits.bytes_per_s)
        self._now = 0.0  # trio time of the current read
        self._discard = False  # closing: data frames are read and dropped
        self._finished = False  # the stream is closed
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
            await self._receive_once()
            if self._messages:
                return self._messages.popleft()
        raise ConnectionClosed(*self._closed)

    async def _receive_once(self) -> None:
        """One read from the socket; act on every whole frame it completes."""
        try:
            data = await self._stream.receive_some(self._limits.receive_buffer_size)
        except STREAM_ERRORS:
            data = b""
        if not data:
            self._conn.receive_data(None)  # EOF: wsproto reports 1006
            await self._handle_events()
            return
        self._buffer += data
        self._now = trio.current_time()
        await self._take_frames()

    async def _take_frames(self) -> None:
        """Delimit the buffered frames: decode whole data frames here (the fast
        path, ``server.ws.frames``), hand every other frame to wsproto whole."""
        buf = self._buffer
        pos = 0
        try:
            while (head := read_head(buf, pos)) is not None:
                if head.payload_size > self._limits.max_message_size:
                    await self._close_now(_TOO_BIG, "message too big")
                    return
                end = pos + head.frame_size
                if end > len(buf):
                    return
                message = (decode_frame(buf, pos, head)
                           if head.is_whole_data_frame and not self._fragmented else None)
                if message is not None:
                    if not await self._deliver(message):
                        return
                else:
                    if not self._slow_frames.take(1, self._now):
                        await self._close_now(_POLICY_VIOLATION, "too many fragments")
                        return
                    if head.opcode in (TEXT, BINARY):
                        self._fragmented = not head.fin
                    elif head.opcode == _CONTINUATION and head.fin:
                        self._fragmented = False
                    self._conn.receive_data(bytes(buf[pos:end]))
                    await self._handle_events()
                    if self._finished:
                        return
                pos = end
        finally:
            del buf[:pos]

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
                    if not await self._deliver(_join(parts, text=isinstance(event, TextMessage))):
                        return
            elif isinstance(event, Ping):
                await self._send_quietly(event.response())
            elif isinstance(event, CloseConnection):
                await self._on_close_event(event)
                return

    async def _deliver(self, message: str | bytes) -> bool:
        """Queue a whole message within the budgets; ``False`` if we closed instead."""
        if self._discard:
            return True
        if not (self._message_budget.take(1, self._now)
                and self._byte_budget.take(len(message), self._now)):
            await self._close_now(_POLICY_VIOLATION, "inbound rate over budget")
            return False
        self._messages.append(message)
        return True

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
        await self._finish()

    # -- sending -------------------------------------------------------------

    async def send_message(self, message: str | bytes) -> None:
        """Send one whole message; raises ``ConnectionClosed`` once closed."""
        await self._send(message)

    async def _send(self, event: str | bytes | Pong | CloseConnection) -> None:
        """Send a message (framed here) or a control frame (framed by wsproto)."""
        while self._sending:
            if self._send_idle is None:
                self._send_idle = trio.Event()
            await self._send_idle.wait()
        if self._closed is not None and not isinstance(event, CloseConnection):
            raise ConnectionClosed(*self._closed)
        if self._torn:
            raise ConnectionClosed(ABNORMAL_CLOSURE, "stream torn by a cancelled send", True)
        if isinstance(event, (Pong, CloseConnection)):
            try:
                data = self._conn.send(event)
            except LocalProtocolError as exc:  # they started closing while we spoke
                raise ConnectionClosed(ABNORMAL_CLOSURE, "connection is closing") from exc
        elif self._conn.state is not ConnectionState.OPEN:
            raise ConnectionClosed(ABNORMAL_CLOSURE, "connection is closing")
        elif isinstance(event, str):
            data = data_frame(event.encode(), text=True)
        else:
            data = data_frame(bytes(event), text=False)
        # Cancellation before this point leaves the stream clean; after it,
        # trio may have written part of the frame, so the stream is torn.
        await trio.lowlevel.checkpoint_if_cancelled()
        self._sending = True
        try:
            await self._stream.send_all(data)
        except trio.Cancelled:
            self._torn = True
            raise
        except STREAM_ERRORS as exc:
            self._mark_closed(ABNORMAL_CLOSURE, "connection lost", by_us=False)
            raise ConnectionClosed(ABNORMAL_CLOSURE, "connection lost") from exc
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
        self._discard = True
        self._messages.clear()
        try:
            if not self._torn and self._conn.state is ConnectionState.OPEN:
                await self._send_quietly(CloseConnection(code, reason or None))
                self._mark_closed(code, reason, by_us=True)
                while not self._finished:  # until their close frame, EOF or our deadline
                    await self._receive_once()
        finally:
            self._mark_closed(code, reason, by_us=True)
            self._messages.clear()  # nothing is delivered after we closed
            await self._finish()

    async def _close_now(self, code: int, reason: str) -> None:
        await self._send_quietly(CloseConnection(code, reason))
        self._mark_closed(code, reason, by_us=True)
        await self._finish()

    async def _finish(self) -> None:
        self._finished = True
        await self._stream.aclose()

    def _mark_closed(self, code: int, reason: str, *, by_us: bool) -> None:
        if self._closed is None:
            self._closed = (code, reason, by_us)


def _join(parts: list[str | bytes], *, text: bool) -> str | bytes:
    if len(parts) == 1:
        return parts[0]
    if text:
        return "".join(cast(list[str], parts))
    return b"".join(cast(list[bytes], parts))

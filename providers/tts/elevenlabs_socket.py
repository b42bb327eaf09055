"""The WebSocket side of an ElevenLabs TTS session: connecting, sending, reading.

:class:`SessionSocket` is held by :class:`~providers.tts.elevenlabs.ElevenLabsSession`
and owns what concerns the connection(s) rather than the replies:

- opening a connection (:meth:`~SessionSocket.connect`): the ``xi-api-key``
  handshake, with refusals, timeouts and transport failures translated once into
  :mod:`providers.exceptions` (and the TCP socket closed, which trio-websocket
  0.12 leaks after a server-initiated close);
- sending (:meth:`~SessionSocket.send`), on a given socket or on the session's
  multi-context socket once it is up; a closed socket raises :class:`SocketLost`
  and the reader reports why;
- reading (:meth:`~SessionSocket.read`): frames routed to replies by context
  (:attr:`~SessionSocket.routes`, multi mode) or all to the one reply (single
  mode); an unexpected close becomes the vendor error its close code and last
  error frame mean;
- multi mode's session socket (:meth:`~SessionSocket.supervise`): held for the
  whole call, reconnected after recoverable drops (``max_reconnects`` in a row),
  kept alive (:meth:`~SessionSocket.keepalive`), contexts closed on barge-in
  (:meth:`~SessionSocket.close_context`) and the socket at the end
  (:meth:`~SessionSocket.close`).

Replies talk to it through a memory channel of :data:`ReplyItem`: the vendor's
audio and final frames, plus :class:`TextSent`, :class:`TextDone` and
:class:`Failed` from the reply's own text feeder or from the socket.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Final

import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection

from providers.config import ElevenLabsConfig
from providers.exceptions import ConnectError, DeadlineExceeded, ProviderError, VendorError
from providers.tts import elevenlabs_wire as wire
from providers.wire import close_of

VENDOR: Final = wire.VENDOR


@dataclass(frozen=True)
class TextSent:
    """The reply's first text went out at ``at`` (starts the first-byte deadline)."""

    at: float


class TextDone:
    """All of the reply's text (and the flush) went out."""


class SocketLost(Exception):
    """A send found the session socket closed; the reader reports why."""


@dataclass(frozen=True)
class Failed:
    """The reply cannot go on; ``error`` says why (from its text feeder, or the
    socket's translated close for every reply in flight)."""

    error: ProviderError


#: What a reply's channel carries, in arrival order.
ReplyItem = wire.AudioFrame | wire.FinalFrame | TextSent | TextDone | Failed


class SessionSocket:
    """Connection state and I/O of one session; see the module docstring."""

    def __init__(self, config: ElevenLabsConfig, options: wire.StreamOptions) -> None:
        self.config = config
        self.options = options
        self.id = uuid.uuid4().hex[:8]  # prefix of this session's context ids
        #: Where frames of each context go (multi mode); a reply adds and removes its own.
        self.routes: dict[str | None, trio.MemorySendChannel[ReplyItem]] = {}
        self._url = wire.stream_url(config, options)
        self._idle_context = f"{self.id}-idle"
        self._ws: WebSocketConnection | None = None
        self._connected = trio.Event()
        self._last_send = 0.0
        self._closing = False
        self._closed = trio.Event()
        self._dropped = 0
        self._reconnects = 0
        self._failures = 0  # reconnects since a reply last completed

    @property
    def dropped(self) -> int:
        """Audio frames that arrived for no reply (a cancelled one) and were dropped."""
        return self._dropped

    @property
    def reconnects(self) -> int:
        return self._reconnects

    # -- the connection -------------------------------------------------------------

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[WebSocketConnection]:
        headers = [(b"xi-api-key", self.config.api_key.reveal().encode())]
        opened: WebSocketConnection | None = None
        try:
            async with trio_websocket.open_websocket_url(
                self._url, extra_headers=headers,
                connect_timeout=self.config.connect_deadline,
                disconnect_timeout=self.config.close_deadline,
            ) as ws:
                opened = ws
                self._last_send = trio.current_time()
                yield ws
        except trio_websocket.ConnectionRejected as exc:
            raise wire.handshake_error(exc.status_code, exc.headers, exc.body) from exc
        except trio_websocket.ConnectionTimeout as exc:
            raise DeadlineExceeded(
                f"no elevenlabs handshake within {self.config.connect_deadline:g} s",
                vendor=VENDOR, deadline="connect", seconds=self.config.connect_deadline,
            ) from exc
        except (trio_websocket.HandshakeError, OSError) as exc:
            raise ConnectError(f"cannot reach elevenlabs: {exc!r}", vendor=VENDOR) from exc
        finally:
            if opened is not None:
                # trio-websocket 0.12 never closes a client's TCP socket after a close
                # the server started (it waits for the server's FIN, then just stops
                # reading): one leaked socket per connection unless we close it.
                await opened._stream.aclose()

    async def send(self, message: str, ws: WebSocketConnection | None = None) -> None:
        """Send on ``ws``, or on the session socket once it is connected."""
        if ws is None:
            await self._connected.wait()
            ws = self._ws
        if ws is None:
            raise SocketLost
        try:
            await ws.send_message(message)
        except ConnectionClosed as exc:
            raise SocketLost from exc
        self._last_send = trio.current_time()

    async def supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Multi mode: hold the session socket, reconnecting after recoverable drops."""
        started = False
        try:
            while True:
                try:
                    async with self.connect() as ws:
                        await ws.send_message(wire.init_message(self.options,
                                                                self._idle_context))
                        self._ws = ws
                        self._connected.set()
                        if not started:
                            started = True
                            task_status.started()
                        try:
                            await self.read(ws)
                            return
                        finally:
                            self._ws = None
                            self._connected = trio.Event()
                except (VendorError, DeadlineExceeded) as exc:
                    self._fail_replies(exc)
                    retry = isinstance(exc, ConnectError | DeadlineExceeded) or (
                        isinstance(exc, VendorError) and wire.is_recoverable(exc))
                    if not started or self._closing or not retry or self._failures >= \
                            self.options.max_reconnects:
                        raise
                    self._failures += 1
                    self._reconnects += 1
        finally:
            self._closed.set()

    async def read(self, ws: WebSocketConnection,
                    only: trio.MemorySendChannel[ReplyItem] | None = None) -> None:
        """Route frames to replies by context until the socket closes (multi mode),
        or hand every frame to ``only`` until its ``isFinal`` (single mode).
        Returns normally when we closed the socket or the single reply ended;
        an unexpected close raises the translated error."""
        last_error: wire.ErrorFrame | None = None
        while True:
            try:
                message = await ws.get_message()
            except ConnectionClosed as exc:
                if self._closing:
                    return
                raise wire.stream_error(*close_of(exc), last_error) from None
            if isinstance(message, bytes):
                continue
            frame = wire.parse_frame(message)
            if isinstance(frame, wire.ErrorFrame):
                last_error = frame
            elif isinstance(frame, wire.AudioFrame | wire.FinalFrame):
                route = only if only is not None else self.routes.get(frame.context_id)
                if route is None:
                    self._dropped += isinstance(frame, wire.AudioFrame)
                    continue
                route.send_nowait(frame)
                if isinstance(frame, wire.FinalFrame):
                    self._failures = 0  # a reply completed: the connection works
                    if only is not None:
                        return

    def _fail_replies(self, error: ProviderError) -> None:
        for route in self.routes.values():
            route.send_nowait(Failed(error))

    async def keepalive(self, ws: WebSocketConnection | None = None) -> None:
        """Send a keep-alive whenever nothing went out for ``keepalive_interval``."""
        interval = self.options.keepalive_interval
        while True:
            await trio.sleep_until(self._last_send + interval)
            target = ws if ws is not None else self._ws
            if trio.current_time() - self._last_send < interval or target is None:
                continue
            message = wire.keepalive_message(None if ws is not None else self._idle_context)
            with suppress(ConnectionClosed):
                await target.send_message(message)
            self._last_send = trio.current_time()

    async def close_context(self, context: str) -> None:
        """Barge-in: tell the vendor to stop this context (shielded, short)."""
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.close_deadline):
            ws = self._ws
            if ws is not None:
                with suppress(ConnectionClosed):
                    await ws.send_message(wire.close_context_message(context))
                    self._last_send = trio.current_time()

    async def close(self) -> None:
        """End the session socket: ``close_socket`` (flushed replies finish), then
        wait up to ``close_deadline`` for the server's close. Idempotent."""
        if self._closing:
            return
        self._closing = True
        with trio.move_on_after(self.config.close_deadline):
            ws = self._ws
            if ws is not None and self.options.multi_context:
                with suppress(ConnectionClosed):
                    await ws.send_message(wire.close_socket_message())
                await self._closed.wait()
        self._closed.set()

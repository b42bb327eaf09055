"""The WebSocket side of an ElevenLabs TTS session: connecting, sending, reading,
reconnecting.

:class:`SessionSocket` is held by :class:`~providers.tts.elevenlabs.ElevenLabsSession`
and owns what concerns the connection(s) rather than the replies:

- opening a connection (:meth:`~SessionSocket.connect`): the ``xi-api-key``
  handshake over :mod:`providers.websocket_client`, with refusals, timeouts and
  transport failures translated once into :mod:`providers.exceptions`;
- sending (:meth:`~SessionSocket.send`) on the session's multi-context socket,
  waiting while it reconnects; each connection is an *epoch*, and a send for an
  older epoch raises :class:`SocketLost` (its reply hears why as :class:`Lost`);
- reading (:meth:`~SessionSocket.read`): frames routed to replies by context
  (:attr:`~SessionSocket.routes`, multi mode) or all to the one reply (single
  mode); an unexpected close becomes the vendor error its close code and last
  error frame mean;
- multi mode's session socket (:meth:`~SessionSocket.supervise`): held for the
  whole call. A transient loss (network closes, 1006 drops, the in-band
  ``internal_error``, the idle close) tells every reply in flight
  (:class:`Lost`) and reconnects with the shared policy of
  :mod:`providers.reconnect` (at once, then backoff with jitter, never sooner
  than ``retry-after``) until ``reconnect_deadline``; at most
  ``max_reconnects`` drops in a row without a completed reply. When it gives up
  (deadline, refused key, quota, a non-transient close) the session *fails*:
  :attr:`~SessionSocket.failure` is set, replies in flight get :class:`Failed`,
  later sends raise it — the error is never raised into the caller's nursery;
- single mode's per-reply connection (:meth:`~SessionSocket.reply_connection`);
- keep-alive (:meth:`~SessionSocket.keepalive`), closing one context
  (:meth:`~SessionSocket.close_context`) and the socket (:meth:`~SessionSocket.close`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Final

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from providers.config import ElevenLabsConfig
from providers.exceptions import (
    DeadlineExceeded,
    ProviderClosed,
    ProviderError,
    StreamClosed,
    VendorError,
)
from providers.groups import unwrap_sole_error
from providers.reconnect import Backoff, is_transient, reconnect_deadline_error, retry_after_of
from providers.tts import elevenlabs_errors as errors
from providers.tts import elevenlabs_wire as wire
from providers.tts.elevenlabs_reply import Failed, Lost, ReplyItem
from providers.websocket_client import map_websocket_errors, open_websocket_client
from providers.wire import close_of

VENDOR: Final = wire.VENDOR


class SocketLost(Exception):
    """A send found its socket closed or replaced; the reader reports why."""


def recoverable(error: ProviderError) -> bool:
    """Worth another connection: a transient close (see the wire module) or a
    failure to reach or be admitted by the vendor (refusals with retry-after, 5xx)."""
    if isinstance(error, StreamClosed):
        return errors.is_recoverable(error)
    return is_transient(error)


class SessionSocket:
    """Connection state and I/O of one session; see the module docstring."""

    def __init__(self, config: ElevenLabsConfig, options: wire.StreamOptions) -> None:
        self.config = config
        self.options = options
        self.id = uuid.uuid4().hex[:8]  # prefix of this session's context ids
        #: Where frames of each context go (multi mode); a reply adds and removes its own.
        self.routes: dict[str | None, trio.MemorySendChannel[ReplyItem]] = {}
        #: Why the session cannot go on, once it cannot; sends raise it.
        self.failure: ProviderError | None = None
        #: Per reconnect: seconds from the loss to a live socket again.
        self.reconnect_seconds: list[float] = []
        self._url = wire.stream_url(config, options)
        self._idle_context = f"{self.id}-idle"
        self._ws: WebSocketConnection | None = None
        self._epoch = 0  # connections made so far; the live one's number
        self._changed = trio.Event()  # set (and replaced) when connected or failed
        self._last_send = 0.0
        self._closing = False
        self._closed = trio.Event()
        self._dropped = 0
        self._reconnects = 0
        self._failures = 0  # drops since a reply last completed

    @property
    def dropped(self) -> int:
        """Audio frames that arrived for no reply (a cancelled one) and were dropped."""
        return self._dropped

    @property
    def reconnects(self) -> int:
        return self._reconnects

    @property
    def epoch(self) -> int | None:
        """The live connection's number, None while (re)connecting."""
        return self._epoch if self._ws is not None else None

    # -- the connection -------------------------------------------------------------

    @asynccontextmanager
    async def connect(self, within: float | None = None) -> AsyncIterator[WebSocketConnection]:
        """Open one connection, the handshake done ``within`` seconds
        (``connect_deadline`` by default); foreign errors are translated here
        (:func:`~providers.websocket_client.map_websocket_errors`)."""
        seconds = max(0.0, self.config.connect_deadline if within is None else within)
        headers = [(b"xi-api-key", self.config.api_key.reveal().encode())]
        with map_websocket_errors(VENDOR, connect_seconds=round(seconds, 3),
                                  refused=errors.handshake_error):
            async with open_websocket_client(
                self._url, headers, connect_by=trio.current_time() + seconds,
                close_within=self.config.close_deadline,
            ) as ws:
                self._last_send = trio.current_time()
                yield ws

    async def wait_connected(self) -> tuple[WebSocketConnection, int]:
        """The live session socket and its epoch, waiting while it reconnects;
        raises the session's failure once it has one."""
        while True:
            if self.failure is not None:
                raise self.failure
            if self._ws is not None:
                return self._ws, self._epoch
            if self._closing:
                raise ProviderClosed("elevenlabs session closed", vendor=VENDOR)
            await self._changed.wait()

    async def send(self, message: str, epoch: int | None = None) -> int:
        """Send on the session socket (waiting while it reconnects) and return its
        epoch. With ``epoch``, only on that connection: SocketLost otherwise."""
        ws, current = await self.wait_connected()
        if epoch is not None and epoch != current:
            raise SocketLost
        await self.send_on(ws, message)
        return current

    async def send_on(self, ws: WebSocketConnection, message: str) -> None:
        try:
            await ws.send_message(message)
        except ConnectionClosed as exc:
            raise SocketLost from exc
        self._last_send = trio.current_time()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _fail(self, error: ProviderError) -> None:
        self.failure = error
        for route in self.routes.values():
            route.send_nowait(Failed(error))
        self._notify()

    async def supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Multi mode: hold the session socket (see the module docstring). Only a
        failure of the very first connection is raised (to ``open_elevenlabs``)."""
        outage: Backoff | None = None
        started = False
        try:
            while True:
                epoch = self._epoch
                within = None if outage is None else min(
                    self.config.connect_deadline, outage.deadline - trio.current_time())
                try:
                    async with self.connect(within) as ws:
                        await ws.send_message(wire.init_message(self.options,
                                                                self._idle_context))
                        self._epoch += 1
                        self._ws = ws
                        if outage is not None:
                            self._reconnects += 1
                            self.reconnect_seconds.append(trio.current_time() - outage.lost_at)
                            outage = None
                        self._notify()
                        if not started:
                            started = True
                            task_status.started()
                        try:
                            await self.read(ws)
                            return
                        finally:
                            self._ws = None
                except (VendorError, DeadlineExceeded) as exc:
                    if not started:
                        raise
                    if self._closing:
                        return
                    if self._epoch > epoch:  # it was live: a new outage begins
                        for route in self.routes.values():
                            route.send_nowait(Lost(exc, self._epoch))
                        if not recoverable(exc) or self._failures >= self.options.max_reconnects:
                            self._fail(exc)
                            return
                        self._failures += 1
                        outage = Backoff(trio.current_time(), self.config.reconnect_deadline)
                    elif outage is None or not recoverable(exc):
                        self._fail(exc)
                        return
                    delay = outage.next_delay(trio.current_time(), retry_after_of(exc))
                    if delay is None:
                        failure = reconnect_deadline_error(VENDOR, self.config.reconnect_deadline)
                        failure.__cause__ = exc
                        self._fail(failure)
                        return
                    with trio.move_on_after(delay):
                        await self._closed.wait()  # aclose() during the wait ends it
                    if self._closing:
                        return
        finally:
            self._closed.set()

    async def reply_connection(
        self, out: trio.MemorySendChannel[ReplyItem], token: int, within: float,
        *, task_status: trio.TaskStatus[tuple[WebSocketConnection, trio.CancelScope]],
    ) -> None:
        """Single mode: one ``stream-input`` connection for one attempt of a reply.
        A refused or failed handshake is raised to the starter; once started, the
        connection's end reaches the reply as :class:`Lost` (transient) or
        :class:`Failed`, never as an error in the session's nursery."""
        started = False
        try:
            with trio.CancelScope() as scope, unwrap_sole_error():
                async with self.connect(within) as ws, trio.open_nursery() as nursery:
                    await ws.send_message(wire.init_message(self.options))
                    nursery.start_soon(self.keepalive, ws)
                    started = True
                    task_status.started((ws, scope))
                    await self.read(ws, out)
                    nursery.cancel_scope.cancel()
        except (VendorError, DeadlineExceeded) as exc:
            if not started:
                raise
            out.send_nowait(Lost(exc, token) if recoverable(exc) else Failed(exc))

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
                raise errors.stream_error(*close_of(exc), last_error) from None
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
                    self._failures = 0  # a flush completed: the connection works
                    if only is not None:
                        return

    async def keepalive(self, ws: WebSocketConnection | None = None) -> None:
        """Send a keep-alive whenever nothing went out for ``keepalive_interval``."""
        interval = self.options.keepalive_interval
        while True:
            due = self._last_send + interval
            await trio.sleep_until(due)
            # The same sum both ways: ``now - last < interval`` can hold at
            # ``now == last + interval`` in floating point, and spin.
            if trio.current_time() < self._last_send + interval:
                continue  # something went out meanwhile
            target = ws if ws is not None else self._ws
            if target is None:  # reconnecting: nothing to keep alive for a while
                await trio.sleep(interval)
                continue
            message = wire.keepalive_message(None if ws is not None else self._idle_context)
            with suppress(ConnectionClosed):
                await target.send_message(message)
            self._last_send = trio.current_time()

    async def close_context(self, context: str, epoch: int) -> None:
        """Tell the vendor to end ``context`` (made on connection ``epoch``):
        after its last isFinal, or on barge-in so it stops generating. Shielded and
        short; a context of a lost connection is gone already."""
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.close_deadline):
            ws = self._ws
            if ws is not None and self._epoch == epoch:
                with suppress(SocketLost):
                    await self.send_on(ws, wire.close_context_message(context))

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
        self._notify()

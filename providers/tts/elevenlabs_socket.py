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
- a fresh socket instead of waiting behind a cancelled reply
  (:meth:`~SessionSocket.stuck_behind_cancel`, :meth:`~SessionSocket.replace`):
  ``close_context`` on a context none of whose audio has come yet does not
  reliably stop the vendor — the live service often speaks the flushed text
  anyway, audio arriving after the close, and sometimes honours the close at
  once (then ``isFinal`` comes with no audio) — and it generates one context at
  a time per socket, so a reply sent behind such a context waits for all of it.
  The socket therefore remembers the contexts cancelled unheard
  (:meth:`~SessionSocket.cancelled_unheard`) until the vendor is done with them
  (their last ``isFinal``, or an ``isFinal`` with no audio before it: dropped).
  A reply that starts while one is pending, and no reply in flight is hearing
  audio, replaces the socket: a close frame (the vendor stops generating), a
  new connection at once (refusals back off as after a loss), the replies in
  flight (none heard yet) told :class:`Lost` so they re-send on the new one;
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


def replaced_error() -> StreamClosed:
    """What the replies in flight on a replaced socket hear (as :class:`Lost`)."""
    return StreamClosed("elevenlabs socket replaced: a cancelled reply was still queued on it",
                        vendor=VENDOR, status=1000, code="replaced")


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
        #: Sockets replaced so as not to wait behind a cancelled reply (replace()).
        self.replaced = 0
        self._replacing = False
        self._reading: trio.CancelScope | None = None  # around the live socket's read()
        #: Live connection: contexts cancelled before any of their audio came, with
        #: the isFinals still due from the vendor; and which of them sent audio since.
        self._unheard: dict[str, int] = {}
        self._unheard_audio: set[str] = set()
        self._heard: set[str] = set()  # live connection: routed contexts that got audio

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
                        self._unheard.clear()
                        self._unheard_audio.clear()
                        self._heard.clear()
                        if outage is not None and self._replacing:
                            self.replaced += 1
                        elif outage is not None:
                            self._reconnects += 1
                            self.reconnect_seconds.append(trio.current_time() - outage.lost_at)
                        outage = None
                        self._replacing = False
                        self._notify()
                        if not started:
                            started = True
                            task_status.started()
                        try:
                            with trio.CancelScope() as self._reading:
                                await self.read(ws)
                        finally:
                            self._ws = self._reading = None
                        if self._closing or not self._replacing:
                            return
                    # replace(): the old socket closed (a close frame), a fresh one
                    # at once; the replies in flight on the old one re-send on it.
                    for route in self.routes.values():
                        route.send_nowait(Lost(replaced_error(), self._epoch))
                    outage = Backoff(trio.current_time(), self.config.reconnect_deadline)
                    outage.next_delay(trio.current_time())  # this is the first attempt
                    continue
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
                    self._cancelled_frame(frame)
                    continue
                if isinstance(frame, wire.AudioFrame) and only is None:
                    self._heard.add(frame.context_id or "")
                route.send_nowait(frame)
                if isinstance(frame, wire.FinalFrame):
                    self._failures = 0  # a flush or a context completed: it works
                    if only is not None:
                        return

    def reply_done(self) -> None:
        """A reply's audio all came without an isFinal to say so (a settled close
        left unanswered): the connection works, as when an isFinal comes."""
        self._failures = 0

    # -- cancelled replies the vendor may still be generating -------------------------

    def cancelled_unheard(self, context: str, epoch: int, finals_due: int) -> None:
        """A reply's ``context`` (on connection ``epoch``) was closed before any of
        its audio came; the vendor may still generate it, ``finals_due`` isFinals
        to come (from a vendor that answers flushes, one per flush not yet
        answered and one for the close; from one that does not, or not yet seen
        to, the close's one)."""
        if self._ws is not None and epoch == self._epoch:
            self._unheard[context] = finals_due

    def _cancelled_frame(self, frame: wire.AudioFrame | wire.FinalFrame) -> None:
        """A frame of no reply: settle a context cancelled unheard once the vendor
        is done with it — its last isFinal, or an isFinal with no audio since the
        close (it dropped the text)."""
        context = frame.context_id
        if context is None or context not in self._unheard:
            return
        if isinstance(frame, wire.AudioFrame):
            self._unheard_audio.add(context)
            return
        self._unheard[context] -= 1
        if self._unheard[context] <= 0 or context not in self._unheard_audio:
            del self._unheard[context]
            self._unheard_audio.discard(context)

    def stuck_behind_cancel(self) -> bool:
        """A reply starting now would wait behind a cancelled one the vendor may
        still be generating, and no reply in flight is hearing audio (replacing
        the socket would cut that one off): replace the socket first."""
        if self._ws is None or not self._unheard:
            return False
        return not any(context in self._heard for context in self.routes if context)

    def replace(self) -> None:
        """Have :meth:`supervise` close the live socket (a close frame: the vendor
        stops generating; at most ``close_deadline`` for its answer) and open a
        fresh one at once. Sends wait for the fresh one meanwhile."""
        if self._ws is None or self._reading is None or self._closing:
            return
        self._replacing = True
        self._ws = None
        self._reading.cancel()

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
        once its audio is out (its last isFinal, or settled), or on barge-in so it
        stops generating. Shielded and short; a context of a lost connection is
        gone already."""
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

"""Deepgram live transcription client (trio-websocket), one stream per call.

``open_deepgram(config, usage)`` connects (``Authorization: Token KEY``), and
yields a :class:`DeepgramStream` implementing :class:`providers.stt.base.STTStream`.
Background tasks, owned by the context manager: the connection supervisor (reads
server messages, reconnects) and the keep-alive.

Audio: never an empty frame; the stream's encoding (``linear16``/``mulaw``) as
configured. ``KeepAlive`` is sent when no audio has gone out for
``keepalive_interval`` s, and only after some audio was sent.

Reconnect within the call: when the connection closes unexpectedly with a
network-type code (1011 ``NET-0000``/``NET-0001``, 1006 reset or a TCP drop with
no close frame, 1001, 1012–1014), the supervisor reconnects and replays the
audio not yet covered by a final — kept in a ring buffer of at most
``replay_seconds`` (:mod:`providers.stt.deepgram_replay`) — before live audio
flows again. Each connection's times are offset by the call time of its first
replayed byte, so events stay in call time and no caller words are lost. Audio
sent while reconnecting is buffered, not dropped. A reconnect that is refused
(429 with ``retry-after``, a 5xx) or cannot reach the host is retried with the
shared policy of :mod:`providers.reconnect` (first attempt at once, then
exponential backoff with jitter, never sooner than ``retry-after``) until
``reconnect_deadline`` s after the loss; then the stream fails with
``DeadlineExceeded(deadline="reconnect")`` chained to the last refusal. At most
``max_reconnects`` drops in a row without a final in between (a flapping
stream). 1008 ``DATA-0000`` (bad audio) and 4xx refusals are not retried; a
failure of the very first handshake is raised at once (the caller falls back).

``finalize()`` sends ``Finalize`` at once; while reconnecting it is sent once
after the replay (several collapse into one answer, covering all the audio). An
answer is not promised: Deepgram may send none for a ``Finalize`` with nothing
left to settle, and one sent just before a drop is lost with the connection.

Usage: seconds of audio actually sent to Deepgram, replays included (a replay is
billed again).

Errors reach the caller as exceptions from the ``async with`` block (the call's
nursery tears down): :class:`~providers.exceptions.AuthError` /
:class:`~providers.exceptions.HandshakeRejected` (with Deepgram's ``err_code``,
``err_msg``, ``request_id``), :class:`~providers.exceptions.RateLimited` (429,
``retry_after``), :class:`~providers.exceptions.VendorUnavailable` (5xx),
:class:`~providers.exceptions.StreamClosed`,
:class:`~providers.exceptions.ConnectError`,
:class:`~providers.exceptions.DeadlineExceeded`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from providers.config import DeepgramConfig
from providers.exceptions import (
    ConnectError,
    DeadlineExceeded,
    ProviderClosed,
    ProviderError,
    RateLimited,
    StreamClosed,
    VendorUnavailable,
)
from providers.groups import unwrap_sole_error
from providers.reconnect import Backoff, is_transient, reconnect_deadline_error, retry_after_of
from providers.stt import deepgram_wire as wire
from providers.stt.base import (
    Endpoint,
    Final,
    Interim,
    SpeechDetected,
    STTEvent,
    UtteranceEnd,
)
from providers.stt.deepgram_replay import ReplayRing
from providers.usage import UsageCounter
from providers.websocket_client import map_websocket_errors, open_websocket_client
from providers.wire import close_of

log = logging.getLogger(__name__)
VENDOR = wire.VENDOR
#: Replayed audio goes out in frames of this many seconds (Deepgram: 20–250 ms).
REPLAY_FRAME_SECONDS = 0.25


class DeepgramStream:
    """An open Deepgram stream; see the module docstring. Created by
    :func:`open_deepgram` only."""

    def __init__(self, config: DeepgramConfig, usage: UsageCounter) -> None:
        self.config = config
        self.usage = usage
        self.request_ids: list[str] = []  # one per connection, for vendor support
        self.reconnects = 0  # times the stream came back after a lost connection
        self.refused = 0  # reconnect attempts that failed (refused, unreachable, timed out)
        self.connections = 0  # successful handshakes
        # Per reconnect: seconds from seeing the close to live audio again (replay done).
        self.reconnect_seconds: list[float] = []
        self.resumed_at: list[float] = []  # trio time of each resumption
        self._lost_at: float | None = None
        sample_bytes = 1 if config.encoding == "mulaw" else 2
        self._ring = ReplayRing(config.bytes_per_second, sample_bytes, config.replay_seconds)
        self._events_send, self._events = trio.open_memory_channel[STTEvent](math.inf)
        self._ws: WebSocketConnection | None = None  # live connection, None while (re)connecting
        self._offset = 0.0  # call time of the current connection's first byte
        self._last_send = 0.0
        self._last_speech_started = -1.0
        self._finalize_pending = False
        self._progress = False  # a final settled audio since the last drop
        self._closing = False
        self._closed = trio.Event()
        self._supervisor_done = trio.Event()

    # -- the STTStream interface ------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        if self._closing:
            raise ProviderClosed("send_audio after aclose", vendor=VENDOR)
        if not pcm:
            return  # an empty binary frame would mean "close" to older Deepgram APIs
        self._ring.append(bytes(pcm))
        ws = self._ws
        if ws is None:
            return  # reconnecting: the supervisor replays it from the ring
        try:
            await ws.send_message(bytes(pcm))
        except ConnectionClosed:
            return  # the supervisor sees the close and replays from the ring
        self.usage.add_stt_seconds(len(pcm) / self.config.bytes_per_second)
        self._last_send = trio.current_time()

    async def finalize(self) -> None:
        ws = self._ws
        if ws is None:
            self._finalize_pending = True
            return
        try:
            await ws.send_message(wire.FINALIZE)
        except ConnectionClosed:
            self._finalize_pending = True

    def events(self) -> AsyncIterator[STTEvent]:
        return self._events

    async def aclose(self) -> None:
        """Send ``CloseStream`` and wait (``close_deadline``) for the last results,
        ``Metadata`` and the close. Idempotent."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        ws = self._ws
        with trio.move_on_after(self.config.close_deadline) as scope:
            if ws is not None:
                with suppress(ConnectionClosed):
                    await ws.send_message(wire.CLOSE_STREAM)
                await self._closed.wait()
        if scope.cancelled_caught:
            log.warning("deepgram: no close within %.1f s after CloseStream",
                        self.config.close_deadline)
        self._events_send.close()
        self._closed.set()

    @property
    def lost_seconds(self) -> float:
        """Audio a reconnect could not replay: it had fallen out of the ring buffer
        (``replay_seconds``) before a final covered it."""
        return self._ring.lost_bytes / self.config.bytes_per_second

    # -- internals ----------------------------------------------------------------

    async def _supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            await self._connect_loop(task_status)
        finally:
            self._supervisor_done.set()

    async def _connect_loop(self, task_status: trio.TaskStatus[None]) -> None:
        config = self.config
        drops = 0  # connections lost in a row without a final in between
        outage: Backoff | None = None  # while reconnecting
        first = True
        while True:
            connections = self.connections
            try:
                await self._connection(task_status if first else None, outage)
                return
            except (StreamClosed, ConnectError, DeadlineExceeded, RateLimited,
                    VendorUnavailable) as exc:
                if not self.connections:
                    raise  # the very first handshake failed: nothing to resume
                if self._closing:
                    return  # the caller is done with the stream
                if self.connections > connections:  # it was live, then lost: an outage
                    if self._progress:  # finals arrived since the last drop
                        drops = 0
                        self._progress = False
                    if not _recoverable(exc) or drops >= config.max_reconnects:
                        raise
                    drops += 1
                    lost_at = self._lost_at if self._lost_at is not None else trio.current_time()
                    outage = Backoff(lost_at, config.reconnect_deadline)
                elif outage is None or not is_transient(exc):
                    raise
                else:
                    self.refused += 1
                delay = outage.next_delay(trio.current_time(), retry_after_of(exc))
                if delay is None:
                    raise reconnect_deadline_error(VENDOR, config.reconnect_deadline) from exc
                log.warning("deepgram: reconnecting in %.2f s after %s", delay, exc)
                with trio.move_on_after(delay):
                    await self._closed.wait()  # aclose() during the wait ends it
                if self._closing:
                    return
            finally:
                first = False

    async def _connection(self, task_status: trio.TaskStatus[None] | None,
                          outage: Backoff | None) -> None:
        """One connection, from handshake to close; foreign errors translated here.
        While reconnecting, the handshake must also finish before the outage's deadline."""
        config = self.config
        start = trio.current_time()
        connect_by = start + config.connect_deadline
        if outage is not None:
            connect_by = min(connect_by, outage.deadline)
        headers = [(b"Authorization", f"Token {config.api_key.reveal()}".encode())
                   ] if config.api_key else []
        with map_websocket_errors(VENDOR, connect_seconds=round(connect_by - start, 3),
                                  refused=wire.handshake_error):
            async with open_websocket_client(wire.listen_url(config), headers,
                                             connect_by=connect_by,
                                             close_within=config.close_deadline) as ws:
                await self._session(ws, task_status)

    async def _session(self, ws: WebSocketConnection,
                       task_status: trio.TaskStatus[None] | None) -> None:
        self.connections += 1
        try:
            with suppress(ConnectionClosed):  # if it closes already, _read says why
                await self._replay(ws)
                self._ws = ws
            if self._lost_at is not None and self._ws is ws:
                self.reconnects += 1
                self.reconnect_seconds.append(trio.current_time() - self._lost_at)
                self.resumed_at.append(trio.current_time())
                self._lost_at = None
            if task_status is not None:
                task_status.started()
            await self._read(ws)
        finally:
            self._ws = None

    async def _replay(self, ws: WebSocketConnection) -> None:
        """Send the ring's audio from the first byte no final covers, until caught up."""
        ring = self._ring
        position = ring.replay_start()
        self._offset = position / ring.bytes_per_second
        frame = max(ring.sample_bytes, ring.byte_at(REPLAY_FRAME_SECONDS))
        while position < ring.total:
            position, chunk = ring.read(position, frame)
            await ws.send_message(chunk)
            self.usage.add_stt_seconds(len(chunk) / ring.bytes_per_second)  # billed again
            position += len(chunk)
            self._last_send = trio.current_time()
        if self._finalize_pending:
            self._finalize_pending = False
            await ws.send_message(wire.FINALIZE)

    async def _read(self, ws: WebSocketConnection) -> None:
        request_id = {
            k.decode().lower(): v.decode() for k, v in ws.handshake_headers
        }.get("dg-request-id")
        if request_id:
            self.request_ids.append(request_id)
        last_error: wire.ErrorMsg | None = None
        while True:
            try:
                text = await ws.get_message()
            except ConnectionClosed as exc:
                code, detail = close_of(exc)
                if last_error is not None and not detail:
                    detail = f"{last_error.code or ''} {last_error.message}".strip()
                if self._closing:
                    self._closed.set()
                    return
                self._lost_at = trio.current_time()
                raise (wire.close_error(code, detail) or StreamClosed(
                    "deepgram closed the stream without CloseStream", vendor=VENDOR,
                    status=code, detail=detail)) from None
            if isinstance(text, bytes):
                continue  # the live API sends no binary frames
            message = wire.parse_message(text)
            if isinstance(message, wire.ErrorMsg):
                last_error = message
            else:
                self._deliver(message)

    def _deliver(self, message: wire.ServerMessage) -> None:
        offset = self._offset
        event: STTEvent | None = None
        if isinstance(message, wire.Results):
            if message.is_final:
                end = offset + message.end
                self._ring.settle(end)
                self._progress = True
                if message.transcript.strip():
                    event = Final(message.transcript.strip(), offset + message.start, end,
                                  from_finalize=message.from_finalize,
                                  speech_final=message.speech_final)
                elif message.speech_final or message.from_finalize:
                    event = Endpoint(end, from_finalize=message.from_finalize)
            elif message.transcript.strip():
                event = Interim(message.transcript.strip())
        elif isinstance(message, wire.SpeechStartedMsg):
            t = offset + message.timestamp
            if t > self._last_speech_started + 1e-6:  # replay repeats the onset
                self._last_speech_started = t
                event = SpeechDetected(t)
        elif isinstance(message, wire.UtteranceEndMsg):
            event = UtteranceEnd(offset + message.last_word_end)
        elif isinstance(message, wire.UnknownMessage):
            log.info("deepgram: ignoring message type %r", message.type)
        if event is not None:
            try:
                self._events_send.send_nowait(event)
            except trio.ClosedResourceError:
                return  # aclose() gave up waiting for the close; late results are dropped

    async def _keepalive(self) -> None:
        interval = self.config.keepalive_interval
        next_check = trio.current_time() + interval
        while True:
            await trio.sleep_until(max(self._last_send + interval, next_check))
            now = trio.current_time()
            if now < self._last_send + interval:  # (not ``now - last``: see the TTS socket)
                continue  # audio went out meanwhile
            next_check = now + interval
            ws = self._ws
            if ws is None or self._ring.total == 0 or self._closing:
                continue  # nothing sent yet (Deepgram wants audio first) or reconnecting
            with suppress(ConnectionClosed):
                await ws.send_message(wire.KEEPALIVE)
            self._last_send = trio.current_time()


def _recoverable(error: ProviderError) -> bool:
    """A lost connection worth a reconnect: a network-type close (see the wire
    module) or a failure to reach the host; not bad audio or a policy close."""
    if isinstance(error, StreamClosed):
        return wire.is_recoverable(error)
    return is_transient(error)


@asynccontextmanager
async def open_deepgram(
    config: DeepgramConfig, usage: UsageCounter | None = None
) -> AsyncIterator[DeepgramStream]:
    """Connect and yield the stream; on exit close it gracefully (``CloseStream``,
    bounded by ``close_deadline``) and stop its tasks."""
    stream = DeepgramStream(config, usage if usage is not None else UsageCounter())
    with unwrap_sole_error():
        async with trio.open_nursery() as nursery:
            await nursery.start(stream._supervise)
            nursery.start_soon(stream._keepalive)
            try:
                yield stream
                await stream.aclose()
                # Let the supervisor close its socket cleanly before stopping the tasks.
                with trio.move_on_after(config.close_deadline):
                    await stream._supervisor_done.wait()
            finally:
                nursery.cancel_scope.cancel()

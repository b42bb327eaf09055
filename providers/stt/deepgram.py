"""Deepgram live transcription client (trio-websocket), one stream per call.

``open_deepgram(config, usage)`` connects (``Authorization: Token KEY``), and
yields a :class:`DeepgramStream` implementing :class:`providers.stt.base.STTStream`.
Background tasks, owned by the context manager: the connection supervisor (reads
server messages, reconnects) and the keep-alive.

Audio: never an empty frame; the stream's encoding (``linear16``/``mulaw``) as
configured. ``KeepAlive`` is sent when no audio has gone out for
``keepalive_interval`` s, and only after some audio was sent.

Reconnect within the call: when the connection closes unexpectedly with a
network-type code (1011 ``NET-0000``/``NET-0001``, 1006 reset, 1001, 1012–1014),
the supervisor reconnects (up to ``max_reconnects`` in a row) and replays the
audio not yet covered by a final — kept in a ring buffer of at most
``replay_seconds`` — before live audio flows again. Each connection's times are
offset by the call time of its first replayed byte, so events stay in call time
and no caller words are lost. Audio sent while reconnecting is buffered, not
dropped. 1008 ``DATA-0000`` (bad audio) and handshake refusals are not retried.

Usage: seconds of audio actually sent to Deepgram, replays included (a replay is
billed again).

Errors reach the caller as exceptions from the ``async with`` block (the call's
nursery tears down): :class:`~providers.exceptions.AuthError` /
:class:`~providers.exceptions.HandshakeRejected` (with Deepgram's ``err_code``,
``err_msg``, ``request_id``), :class:`~providers.exceptions.StreamClosed`,
:class:`~providers.exceptions.ConnectError`,
:class:`~providers.exceptions.DeadlineExceeded`.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import urlsplit

import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection

from providers.config import DeepgramConfig
from providers.exceptions import (
    ConnectError,
    DeadlineExceeded,
    ProviderClosed,
    StreamClosed,
)
from providers.groups import sole_error, unwrap_sole_error
from providers.stt import deepgram_wire as wire
from providers.stt.base import (
    Endpoint,
    Final,
    Interim,
    SpeechDetected,
    STTEvent,
    UtteranceEnd,
)
from providers.usage import UsageCounter
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
        self.reconnects = 0  # total reconnects during this call
        self.connections = 0  # successful handshakes
        # Per reconnect: seconds from seeing the close to live audio again (replay done).
        self.reconnect_seconds: list[float] = []
        self.resumed_at: list[float] = []  # trio time of each resumption
        self._lost_at: float | None = None
        self._bps = config.bytes_per_second
        self._sample_bytes = 1 if config.encoding == "mulaw" else 2
        self._events_send, self._events = trio.open_memory_channel[STTEvent](math.inf)
        self._ws: WebSocketConnection | None = None  # live connection, None while (re)connecting
        # Ring buffer of call audio: bytes [_base, _total) of the call's stream.
        self._audio = bytearray()
        self._base = 0
        self._total = 0
        self._lost = 0  # bytes that fell out of the ring before a final covered them
        self._covered = 0.0  # call time up to which finals have settled the audio
        self._offset = 0.0  # call time of the current connection's first byte
        self._last_send = 0.0
        self._last_speech_started = -1.0
        self._finalize_pending = False
        self._progress = False  # a final settled audio since the last reconnect
        self._closing = False
        self._closed = trio.Event()
        self._supervisor_done = trio.Event()

    # -- the STTStream interface ------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        if self._closing:
            raise ProviderClosed("send_audio after aclose", vendor=VENDOR)
        if not pcm:
            return  # an empty binary frame would mean "close" to older Deepgram APIs
        self._append(bytes(pcm))
        ws = self._ws
        if ws is None:
            return  # reconnecting: the supervisor replays it from the ring
        try:
            await ws.send_message(bytes(pcm))
        except ConnectionClosed:
            return  # the supervisor sees the close and replays from the ring
        self.usage.add_stt_seconds(len(pcm) / self._bps)
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
        return self._lost / self._bps

    # -- internals ----------------------------------------------------------------

    def _append(self, pcm: bytes) -> None:
        self._audio += pcm
        self._total += len(pcm)
        limit = int(self.config.replay_seconds * self._bps)
        excess = len(self._audio) - limit
        if excess > 0:
            excess -= excess % self._sample_bytes
            del self._audio[:excess]
            self._base += excess

    def _byte_at(self, t: float) -> int:
        position = round(t * self._bps)
        return position - position % self._sample_bytes

    def _settle(self, t: float) -> None:
        """Finals cover the call audio up to ``t``: drop it from the ring."""
        self._covered = max(self._covered, t)
        self._progress = True
        cut = min(self._byte_at(self._covered), self._total) - self._base
        if cut > 0:
            del self._audio[:cut]
            self._base += cut

    async def _supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            await self._connect_loop(task_status)
        finally:
            self._supervisor_done.set()

    async def _connect_loop(self, task_status: trio.TaskStatus[None]) -> None:
        failures = 0
        first = True
        while True:
            try:
                await self._connection(task_status if first else None)
                return
            except (StreamClosed, ConnectError, DeadlineExceeded) as exc:
                if not self.connections or self._closing:
                    raise  # the very first handshake failed: nothing to resume
                recoverable = not isinstance(exc, StreamClosed) or wire.is_recoverable(exc)
                if self._progress:  # finals arrived since the last failure: not "in a row"
                    failures = 0
                    self._progress = False
                if not recoverable or failures >= self.config.max_reconnects:
                    raise
                failures += 1
                self.reconnects += 1
                log.warning("deepgram: reconnecting after %s (attempt %d)", exc, failures)
                await trio.sleep(0.05 * (failures - 1))  # first retry at once
            finally:
                first = False

    async def _connection(self, task_status: trio.TaskStatus[None] | None) -> None:
        """One connection, from handshake to close; foreign errors translated here."""
        try:
            async with trio.open_nursery() as nursery:  # the WebSocket reader task lives here
                await self._session(nursery, task_status)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            error = sole_error(group)
            if error is None:
                raise
            raise _translate(error, self.config) from error
        except (trio_websocket.HandshakeError, OSError) as error:
            raise _translate(error, self.config) from error

    async def _session(
        self, nursery: trio.Nursery, task_status: trio.TaskStatus[None] | None
    ) -> None:
        # We open and close the TCP stream ourselves (trio-websocket's
        # open_websocket_url leaks the socket after a rejected handshake or a
        # server-initiated close in 0.12).
        config = self.config
        url = urlsplit(wire.listen_url(config))
        secure = url.scheme == "wss"
        host = url.hostname or "localhost"
        port = url.port or (443 if secure else 80)
        connect_by = trio.current_time() + config.connect_deadline
        with trio.move_on_at(connect_by):
            if secure:
                tcp: trio.SocketStream | trio.SSLStream[trio.SocketStream]
                tcp = await trio.open_ssl_over_tcp_stream(
                    host, port, ssl_context=ssl.create_default_context(), https_compatible=True)
            else:
                tcp = await trio.open_tcp_stream(host, port)
        if trio.current_time() >= connect_by:
            raise _connect_deadline(config)
        try:
            headers = [(b"Authorization", f"Token {config.api_key.reveal()}".encode())
                       ] if config.api_key else []
            host_header = host if url.port is None else f"{host}:{port}"
            with trio.move_on_at(connect_by) as scope:
                ws = await trio_websocket.wrap_client_stream(
                    nursery, tcp, host_header, f"{url.path}?{url.query}",
                    extra_headers=headers, message_queue_size=64)
            if scope.cancelled_caught:
                raise _connect_deadline(config)
            self.connections += 1
            try:
                await self._replay(ws)
                self._ws = ws
                if self._lost_at is not None:
                    self.reconnect_seconds.append(trio.current_time() - self._lost_at)
                    self.resumed_at.append(trio.current_time())
                    self._lost_at = None
                if task_status is not None:
                    task_status.started()
                await self._read(ws)
            finally:
                self._ws = None
        finally:
            await trio.aclose_forcefully(tcp)

    async def _replay(self, ws: WebSocketConnection) -> None:
        """Send the ring's audio from the first byte no final covers, until caught up."""
        covered = self._byte_at(self._covered)
        if self._base > covered:
            self._lost += self._base - covered  # fell out of the ring: cannot be replayed
        position = max(covered, self._base)
        self._offset = position / self._bps
        frame = max(self._sample_bytes, self._byte_at(REPLAY_FRAME_SECONDS))
        while position < self._total:
            position = max(position, self._base)  # the ring may have moved on meanwhile
            start = position - self._base
            chunk = bytes(self._audio[start:start + frame])
            await ws.send_message(chunk)
            self.usage.add_stt_seconds(len(chunk) / self._bps)  # billed again if re-sent
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
                self._settle(end)
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
        elif isinstance(message, wire.Unknown):
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
            if now - self._last_send < interval:
                continue  # audio went out meanwhile
            next_check = now + interval
            ws = self._ws
            if ws is None or self._total == 0 or self._closing:
                continue  # nothing sent yet (Deepgram wants audio first) or reconnecting
            with suppress(ConnectionClosed):
                await ws.send_message(wire.KEEPALIVE)
            self._last_send = trio.current_time()


def _connect_deadline(config: DeepgramConfig) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"no deepgram handshake within {config.connect_deadline:g} s", vendor=VENDOR,
        deadline="connect", seconds=config.connect_deadline)


def _translate(error: BaseException, config: DeepgramConfig) -> BaseException:
    """Map trio-websocket/OS errors to ours; anything else passes through."""
    if isinstance(error, trio_websocket.ConnectionRejected):
        return wire.handshake_error(error.status_code, error.headers, error.body)
    if isinstance(error, trio_websocket.ConnectionTimeout):
        return _connect_deadline(config)
    if isinstance(error, trio_websocket.HandshakeError | OSError | trio.BrokenResourceError):
        return ConnectError(f"cannot reach deepgram: {error!r}", vendor=VENDOR)
    return error


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

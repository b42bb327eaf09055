"""ElevenLabs streaming TTS client (trio-websocket), one session per call.

``open_elevenlabs(config, usage, options)`` yields an :class:`ElevenLabsSession`
implementing :class:`providers.tts.base.TTSSession`. Two modes
(:class:`~providers.tts.elevenlabs_wire.StreamOptions.multi_context`):

- **multi-context** (default): one ``multi-stream-input`` socket for the whole
  call, opened up front and kept alive (``{"text": "", "context_id"}`` on the
  session's idle context whenever nothing was sent for ``keepalive_interval``).
  Each :meth:`~ElevenLabsSession.speak` is one context: its text pieces (flushed
  per chunk or only at the end, see ``flush_each_chunk``), then ``flush`` and
  ``close_context``; the reply ends at the context's ``isFinal``. Barge-in
  cancels the reply: ``close_context`` is sent and any audio still arriving for
  that context is dropped, so the next reply starts at once on the same socket.
  If the socket drops (1006/1011/…, or an idle close) the replies in flight fail
  with :class:`~providers.exceptions.StreamClosed` and the session reconnects for
  the next one (``max_reconnects`` in a row).
- **single** (``stream-input``): a connection per reply — init, text, flush, EOS
  ``{"text": ""}``, audio until ``{"isFinal": true}``. Barge-in closes that
  connection; the next reply pays a new handshake.

Audio is yielded as PCM16LE at :attr:`ElevenLabsSession.sample_rate` (μ-law /
A-law formats are expanded). Usage: characters of text sent. Playout seconds
come from byte counts (:meth:`ElevenLabsSession.statistics`).

Deadlines (from :class:`~providers.config.ElevenLabsConfig`): ``connect``; the
first audio of a reply must come within ``first_byte_deadline`` of its first
text, and once all text is sent no gap between frames may exceed it
(:class:`~providers.exceptions.DeadlineExceeded` ``first_byte`` / ``idle``).
Errors from the vendor (1008 error frames, handshake 401/429) become typed
exceptions: from ``speak`` for the reply concerned, and from the ``async with``
block when the session cannot continue (refused key, quota).

This module is the reply side: ``speak`` (feeding a reply's text, its
deadlines, decoding its audio, barge-in), the per-reply workers of both modes,
statistics and :func:`open_elevenlabs`. The connection side (handshake and its
errors, sending, reading and routing frames, reconnects, keep-alive) is the
session's :class:`~providers.tts.elevenlabs_socket.SessionSocket`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import trio
from trio_websocket import WebSocketConnection

from providers.config import ElevenLabsConfig
from providers.exceptions import DeadlineExceeded, ProviderClosed, ProviderError
from providers.groups import unwrap_sole_error
from providers.tts import elevenlabs_wire as wire
from providers.tts.elevenlabs_socket import (
    Failed,
    ReplyItem,
    SessionSocket,
    SocketLost,
    TextDone,
    TextSent,
)
from providers.usage import UsageCounter

VENDOR: Final = wire.VENDOR


@dataclass(frozen=True)
class ElevenLabsStatistics:
    """Counters for one session. ``audio_seconds`` is playout time of the audio
    delivered to callers (from byte counts); ``dropped_frames`` are frames of
    cancelled replies that arrived after the cancel; ``first_audio_delays`` the
    time from a reply's first text to its first audio, per reply that got any."""

    replies: int
    cancelled: int
    characters: int
    audio_seconds: float
    dropped_frames: int
    reconnects: int
    first_audio_delays: tuple[float, ...]


class ElevenLabsSession:
    """An open TTS session; see the module docstring. Created by
    :func:`open_elevenlabs` only. The connection side is its :class:`SessionSocket`."""

    def __init__(self, config: ElevenLabsConfig, options: wire.StreamOptions,
                 usage: UsageCounter, nursery: trio.Nursery) -> None:
        self.config = config
        self.options = options
        self.usage = usage
        self.socket = SessionSocket(config, options)
        self._closing = False
        self._rate = wire.audio_format(config.output_format)[0]
        self._nursery = nursery
        self._numbers = itertools.count(1)
        self._replies = 0
        self._cancelled = 0
        self._characters = 0
        self._audio_bytes = 0
        self._first_audio: list[float] = []

    @property
    def sample_rate(self) -> int:
        return self._rate

    def statistics(self) -> ElevenLabsStatistics:
        return ElevenLabsStatistics(
            replies=self._replies, cancelled=self._cancelled, characters=self._characters,
            audio_seconds=self._audio_bytes / (2 * self._rate),
            dropped_frames=self.socket.dropped, reconnects=self.socket.reconnects,
            first_audio_delays=tuple(self._first_audio),
        )

    # -- the TTSSession interface ---------------------------------------------------

    async def speak(self, text_chunks: AsyncIterable[str]) -> AsyncGenerator[bytes, None]:
        """Synthesize one reply (see the module docstring); use inside ``aclosing``."""
        if self._closing:
            raise ProviderClosed("speak after aclose", vendor=VENDOR)
        self._replies += 1
        context = f"{self.socket.id}-{next(self._numbers)}" if self.options.multi_context else None
        send, receive = trio.open_memory_channel[ReplyItem](math.inf)
        worker = self._feed_context if self.options.multi_context else self._reply_connection
        if context is not None:
            self.socket.routes[context] = send
        scope: trio.CancelScope = await self._nursery.start(worker, context, text_chunks, send)
        decoder = wire.AudioDecoder(self.config.output_format)
        finished = False
        first_text_at: float | None = None
        text_done = False
        got_audio = False
        try:
            while True:
                item = await self._next(receive, first_text_at, got_audio, text_done)
                if isinstance(item, wire.AudioFrame):
                    pcm = decoder.decode(item.audio)
                    if not got_audio and first_text_at is not None:
                        self._first_audio.append(trio.current_time() - first_text_at)
                    got_audio = True
                    self._audio_bytes += len(pcm)
                    if pcm:
                        yield pcm
                elif isinstance(item, wire.FinalFrame):
                    finished = True
                    return
                elif isinstance(item, TextSent):
                    first_text_at = item.at
                elif isinstance(item, TextDone):
                    text_done = True
                    if first_text_at is None:  # nothing to say
                        finished = True
                        return
                else:
                    finished = True  # the worker is gone; nothing to close
                    raise item.error
        finally:
            scope.cancel()
            self.socket.routes.pop(context, None)
            if not finished:
                self._cancelled += 1
                if context is not None:
                    await self.socket.close_context(context)

    async def aclose(self) -> None:
        """End the session: ``close_socket`` (flushed replies finish), then wait up
        to ``close_deadline`` for the server's close. Idempotent."""
        self._closing = True
        await self.socket.close()

    # -- replies ----------------------------------------------------------------------

    async def _next(self, receive: trio.MemoryReceiveChannel[ReplyItem],
                    first_text_at: float | None, got_audio: bool, text_done: bool) -> ReplyItem:
        """The reply's next item, within the first-byte / idle deadline."""
        limit = self.config.first_byte_deadline
        deadline = math.inf
        if first_text_at is not None and not got_audio:
            deadline = first_text_at + limit
        elif text_done:
            deadline = trio.current_time() + limit
        with trio.move_on_at(deadline):
            return await receive.receive()
        which = "first_byte" if not got_audio else "idle"
        raise DeadlineExceeded(f"no elevenlabs audio within {limit:g} s ({which})",
                               vendor=VENDOR, deadline=which, seconds=limit)

    async def _feed_context(
        self, context: str, text_chunks: AsyncIterable[str],
        out: trio.MemorySendChannel[ReplyItem], *,
        task_status: trio.TaskStatus[trio.CancelScope],
    ) -> None:
        """Multi-context: send one reply's text to its context, then flush and close it."""
        with trio.CancelScope() as scope:
            task_status.started(scope)
            try:
                said = await self._send_text(text_chunks, out, context)
                if said:
                    await self.socket.send(wire.flush_message(context))
                    await self.socket.send(wire.close_context_message(context))
                out.send_nowait(TextDone())
            except SocketLost:
                pass  # the supervisor fails this reply with the reason for the close
            except ProviderError as exc:
                out.send_nowait(Failed(exc))

    async def _send_text(self, text_chunks: AsyncIterable[str],
                         out: trio.MemorySendChannel[ReplyItem], context: str | None,
                         ws: WebSocketConnection | None = None) -> bool:
        """Send each non-blank chunk; True if anything was said."""
        first = True
        iterator = aiter(text_chunks)
        try:
            async for chunk in iterator:
                piece = wire.text_piece(chunk)
                if not piece:
                    continue
                settings = self.options.voice_settings if first and context else None
                await self.socket.send(wire.text_message(
                    piece, flush=self.options.flush_each_chunk, context_id=context,
                    voice_settings=settings), ws)
                characters = len(piece) - 1  # the trailing space we added is not billed
                self._characters += characters
                self.usage.add_tts_characters(characters)
                if first:
                    out.send_nowait(TextSent(trio.current_time()))
                first = False
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True):
                    await aclose()
        return not first

    async def _reply_connection(
        self, _context: None, text_chunks: AsyncIterable[str],
        out: trio.MemorySendChannel[ReplyItem], *,
        task_status: trio.TaskStatus[trio.CancelScope],
    ) -> None:
        """Single mode: one ``stream-input`` connection carries one reply."""
        with trio.CancelScope() as scope:
            task_status.started(scope)
            try:
                async with self.socket.connect() as ws, trio.open_nursery() as nursery:
                    await ws.send_message(wire.init_message(self.options))
                    nursery.start_soon(self.socket.keepalive, ws)
                    nursery.start_soon(self._feed_connection, ws, text_chunks, out)
                    await self.socket.read(ws, out)
                    nursery.cancel_scope.cancel()
            except ProviderError as exc:
                out.send_nowait(Failed(exc))

    async def _feed_connection(self, ws: WebSocketConnection, text_chunks: AsyncIterable[str],
                               out: trio.MemorySendChannel[ReplyItem]) -> None:
        try:
            if await self._send_text(text_chunks, out, None, ws):
                await self.socket.send(wire.flush_message(), ws)
            await self.socket.send(wire.eos_message(), ws)
            out.send_nowait(TextDone())
        except SocketLost:
            pass  # _read raises the reason for the close
        except ProviderError as exc:
            out.send_nowait(Failed(exc))


@asynccontextmanager
async def open_elevenlabs(
    config: ElevenLabsConfig, usage: UsageCounter | None = None,
    options: wire.StreamOptions | None = None,
) -> AsyncIterator[ElevenLabsSession]:
    """Open the call's TTS session (multi mode: connect now); close it on exit.
    A failure of the session (or of the block) is raised as itself, not wrapped
    in an exception group, when it is the only one."""
    options = options or wire.StreamOptions()
    with unwrap_sole_error():
        async with trio.open_nursery() as nursery:
            session = ElevenLabsSession(config, options, usage or UsageCounter(), nursery)
            if options.multi_context:
                await nursery.start(session.socket.supervise)
                nursery.start_soon(session.socket.keepalive)
            try:
                yield session
                await session.aclose()
            finally:
                nursery.cancel_scope.cancel()

"""ElevenLabs streaming TTS client (trio-websocket), one session per call.

``open_elevenlabs(config, usage, options)`` yields an :class:`ElevenLabsSession`
implementing :class:`providers.tts.base.TTSSession`. Two modes
(:class:`~providers.tts.elevenlabs_wire.StreamOptions.multi_context`):

- **multi-context** (default): one ``multi-stream-input`` socket for the whole
  call, opened up front and kept alive (``{"text": "", "context_id"}`` on the
  session's idle context whenever nothing was sent for ``keepalive_interval``).
  Each :meth:`~ElevenLabsSession.speak` is one context: its text pieces (flushed
  per chunk or only at the end, see ``flush_each_chunk``), then ``flush``. How
  the reply ends depends on the vendor, and both ways have been reported, so
  the client works with either:

  - *flushes answered*: the vendor answers every flush with ``isFinal`` once
    its audio is out (our reading of the API, and the simulator's default);
    the reply ends at the ``isFinal`` of its last flush, and only then is
    ``close_context`` sent;
  - *only the context's end answered* (the vendor's AsyncAPI calls
    ``{isFinal, contextId}`` "the final message for the context", and an
    integrator found on the live API that a bare flush yields none, flush +
    ``close_context`` exactly one, with all the audio): once all of the
    reply's text is out and audio came after its last piece, no frame for
    ``settle_deadline`` (0.5 s) means its audio is complete (a generation's
    audio comes faster than real time, frame after frame); then
    ``close_context`` goes out, and the context's ``isFinal`` (after any audio
    still to come) ends the reply. Without that ``isFinal`` within
    ``close_final_deadline`` of the last frame the reply ends all the same
    (``unanswered_closes``, logged once per session), as it does when the
    socket is lost meanwhile (nothing to resume). This costs the reply's
    *end* ``settle_deadline`` (plus the close's round trip), not its first
    audio nor the audio heard: a streaming caller asks for its next sentence
    that much later, while this one still plays — but one who waits for the
    whole reply before playing it (the call's audio cache of template
    sentences) hears it that much later.

  Until an ``isFinal`` the client did not close for has come (then the vendor
  answers flushes, and settling is off for the session), a reply may settle.
  A settle is wrong only if the vendor pauses longer than ``settle_deadline``
  between two generations of one reply; its close then stops the rest.
  ``close_context`` is never sent right after ``flush`` (the vendor may drop
  the flushed audio), only once the audio is out, or on barge-in so that the
  vendor stops generating (it generates one context at a time per socket);
  exactly once either way. Audio still arriving for a closed context is
  dropped. A context closed before any of its audio came may be generated all
  the same (the live service often speaks flushed text after such a close): a
  reply starting while the vendor may still be on it goes to a fresh socket
  instead of waiting behind it
  (:class:`~providers.tts.elevenlabs_socket.SessionSocket`, ``fresh_sockets``).
- **single** (``stream-input``): a connection per reply — init, text, flush, EOS
  ``{"text": ""}``, audio until ``{"isFinal": true}``. Barge-in closes that
  connection with a close frame; the next reply pays a new handshake.

Faults: a reply-level error (a deadline, an empty reply) fails only that reply.
A session-level one is recovered: when the socket under a reply is lost to a
transient failure (a drop, the in-band ``internal_error`` 1008, an idle close),
the session reconnects (multi: :class:`~providers.tts.elevenlabs_socket.SessionSocket`;
single: the reply itself) with backoff and jitter, honouring ``retry-after``,
until ``reconnect_deadline``, and the reply goes on in a new context/connection
from the piece that was being spoken (:mod:`providers.tts.elevenlabs_reply`):
the caller hears a pause and at most that sentence again. When that cannot work
the reply (and, in multi mode, every later one) raises a typed error —
``DeadlineExceeded(deadline="reconnect")`` from the last refusal, ``AuthError``,
``QuotaExceeded``, ``StreamClosed`` — for the call handler to fall back on; no
error of the session is raised into the caller's nursery. A reply whose last
``isFinal`` comes without any audio raises :class:`~providers.exceptions.EmptyReply`;
so does, in multi mode with flushes answered, one flushed piece of a reply that
got no audio before its own ``isFinal`` (``EmptyReply.piece`` / ``.text`` name
it), at that ``isFinal``: the pieces before it were heard, the rest of the reply
is stopped (its context closed). That needs a flush per piece
(``flush_each_chunk``, the default); without it, and in single mode, only a
reply with no audio at all is detected (see :mod:`~providers.tts.elevenlabs_reply`).
From a vendor that does not answer flushes, a silent piece cannot be told (the
reply settles on the audio of the others), and a reply with no audio at all
gets no ``isFinal`` to tell it either: it fails at the first-byte deadline
(``DeadlineExceeded``, ``first_byte``).

Audio is yielded as PCM16LE at :attr:`ElevenLabsSession.sample_rate` (μ-law /
A-law formats are expanded). Usage: characters of text sent (text re-sent after
a fault is billed again). Playout seconds come from byte counts
(:meth:`ElevenLabsSession.statistics`).

Deadlines (from :class:`~providers.config.ElevenLabsConfig`): ``connect``; the
first audio of a reply (or of its resumption) must come within
``first_byte_deadline`` of its text, and once all text is sent no gap between
frames may exceed it (:class:`~providers.exceptions.DeadlineExceeded`
``first_byte`` / ``idle``); ``reconnect_deadline`` bounds an outage;
``settle_deadline`` and ``close_final_deadline`` end a settled reply (above).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import trio

from providers.config import ElevenLabsConfig
from providers.exceptions import (
    DeadlineExceeded,
    EmptyReply,
    ProviderClosed,
    ProviderError,
    VendorError,
)
from providers.groups import unwrap_sole_error
from providers.reconnect import Backoff, reconnect_deadline_error, retry_after_of
from providers.tts import elevenlabs_wire as wire
from providers.tts.elevenlabs_reply import (
    Attempt,
    Failed,
    Lost,
    ReplyItem,
    ReplyRun,
    TextEnd,
    TextFailed,
    TextPiece,
)
from providers.tts.elevenlabs_socket import SessionSocket, SocketLost, recoverable
from providers.usage import UsageCounter

VENDOR: Final = wire.VENDOR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ElevenLabsStatistics:
    """Counters for one session. ``audio_seconds`` is playout time of the audio
    delivered to callers (from byte counts); ``dropped_frames`` are frames of
    cancelled replies that arrived after the cancel; ``first_audio_delays`` the
    time from a reply's first text to its first audio, per reply that got any;
    ``resumed_replies`` how many times a reply went on after a lost socket;
    ``reconnect_seconds`` each outage of the session socket (multi mode);
    ``fresh_sockets`` how many times a reply replaced the session socket rather
    than wait behind a cancelled reply the vendor may still be generating;
    ``settled_replies`` the multi-mode replies whose audio was taken as complete
    once it settled (the vendor not answering flushes), and ``unanswered_closes``
    those of them whose ``close_context`` got no ``isFinal`` within
    ``close_final_deadline`` (they ended all the same)."""

    replies: int
    cancelled: int
    characters: int
    audio_seconds: float
    dropped_frames: int
    reconnects: int
    first_audio_delays: tuple[float, ...]
    resumed_replies: int = 0
    empty_replies: int = 0
    reconnect_seconds: tuple[float, ...] = ()
    fresh_sockets: int = 0
    settled_replies: int = 0
    unanswered_closes: int = 0


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
        self._resumed = 0
        self._empty = 0
        self._characters = 0
        self._audio_bytes = 0
        self._first_audio: list[float] = []
        #: multi: the vendor answered a flush with isFinal on this session, so it
        #: answers every flush: replies end by counting finals, never by settling
        self._flush_finals = False
        self._settled = 0
        self._unanswered = 0

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def resumed_replies(self) -> int:
        """Replies resumed after a lost connection: the sentence in progress
        started over, so a piece of its audio came twice."""
        return self._resumed

    def statistics(self) -> ElevenLabsStatistics:
        return ElevenLabsStatistics(
            replies=self._replies, cancelled=self._cancelled, characters=self._characters,
            audio_seconds=self._audio_bytes / (2 * self._rate),
            dropped_frames=self.socket.dropped, reconnects=self.socket.reconnects,
            first_audio_delays=tuple(self._first_audio), resumed_replies=self._resumed,
            empty_replies=self._empty, reconnect_seconds=tuple(self.socket.reconnect_seconds),
            fresh_sockets=self.socket.replaced, settled_replies=self._settled,
            unanswered_closes=self._unanswered,
        )

    # -- the TTSSession interface ---------------------------------------------------

    async def speak(self, text_chunks: AsyncIterable[str]) -> AsyncGenerator[bytes, None]:
        """Synthesize one reply (see the module docstring); use inside ``aclosing``."""
        if self._closing:
            raise ProviderClosed("speak after aclose", vendor=VENDOR)
        if self.socket.failure is not None:
            raise self.socket.failure
        self._replies += 1
        send, receive = trio.open_memory_channel[ReplyItem](math.inf)
        run = ReplyRun(send)
        puller: trio.CancelScope = await self._nursery.start(self._pull_text, text_chunks, send)
        decoder = wire.AudioDecoder(self.config.output_format)
        multi = self.options.multi_context
        finished = False
        try:
            while True:
                item = await self._next(receive, run)
                if item is None:  # quiet: the audio settled, or its close went unanswered
                    if not run.settled:
                        await self._settle(run)
                        continue
                    self._unanswered_close()
                    finished = True
                    return
                if isinstance(item, TextPiece | TextEnd):
                    if isinstance(item, TextPiece):
                        run.reply.pieces.append(item.text)
                    else:
                        run.reply.done = True
                        if not run.reply.pieces:  # nothing to say
                            finished = True
                            return
                    await self._advance(run)
                elif isinstance(item, wire.AudioFrame):
                    attempt = run.attempt
                    if attempt is None or (multi and item.context_id != attempt.context):
                        continue
                    attempt.heard(item)
                    if not run.audio and run.first_text_at is not None:
                        self._first_audio.append(trio.current_time() - run.first_text_at)
                    run.audio = True
                    pcm = decoder.decode(item.audio)
                    self._audio_bytes += len(pcm)
                    if pcm:
                        yield pcm
                elif isinstance(item, wire.FinalFrame):
                    attempt = run.attempt
                    if attempt is None or (multi and item.context_id != attempt.context):
                        continue
                    if run.settled:  # the isFinal of a settled reply's close: all said
                        finished = True
                        return
                    if multi:
                        self._flush_finals = True  # an isFinal we did not close for
                    silent = attempt.final() if multi else None
                    if silent is not None:  # that piece's audio was dropped
                        self._empty += 1
                        finished = True  # not a cancel: stop the rest here
                        await self._stop(run)
                        raise EmptyReply(f"elevenlabs sent no audio for piece {silent} of the "
                                         "reply", vendor=VENDOR, piece=silent,
                                         text=run.reply.pieces[silent])
                    if not multi:
                        attempt.finals += 1
                    if attempt.complete(multi=multi):
                        finished = True
                        await self._close_context(run)
                        if not run.audio:
                            self._empty += 1
                            raise EmptyReply("elevenlabs ended the reply without audio",
                                             vendor=VENDOR)
                        return
                elif isinstance(item, Lost):
                    if run.attempt is not None and item.token == run.attempt.token:
                        if run.settled:  # its audio had all come: nothing to resume
                            finished = True
                            return
                        await self._restart(run, item.error)
                elif isinstance(item, TextFailed):
                    raise item.error
                elif isinstance(item, Failed):
                    finished = True  # the session failed: nothing left to close
                    raise item.error
        finally:
            puller.cancel()
            await self._release(run, finished)

    async def aclose(self) -> None:
        """End the session: ``close_socket`` (flushed replies finish), then wait up
        to ``close_deadline`` for the server's close. Idempotent."""
        self._closing = True
        await self.socket.close()

    # -- replies ----------------------------------------------------------------------

    async def _next(self, receive: trio.MemoryReceiveChannel[ReplyItem],
                    run: ReplyRun) -> ReplyItem | None:
        """The reply's next item, within the first-byte / idle deadline; None
        once it has been quiet for ``settle_deadline`` (a reply that may settle
        — :meth:`ReplyRun.may_settle`, from a vendor not seen to answer flushes)
        or, after that settled close, for ``close_final_deadline``."""
        attempt = run.attempt
        limit = self.config.first_byte_deadline
        deadline = quiet = math.inf
        if attempt is not None and attempt.text_at is not None and not attempt.audio:
            deadline = attempt.text_at + limit
        elif attempt is not None and attempt.ended:
            deadline = trio.current_time() + limit
            if run.settled:
                quiet = trio.current_time() + self.config.close_final_deadline
            elif self.options.multi_context and not self._flush_finals and run.may_settle():
                quiet = trio.current_time() + self.config.settle_deadline
        with trio.move_on_at(min(deadline, quiet)):
            return await receive.receive()
        if quiet <= deadline:
            return None
        which = "first_byte" if attempt is None or not attempt.audio else "idle"
        raise DeadlineExceeded(f"no elevenlabs audio within {limit:g} s ({which})",
                               vendor=VENDOR, deadline=which, seconds=limit)

    async def _pull_text(self, text_chunks: AsyncIterable[str],
                         out: trio.MemorySendChannel[ReplyItem], *,
                         task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        """Read the reply's text (the caller's iterator) into the reply's channel."""
        with trio.CancelScope() as scope:
            task_status.started(scope)
            iterator = aiter(text_chunks)
            try:
                async for chunk in iterator:
                    piece = wire.text_piece(chunk)
                    if piece:
                        out.send_nowait(TextPiece(piece))
                out.send_nowait(TextEnd())
            except Exception as exc:  # the caller's text source: re-raised in its own task
                out.send_nowait(TextFailed(exc))
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    with trio.CancelScope(shield=True):
                        await aclose()

    async def _advance(self, run: ReplyRun) -> None:
        """Send what the current attempt has not sent yet (starting one if needed):
        new pieces, then the final flush / EOS once the text is done."""
        if run.attempt is None:
            if self.options.multi_context and self.socket.stuck_behind_cancel():
                self.socket.replace()  # not behind a cancelled reply (elevenlabs_socket)
            self._begin(run, 0)
        attempt = run.attempt
        assert attempt is not None
        reply = run.reply
        try:
            if not self.options.multi_context and run.ws is None:
                await self._connect_single(run)
            while attempt.first_piece + attempt.sent < len(reply.pieces):
                piece = reply.pieces[attempt.first_piece + attempt.sent]
                flush = self.options.flush_each_chunk
                context = attempt.context
                settings = self.options.voice_settings if attempt.sent == 0 and context else None
                if flush and context is not None:
                    attempt.flushes += 1  # each one may earn an isFinal (module docstring)
                    attempt.flushed.append(attempt.first_piece + attempt.sent)
                await self._send(run, wire.text_message(piece, flush=flush, context_id=context,
                                                        voice_settings=settings))
                attempt.sent += 1
                attempt.awaiting_audio = True
                characters = len(piece) - 1  # the trailing space we added is not billed
                self._characters += characters
                self.usage.add_tts_characters(characters)
                if attempt.text_at is None:
                    attempt.text_at = trio.current_time()
                    run.first_text_at = run.first_text_at or attempt.text_at
            if reply.done and not attempt.ended:
                if attempt.context is not None:
                    attempt.flushes += 1
                    attempt.flushed.append(None)  # the whole reply is checked at the end
                    await self._send(run, wire.flush_message(attempt.context))
                else:
                    await self._send(run, wire.flush_message())
                    await self._send(run, wire.eos_message())
                attempt.ended = True
        except SocketLost:
            return  # the socket under this attempt is gone: its Lost item follows

    def _begin(self, run: ReplyRun, first_piece: int) -> None:
        attempt = Attempt(first_piece=first_piece)
        if self.options.multi_context:
            attempt.context = f"{self.socket.id}-{next(self._numbers)}"
            self.socket.routes[attempt.context] = run.out
        run.attempt = attempt
        run.closed = run.settled = False

    async def _send(self, run: ReplyRun, message: str) -> None:
        attempt = run.attempt
        assert attempt is not None
        if run.ws is not None:
            await self.socket.send_on(run.ws, message)
        else:
            attempt.token = await self.socket.send(message, attempt.token)

    async def _connect_single(self, run: ReplyRun) -> None:
        """Single mode: open the current attempt's connection. The reply's first
        one fails at once on any error; after a lost one, transient refusals
        back off until the reconnect deadline."""
        attempt = run.attempt
        assert attempt is not None
        token = next(run.tokens)
        while True:
            within = self.config.connect_deadline
            if run.outage is not None:
                within = min(within, run.outage.deadline - trio.current_time())
            try:
                run.ws, run.scope = await self._nursery.start(
                    self.socket.reply_connection, run.out, token, within)
            except (VendorError, DeadlineExceeded) as exc:
                if run.outage is None or not recoverable(exc):
                    raise
                await self._back_off(run, exc)
                continue
            attempt.token = token
            run.outage = None
            return

    async def _back_off(self, run: ReplyRun, error: ProviderError) -> None:
        assert run.outage is not None
        delay = run.outage.next_delay(trio.current_time(), retry_after_of(error))
        if delay is None:
            raise reconnect_deadline_error(VENDOR, self.config.reconnect_deadline) from error
        await trio.sleep(delay)

    async def _restart(self, run: ReplyRun, error: ProviderError) -> None:
        """The socket under the current attempt was lost to a transient ``error``:
        go on in a new attempt from the piece in progress."""
        attempt = run.attempt
        assert attempt is not None
        resume = run.reply.resume_point(attempt)
        run.restarts += 1
        if resume is None or run.restarts > self.options.max_reconnects:
            raise error
        self._resumed += 1
        self.socket.routes.pop(attempt.context, None)
        if not self.options.multi_context:
            if run.scope is not None:
                run.scope.cancel()
            run.ws = run.scope = None
            run.outage = Backoff(trio.current_time(), self.config.reconnect_deadline)
            await self._back_off(run, error)  # the first attempt goes at once
        self._begin(run, resume)
        await self._advance(run)

    async def _close_context(self, run: ReplyRun) -> None:
        """Multi mode: end the current attempt's context, once."""
        attempt = run.attempt
        if attempt is None or run.closed or attempt.context is None or attempt.token is None:
            return
        run.closed = True
        await self.socket.close_context(attempt.context, attempt.token)

    async def _settle(self, run: ReplyRun) -> None:
        """The attempt's audio settled: close its context (now, not at a flush:
        its audio is out) and wait for the isFinal that answers the close."""
        await self._close_context(run)
        run.settled = True
        self._settled += 1

    def _unanswered_close(self) -> None:
        self._unanswered += 1
        self.socket.reply_done()
        if self._unanswered == 1:
            log.warning("elevenlabs: no isFinal within %.1f s of close_context after a "
                        "reply's audio; such replies end at their audio (logged once per "
                        "session)", self.config.close_final_deadline)

    async def _stop(self, run: ReplyRun) -> None:
        """Multi mode: end the current attempt's context before its end, once. If
        none of its audio came, the vendor may generate it anyway: the socket
        remembers it (``SessionSocket.cancelled_unheard``) with the isFinals
        still due — one per flush not yet answered and one for the close from a
        vendor known to answer flushes, else only the close's."""
        attempt = run.attempt
        closed = run.closed
        await self._close_context(run)
        if (attempt is not None and not closed and run.closed and not attempt.audio
                and attempt.context is not None and attempt.token is not None):
            due = attempt.flushes - attempt.finals + 1 if self._flush_finals else 1
            self.socket.cancelled_unheard(attempt.context, attempt.token, due)

    async def _release(self, run: ReplyRun, finished: bool) -> None:
        """The reply is over: barge-in (not ``finished``) stops the vendor."""
        attempt = run.attempt
        if attempt is not None:
            self.socket.routes.pop(attempt.context, None)
        if finished:
            return
        self._cancelled += 1
        await self._stop(run)
        if run.ws is not None:  # single mode: a close frame, not a dropped TCP connection
            with trio.CancelScope(shield=True), trio.move_on_after(self.config.close_deadline):
                await run.ws.aclose(1000)
        if run.scope is not None:
            run.scope.cancel()


@asynccontextmanager
async def open_elevenlabs(
    config: ElevenLabsConfig, usage: UsageCounter | None = None,
    options: wire.StreamOptions | None = None,
) -> AsyncIterator[ElevenLabsSession]:
    """Open the call's TTS session (multi mode: connect now, raising the first
    connection's failure); close it on exit. A failure of the block is raised as
    itself, not wrapped in an exception group, when it is the only one."""
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

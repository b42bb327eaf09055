"""Speak: sentences → audio (cached, or streamed from the TTS) → the call's speaker.

Template sentences come from the process's ``AudioCache``; on a miss this
call's TTS session renders the sentence and the caller hears it as it comes
(the cache keeps it once whole, unless the session restarted it mid-way: a
piece would repeat); a call asking for a sentence another is rendering waits
for that render. LLM sentences stream from the TTS as they are synthesized.
Each sentence is one utterance on the speaker, so a ``mark`` follows it.
Audio is resampled to the call's rate only when the engine's rate differs (one
stateful ``dsp.StreamResampler`` per call; the engines are opened at the
call's rate, so normally it passes through).

A vendor failure on a sentence — an error after the client's own retries, or
no first audio within ``first_audio_s`` (1 s: the caller must hear something
within 2 s of speaking) — makes the rest of that reply speak through the local
engine (espeak-ng): the caller hears a plainer voice rather than silence. The
next reply tries the vendor again.

A vendor session that could not be opened at the call's start is no session
yet (``tts=None``): replies are said locally until the handler, retrying in the
background, hands one over (``vendor_opened``). A reply keeps the voice it
began with.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing

import numpy as np
import trio

from dsp import StreamResampler
from dsp.pcm import pcm16_from_bytes
from providers.exceptions import ProviderError
from providers.tts.base import TTSSession
from server.handlers.pipeline.audio_cache import AudioCache, CacheKey, OneOff
from server.handlers.pipeline.reply import Reply, Sentence
from server.logs import log_event
from server.metrics import ServerMetrics
from server.playout.speaker import Speaker

log = logging.getLogger(__name__)

LocalOpener = Callable[[], Awaitable[TTSSession]]


class TTSTooSlow(Exception):
    """No first audio within ``first_audio_s``."""


async def _one(text: str) -> AsyncIterator[str]:
    yield text + " "


class Voice:
    """One call's voice (module docstring)."""

    def __init__(self, tts: TTSSession | None, engine: str, voice: str, sample_rate: int,
                 speaker: Speaker, cache: AudioCache | None, metrics: ServerMetrics,
                 local: LocalOpener, *, first_audio_s: float = 1.0) -> None:
        self._primary = tts
        self._engine = engine
        self._voice = voice
        self._rate = sample_rate
        self._speaker = speaker
        self._cache = cache
        self._metrics = metrics
        self._local_opener = local
        self._first_audio_s = first_audio_s
        self._local: TTSSession | None = None
        self._resamplers: dict[int, StreamResampler] = {}

    async def say(self, reply: Reply, text: str, *, cached: bool) -> None:
        """Queue one sentence of ``reply``; returns once all its audio is queued."""
        sentence = Sentence(text, reply.next_utterance_id())
        reply.marks.setdefault("tts_request", trio.current_time())
        if self._primary is None:  # the vendor is not open (yet)
            reply.tts_fallback = True
        if not reply.tts_fallback:
            assert self._primary is not None
            try:
                await self._say_with(self._primary, self._engine, reply, sentence,
                                     cached=cached)
                return
            except (ProviderError, TTSTooSlow) as exc:
                if self._engine == "local":
                    raise
                self._metrics.component_errors.labels(component="tts").inc()
                self._metrics.fallbacks.labels(component="tts").inc()
                log_event(log, logging.WARNING, "tts failed; this reply goes on in the local "
                          "voice", engine=self._engine, error=f"{type(exc).__name__}: {exc}")
                reply.tts_fallback = True
        local = await self.local_session()
        await self._say_with(local, "local", reply, sentence, cached=cached)

    def vendor_opened(self, tts: TTSSession | None) -> None:
        """The vendor session replies from the next one on speak with (``None``:
        none any more)."""
        self._primary = tts

    def _play(self, reply: Reply, sentence: Sentence, pcm: bytes, *, final: bool) -> None:
        """Queue a sentence's audio; the sentence joins ``reply.sentences`` with its
        first audio, so every sentence there is an utterance the speaker knows (one
        superseded while it waited for the TTS was never said). Nothing is queued
        once the reply is cut: the speaker was cleared of it, and audio its task
        still holds (delivered with the cut, before its cancellation reaches it)
        is not to be said."""
        if reply.cut:
            return
        if not reply.sentences or reply.sentences[-1] is not sentence:
            reply.sentences.append(sentence)
        self._speaker.play(pcm, utterance_id=sentence.utterance_id, final=final)

    async def _say_with(self, tts: TTSSession, engine: str, reply: Reply, sentence: Sentence,
                        *, cached: bool) -> None:
        text = sentence.text
        vendor = engine != "local"
        deadline = trio.current_time() + self._first_audio_s if vendor else math.inf
        if cached and self._cache is not None:
            voice = self._voice if engine == self._engine else "local"
            key = CacheKey(engine, voice, self._rate, text)
            with self._cache.claim(key) as claim:
                if claim is not None:  # the first to need it: heard as it renders
                    resumed = _resumed_replies(tts)
                    audio = await self._stream(tts, engine, reply, sentence, deadline)
                    if _resumed_replies(tts) == resumed:  # else a piece repeats
                        claim.keep(audio)
                    return
            with trio.move_on_at(deadline) as waited:
                audio = await self._cache.get(key, lambda: self._render(tts, text))
            if waited.cancelled_caught:
                raise TTSTooSlow
            reply.marks.setdefault("tts_first_audio", trio.current_time())
            await reply.released()
            self._play(reply, sentence, audio, final=True)
            return
        await self._stream(tts, engine, reply, sentence, deadline)

    async def _stream(self, tts: TTSSession, engine: str, reply: Reply, sentence: Sentence,
                      deadline: float) -> bytes:
        """Play ``sentence`` as ``tts`` synthesizes it; its whole audio (at the
        call's rate) once all of it is queued. ``TTSTooSlow`` when no audio came
        by ``deadline``."""
        parts: list[bytes] = []
        resampler = self._resampler(tts)  # the call's stream, from a clean start
        with trio.CancelScope(deadline=deadline) as first:
            async with aclosing(tts.speak(_one(sentence.text))) as chunks:
                async for chunk in chunks:
                    pcm = _to_call_rate(resampler, chunk)
                    if pcm:
                        if not parts:
                            if first.cancel_called:
                                break  # it came as the deadline passed: too late
                            first.deadline = math.inf
                        reply.marks.setdefault("tts_first_audio", trio.current_time())
                        await reply.released()
                        self._play(reply, sentence, pcm, final=False)
                        parts.append(pcm)
        if first.cancel_called and not parts:
            raise TTSTooSlow
        tail = _flush(resampler)
        await reply.released()
        self._play(reply, sentence, tail, final=True)
        parts.append(tail)
        if not any(parts):
            log_event(log, logging.WARNING, "tts gave no audio for a sentence", engine=engine)
        return b"".join(parts)

    async def prefetch(self, text: str) -> None:
        """Render a template sentence into the cache (errors only logged: it is a
        head start, the sentence will be rendered again when it is said)."""
        primary = self._primary
        if self._cache is None or primary is None:
            return
        key = CacheKey(self._engine, self._voice, self._rate, text)
        if self._cache.peek(key) is not None:
            return
        try:
            await self._cache.get(key, lambda: self._render(primary, text))
        except ProviderError as exc:
            log_event(log, logging.INFO, "prefetch failed", error=type(exc).__name__)

    async def _render(self, tts: TTSSession, text: str) -> bytes:
        return await render_sentence(tts, text, self._rate)

    def _resampler(self, tts: TTSSession) -> StreamResampler | None:
        """The call's resampling stream from ``tts``'s rate, reset: a sentence
        cut mid-way must not leave its samples in front of the next one."""
        if tts.sample_rate == self._rate:
            return None
        resampler = self._resamplers.get(tts.sample_rate)
        if resampler is None:
            resampler = self._resamplers[tts.sample_rate] = StreamResampler(
                tts.sample_rate, self._rate)
        else:
            resampler.reset()
        return resampler

    async def local_session(self) -> TTSSession:
        """The call's local session (opened on first use)."""
        if self._local is None:
            self._local = await self._local_opener()
        return self._local


async def render_sentence(tts: TTSSession, text: str, sample_rate: int) -> bytes:
    """One template sentence's whole audio at ``sample_rate``, for the audio
    cache. Raises ``OneOff`` (with the audio) when the session restarted a
    reply meanwhile: a piece of it repeats, so it is not to be kept."""
    # A render runs beside live speech (prefetch) or before the call (announce)
    # and may be abandoned, so it resamples with a stream of its own.
    resampler = None if tts.sample_rate == sample_rate else \
        StreamResampler(tts.sample_rate, sample_rate)
    resumed = _resumed_replies(tts)
    parts = []
    async with aclosing(tts.speak(_one(text))) as chunks:
        async for chunk in chunks:
            parts.append(_to_call_rate(resampler, chunk))
    parts.append(_flush(resampler))
    audio = b"".join(parts)
    if _resumed_replies(tts) != resumed:  # a sentence restarted meanwhile: not kept
        raise OneOff(audio)
    return audio


def _to_call_rate(resampler: StreamResampler | None, chunk: bytes) -> bytes:
    if resampler is None:
        return chunk
    return resampler.process(pcm16_from_bytes(chunk)).tobytes()


def _flush(resampler: StreamResampler | None) -> bytes:
    """The resampler's held-back tail at a sentence's end."""
    if resampler is None:
        return b""
    return np.asarray(resampler.flush()).tobytes()


def _resumed_replies(tts: TTSSession) -> int:
    """Replies the session resumed after a lost connection (their audio repeats a
    piece); sessions that never resume (local engines) have none."""
    return int(getattr(tts, "resumed_replies", 0))

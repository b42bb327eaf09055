"""Speak: sentences → audio (cached, or streamed from the TTS) → the call's speaker.

Template sentences come from the process's ``AudioCache`` (rendered by this
call's TTS session on a miss); LLM sentences stream from the TTS as they are
synthesized. Each sentence is one utterance on the speaker, so a ``mark``
follows it. Audio is resampled to the call's rate only when the engine's rate
differs (one stateful ``dsp.StreamResampler`` per call; the engines are opened
at the call's rate, so normally it passes through).

A vendor failure on a sentence (after the client's own retries) makes the rest
of that reply speak through the local engine (espeak-ng): the caller hears a
plainer voice rather than silence. The next reply tries the vendor again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing

import numpy as np
import trio

from dsp import StreamResampler
from dsp.pcm import pcm16_from_bytes
from providers.exceptions import ProviderError
from providers.tts.base import TTSSession
from server.handlers.pipeline.audio_cache import AudioCache, CacheKey
from server.handlers.pipeline.reply import Reply, Sentence
from server.logs import log_event
from server.metrics import ServerMetrics
from server.playout.speaker import Speaker

log = logging.getLogger(__name__)

LocalOpener = Callable[[], Awaitable[TTSSession]]


async def _one(text: str) -> AsyncIterator[str]:
    yield text + " "


class Voice:
    """One call's voice (module docstring)."""

    def __init__(self, tts: TTSSession, engine: str, voice: str, sample_rate: int,
                 speaker: Speaker, cache: AudioCache | None, metrics: ServerMetrics,
                 local: LocalOpener) -> None:
        self._primary = tts
        self._engine = engine
        self._voice = voice
        self._rate = sample_rate
        self._speaker = speaker
        self._cache = cache
        self._metrics = metrics
        self._local_opener = local
        self._local: TTSSession | None = None
        self._resamplers: dict[int, StreamResampler] = {}

    async def say(self, reply: Reply, text: str, *, cached: bool) -> None:
        """Queue one sentence of ``reply``; returns once all its audio is queued."""
        uid = reply.next_utterance_id()
        reply.sentences.append(Sentence(text, uid))
        reply.marks.setdefault("tts_request", trio.current_time())
        if not reply.tts_fallback:
            try:
                await self._say_with(self._primary, self._engine, reply, text, uid,
                                     cached=cached)
                return
            except ProviderError as exc:
                if self._engine == "local":
                    raise
                self._metrics.component_errors.labels(component="tts").inc()
                self._metrics.fallbacks.labels(component="tts").inc()
                log_event(log, logging.WARNING, "tts failed; this reply goes on in the local "
                          "voice", engine=self._engine, error=f"{type(exc).__name__}: {exc}")
                reply.tts_fallback = True
        local = await self._local_session()
        await self._say_with(local, "local", reply, text, uid, cached=cached)

    async def _say_with(self, tts: TTSSession, engine: str, reply: Reply, text: str, uid: str,
                        *, cached: bool) -> None:
        if cached and self._cache is not None:
            voice = self._voice if engine == self._engine else "local"
            key = CacheKey(engine, voice, self._rate, text)
            audio = await self._cache.get(key, lambda: self._render(tts, text))
            reply.marks.setdefault("tts_first_audio", trio.current_time())
            self._speaker.play(audio, utterance_id=uid)
            return
        queued = False
        async with aclosing(tts.speak(_one(text))) as chunks:
            async for chunk in chunks:
                pcm = self._to_call_rate(tts, chunk)
                if pcm:
                    reply.marks.setdefault("tts_first_audio", trio.current_time())
                    self._speaker.play(pcm, utterance_id=uid, final=False)
                    queued = True
        tail = self._flush(tts)
        self._speaker.play(tail, utterance_id=uid, final=True)
        if not queued and not tail:
            log_event(log, logging.WARNING, "tts gave no audio for a sentence", engine=engine)

    async def _render(self, tts: TTSSession, text: str) -> bytes:
        parts = []
        async with aclosing(tts.speak(_one(text))) as chunks:
            async for chunk in chunks:
                parts.append(self._to_call_rate(tts, chunk))
        parts.append(self._flush(tts))
        return b"".join(parts)

    def _resampler(self, tts: TTSSession) -> StreamResampler | None:
        if tts.sample_rate == self._rate:
            return None
        resampler = self._resamplers.get(tts.sample_rate)
        if resampler is None:
            resampler = self._resamplers[tts.sample_rate] = StreamResampler(
                tts.sample_rate, self._rate)
        return resampler

    def _to_call_rate(self, tts: TTSSession, chunk: bytes) -> bytes:
        resampler = self._resampler(tts)
        if resampler is None:
            return chunk
        return resampler.process(pcm16_from_bytes(chunk)).tobytes()

    def _flush(self, tts: TTSSession) -> bytes:
        """The resampler's held-back tail at a sentence's end (then it starts over)."""
        resampler = self._resampler(tts)
        if resampler is None:
            return b""
        tail = np.asarray(resampler.flush()).tobytes()
        resampler.reset()
        return tail

    async def _local_session(self) -> TTSSession:
        if self._local is None:
            self._local = await self._local_opener()
        return self._local

"""Offline TTS session over espeak-ng (the embedded default: no key, no network).

``open_local_tts(config)`` yields a :class:`LocalTTSSession` implementing
:class:`providers.tts.base.TTSSession`. Each text chunk of a reply is synthesized
in a worker thread (``trio.to_thread.run_sync``) so the event loop never blocks,
through one process-wide :class:`trio.CapacityLimiter` of one thread: espeak-ng
is not reentrant and :mod:`providers.local.espeak` serializes it with a lock
anyway, so more threads would only park on that lock where trio cannot cancel
them, while waiting for the limiter is cancellable. Concurrent calls therefore
queue for the engine; at ~1000x real time one sentence holds it for a few ms
(``python -m bench local_engines`` measures the contention).

The engine's 22,050 Hz output is resampled to the call's rate with one
:class:`dsp.StreamResampler` per session: continuous within a reply, flushed at
the end of each reply (so its tail is spoken) and reset when a reply is cancelled
(a new reply is a new signal). Cancelling a reply (barge-in) returns at once: the
worker thread is abandoned with its stop flag set, so espeak aborts at its next
audio piece and the thread ends within about a millisecond.

Local synthesis costs nothing, so usage (billed TTS characters) is not counted.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import trio

from dsp import StreamResampler
from dsp.resample import Quality
from providers.exceptions import ProviderClosed
from providers.local import espeak

VENDOR: Final = espeak.VENDOR

_ENGINE_LIMITER: Final = trio.lowlevel.RunVar[trio.CapacityLimiter]("espeak_limiter")


def engine_limiter() -> trio.CapacityLimiter:
    """The limiter in front of espeak-ng (one thread), shared by every session of
    this trio run (a ``RunVar``, like trio's own default thread limiter)."""
    try:
        return _ENGINE_LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(1)
        _ENGINE_LIMITER.set(limiter)
        return limiter


@dataclass(frozen=True)
class LocalTTSConfig:
    """``sample_rate``: the call's rate; ``voice``: an espeak-ng voice (``en-us``,
    ``en``, ``hi``; there is no ``en-in``); ``rate_wpm``: speaking rate."""

    sample_rate: int = 8000
    voice: str = "en-us"
    rate_wpm: int = 165
    resample_quality: Quality = "LQ"


@dataclass(frozen=True)
class LocalTTSStatistics:
    """``synth_seconds``: wall time of the worker threads (queueing for the engine
    included); ``first_audio_delays``: first text → first audio, per reply."""

    replies: int
    cancelled: int
    audio_seconds: float
    synth_seconds: float
    first_audio_delays: tuple[float, ...]


class LocalTTSSession:
    """A TTS session on the embedded engine; created by :func:`open_local_tts`."""

    def __init__(self, config: LocalTTSConfig, limiter: trio.CapacityLimiter) -> None:
        self.config = config
        self._limiter = limiter
        self._resampler = StreamResampler(espeak.sample_rate(), config.sample_rate,
                                          config.resample_quality)
        self._closed = False
        self._replies = 0
        self._cancelled = 0
        self._samples = 0
        self._synth_seconds = 0.0
        self._first_audio: list[float] = []

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def statistics(self) -> LocalTTSStatistics:
        return LocalTTSStatistics(
            replies=self._replies, cancelled=self._cancelled,
            audio_seconds=self._samples / self.config.sample_rate,
            synth_seconds=self._synth_seconds, first_audio_delays=tuple(self._first_audio),
        )

    async def speak(self, text_chunks: AsyncIterable[str]) -> AsyncGenerator[bytes, None]:
        """Speak one reply; yields PCM16LE pieces (≤ ~100 ms each) per sentence."""
        if self._closed:
            raise ProviderClosed("speak after aclose", vendor=VENDOR)
        self._replies += 1
        finished = False
        first_text_at: float | None = None
        iterator = aiter(text_chunks)
        try:
            async for text in iterator:
                if not text.strip():
                    continue
                if first_text_at is None:
                    first_text_at = trio.current_time()
                for piece in await self._synthesize(text):
                    out = self._resampler.process(piece)
                    if out.size:
                        if len(self._first_audio) < self._replies:
                            self._first_audio.append(trio.current_time() - first_text_at)
                        self._samples += out.size
                        yield out.tobytes()
            tail = self._resampler.flush()
            finished = True
            if tail.size:
                self._samples += tail.size
                yield tail.tobytes()
        finally:
            if not finished:
                self._cancelled += 1
            self._resampler.reset()
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:  # release the producer (e.g. an LLM stream) now
                with trio.CancelScope(shield=True):
                    await aclose()

    async def _synthesize(self, text: str) -> list[npt.NDArray[np.int16]]:
        """The engine's pieces for ``text`` (22,050 Hz), from a worker thread."""
        pieces: list[npt.NDArray[np.int16]] = []
        stop = threading.Event()
        config = self.config

        def work() -> None:
            espeak.synthesize_to(text, pieces.append, voice=config.voice,
                                 rate_wpm=config.rate_wpm, should_stop=stop.is_set)

        start = trio.current_time()
        try:
            await trio.to_thread.run_sync(work, limiter=self._limiter, abandon_on_cancel=True)
        finally:
            stop.set()  # an abandoned (cancelled) synthesis aborts at its next piece
            self._synth_seconds += trio.current_time() - start
        return pieces

    async def aclose(self) -> None:
        """Nothing to release (the engine is process-wide). Idempotent."""
        self._closed = True


@asynccontextmanager
async def open_local_tts(
    config: LocalTTSConfig | None = None, *, limiter: trio.CapacityLimiter | None = None,
) -> AsyncIterator[LocalTTSSession]:
    """A local TTS session for one call; loads the engine on first use (in a worker
    thread, so the loop does not stall on it)."""
    config = config or LocalTTSConfig()
    chosen = limiter or engine_limiter()
    await trio.to_thread.run_sync(espeak.sample_rate, limiter=chosen)
    session = LocalTTSSession(config, chosen)
    try:
        yield session
    finally:
        await session.aclose()

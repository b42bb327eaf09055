"""Offline streaming STT over pocketsphinx (the embedded default: no key, no network).

``open_local_stt(config)`` yields a :class:`LocalSTTStream` implementing
:class:`providers.stt.base.STTStream` for 8 kHz telephone audio (PCM16 or μ-law).

Pipeline per stream: decode → :class:`dsp.EnergyVAD` (our tuned telephone
endpointer) at the call's rate → :class:`dsp.StreamResampler` to 16 kHz (the only
rate the bundled ``en-us`` acoustic model supports; its 8 kHz configuration is
unusable) → a pocketsphinx ``Decoder`` of its own. An utterance starts at the
VAD's ``dsp.SpeechStarted.t`` (pre-roll included, from a one-second history of 16 kHz
audio) and ends at ``SpeechEnded``: ``Final(speech_final=True)`` with the words,
or :class:`~providers.stt.base.Endpoint` when nothing was recognised. While in
speech an :class:`~providers.stt.base.Interim` goes out every
``interim_interval`` s of audio when the partial hypothesis changed.
:meth:`LocalSTTStream.finalize` ends the current utterance at once
(``from_finalize=True``). Times are seconds of call audio.

Search (what the decoder may hear), chosen per stream and switchable between
utterances with :meth:`LocalSTTStream.expect`:

- the bundled general English trigram LM (default; weak on synthetic and
  telephone speech, see ``bench/results/local_engines.md``);
- ``domain_sentences``: a trigram LM built in-process from the playbook's
  expected replies (``pocketsphinx.lm.ArpaBoLM``), for open questions;
- ``phrases``: a JSGF grammar of the replies a closed question allows
  (yes/no, pick one), by far the most accurate when the caller stays on script.

Words missing from the pronunciation dictionary (to which lakh, crore and EMI
are added: ``local_decoders.EXTRA_WORDS``) are dropped from LMs, and phrases
containing one are left out of grammars.

Measured (``python -m bench local_engines``, 62 espeak-ng replies at 8 kHz):
through one stream per call with a grammar before closed questions and the
domain LM before open ones, WER is 3 % on closed and 36 % on open replies
(RTF ~0.05); a fresh stream per reply, its cepstral mean not adapted yet, does
about as well (5 % / 36 %) since the mean starts where a call's settles
(``TELEPHONE_CMN``); the bundled general LM gives 89 % (RTF ~0.45). The
playbook's phrases, over a hissing line, through one grammar of them all: 1 %,
as a call's first words as well as later (139 and 138 of 140 exact).

Every decoder call runs in a worker thread (``trio.to_thread.run_sync``) through
a per-run limiter of one thread per CPU; each stream's calls are sequential.
A stream takes a ready decoder from the process's pool and gives it back at the
end (``providers.stt.local_decoders``): loading one takes 0.15-0.35 s with the
GIL held, which would stop the event loop of every call for as long.
Local recognition costs nothing, so usage (billed STT seconds) is not counted.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import trio

import dsp
from providers.exceptions import LocalEngineError
from providers.stt.base import Interim, SpeechDetected
from providers.stt.local_decoders import (
    DECODERS,
    MODEL_RATE,
    TELEPHONE_CMN,
    VENDOR,
    DecoderKind,
    DecoderPool,
    Engine,
    jsgf_for,
    normalise,
)
from providers.stt.offline import HISTORY_SECONDS, AudioHistory, OfflineSTTStream, open_worker

__all__ = ["MODEL_RATE", "TELEPHONE_CMN", "VENDOR", "LocalSTTConfig", "LocalSTTStream",
           "decoder_limiter", "jsgf_for", "normalise", "open_local_stt", "prewarm_local_stt"]

_LIMITER: Final = trio.lowlevel.RunVar[trio.CapacityLimiter]("pocketsphinx_limiter")


def decoder_limiter() -> trio.CapacityLimiter:
    """Worker threads for decoding, shared by the streams of this trio run."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(os.cpu_count() or 1)
        _LIMITER.set(limiter)
        return limiter


@dataclass(frozen=True)
class LocalSTTConfig:
    """See the module docstring. ``second_pass`` enables pocketsphinx's flat-lexicon
    and best-path passes at the end of each utterance of a language-model search
    (slower end, fewer errors); grammar searches never take it (it makes more
    errors there, ``providers.stt.local_decoders``)."""

    sample_rate: int = 8000
    encoding: str = "linear16"  # or "mulaw"
    phrases: tuple[str, ...] = ()
    domain_sentences: tuple[str, ...] = ()
    second_pass: bool = True
    beam: float = 1e-80
    interim_interval: float = 0.3
    # 500 ms of pre-roll gives the decoder the onset the energy VAD is late for and
    # the leading silence it expects (measured: more closed answers recognised);
    # 400 ms of hangover keeps short pauses inside one utterance.
    vad: dsp.VADConfig = field(default_factory=lambda: dsp.VADConfig(
        min_silence_ms=400, pre_roll_ms=500))

    def __post_init__(self) -> None:
        if self.encoding not in ("linear16", "mulaw"):
            raise ValueError(f"encoding must be linear16 or mulaw, got {self.encoding!r}")

    @property
    def decoder_kind(self) -> DecoderKind:
        """The decoder this stream needs: the general LM only when it brings no
        search of its own."""
        return DecoderKind(self.beam, self.second_pass,
                           general_lm=not (self.phrases or self.domain_sentences))


class LocalSTTStream(OfflineSTTStream):
    """An open local recognition stream; created by :func:`open_local_stt` only."""

    vendor = VENDOR

    def __init__(self, config: LocalSTTConfig, engine: Engine,
                 limiter: trio.CapacityLimiter) -> None:
        super().__init__(config.encoding, config.sample_rate, config.vad, limiter)
        self.config = config
        self._engine = engine
        # HQ, not the call path's LQ: LQ is -8 dB at 3.4 kHz, and the acoustic model
        # needs every bit of the band it gets (measured: fewer answers recognised).
        self._resampler = dsp.StreamResampler(config.sample_rate, MODEL_RATE, "HQ")
        self._history = AudioHistory()  # recent 16 kHz audio
        self._fed_to = 0  # 16 kHz sample up to which the decoder has the utterance
        self._expected: tuple[str, ...] | None = None  # None: the base search
        self._next_interim = 0.0
        self._last_interim = ""

    def expect(self, phrases: Sequence[str] | None) -> None:
        """From the next utterance on, listen for one of ``phrases`` (a grammar for a
        closed question), or with ``None`` go back to the stream's base search. The
        grammar is built (once per phrase set) in the worker thread at that
        utterance's start, never while the decoder is busy; a set with no word in
        the dictionary fails the stream there with ``LocalEngineError``."""
        self._expected = None if phrases is None else tuple(phrases)

    # -- the worker ---------------------------------------------------------------

    async def _audio(self, pcm: npt.NDArray[np.int16]) -> None:
        history = self._history
        history.append(self._resampler.process(pcm))
        # VAD events may fall anywhere in a chunk of any size: the decoder gets the
        # 16 kHz audio between consecutive events, by absolute sample index.
        for event in self._vad.process(pcm):
            if isinstance(event, dsp.SpeechStarted):
                self._events_send.send_nowait(SpeechDetected(event.t))
                self._fed_to = max(history.start, round(event.t * MODEL_RATE))
                await self._call(self._engine.start, self._expected, b"")
                self._utterance_start = event.t
                self._next_interim = event.t + self.config.interim_interval
                self._last_interim = ""
            elif self._utterance_start is not None:
                await self._end_utterance(event.t, finalize=False)
        if self._utterance_start is not None and self._fed_to < history.end:
            now = self._samples / self.config.sample_rate
            want = now >= self._next_interim
            partial = await self._call(self._engine.feed, self._take(history.end), want)
            if want:
                self._next_interim = now + self.config.interim_interval
                if partial and partial != self._last_interim:
                    self._last_interim = partial
                    self._events_send.send_nowait(Interim(partial))
        history.keep_last(int(HISTORY_SECONDS * MODEL_RATE))

    def _take(self, until: int) -> bytes:
        """16 kHz audio from the decoder's position up to ``until`` (absolute index)."""
        pcm = self._history.between(self._fed_to, until)
        self._fed_to = max(self._fed_to, min(until, self._history.end))
        return pcm.tobytes()

    async def _words(self, start: float, end: float | None) -> str:
        """The decoder's words, given the audio up to ``end`` (all it has when None)."""
        until = self._history.end if end is None else round(end * MODEL_RATE)
        text: str = await self._call(self._engine.end, self._take(until))
        return text

    async def _call(self, function: Any, *args: Any) -> Any:
        start = trio.current_time()
        try:
            return await trio.to_thread.run_sync(function, *args, limiter=self._limiter)
        except RuntimeError as exc:
            self._engine.broken = True
            raise LocalEngineError(f"pocketsphinx failed: {exc}", vendor=VENDOR) from exc
        finally:
            self.decode_seconds += trio.current_time() - start


@asynccontextmanager
async def open_local_stt(
    config: LocalSTTConfig | None = None, *, limiter: trio.CapacityLimiter | None = None,
    pool: DecoderPool = DECODERS,
) -> AsyncIterator[LocalSTTStream]:
    """Take a decoder from ``pool`` (loading one in a worker thread when none is
    idle) and yield the stream; on exit, finish the audio already sent, end
    ``events()`` and give the decoder back."""
    config = config or LocalSTTConfig()
    chosen = limiter or decoder_limiter()
    engine = await pool.acquire(config.decoder_kind, config.phrases, config.domain_sentences,
                                chosen)
    try:
        async with open_worker(LocalSTTStream(config, engine, chosen)) as stream:
            yield stream
    finally:
        pool.release(engine)


async def prewarm_local_stt(config: LocalSTTConfig, count: int, *,
                            pool: DecoderPool = DECODERS) -> None:
    """Load decoders for streams like ``config`` until ``count`` are idle: before
    serving, as each load stops the event loop for 0.15-0.35 s."""
    await pool.fill(config.decoder_kind, count, decoder_limiter())

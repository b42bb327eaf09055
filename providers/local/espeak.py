"""Synchronous espeak-ng speech synthesis through ctypes (the ``espeakng-loader``
wheel ships the library and its data; no system package needed).

espeak-ng keeps global state and is not reentrant, so every call into it runs
under one process-wide ``threading.Lock``: two threads synthesizing at once are
served one after the other. The engine is initialised lazily on first use in
``AUDIO_OUTPUT_SYNCHRONOUS`` mode: ``espeak_Synth`` blocks the calling thread and
hands audio to our callback in pieces as it is produced, at the engine's own rate
(22,050 Hz for the bundled voices). Callers on an event loop run these functions in
a worker thread (e.g. ``trio.to_thread.run_sync``) and pass ``on_audio`` to stream.

espeak-ng also carries state from one synthesis into the next, in statics of its
own that no API call resets (the pitch flutter's position, the glottal phase, the
noise generator): the same text comes out a few samples longer or shorter, its
noise different, depending on everything said before in the process. Pass
``fresh=True`` where the audio must depend on the text, voice and rate alone
(a scripted caller's speech that a recognizer must hear the same in every run):
the library is unloaded and loaded anew first (measured: 21 ms against 3 ms for
a four-word line). The live TTS does not: its audio need not replay exactly.

Voices: names from the bundled data such as ``en``, ``en-us``, ``hi`` (there is
no ``en-in``). Speaking rate is words per minute (espeak accepts 80–450).
"""

from __future__ import annotations

import _ctypes
import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import espeakng_loader
import numpy as np
import numpy.typing as npt

from providers.exceptions import LocalEngineError

VENDOR: Final = "espeak-ng"
MIN_RATE_WPM: Final = 80
MAX_RATE_WPM: Final = 450

_AUDIO_OUTPUT_SYNCHRONOUS: Final = 2
_ESPEAK_RATE: Final = 1
_POS_CHARACTER: Final = 1
_CHARS_UTF8: Final = 1
_EE_OK: Final = 0
_CONTINUE: Final = 0
_ABORT: Final = 1

# int callback(short *wav, int numsamples, espeak_EVENT *events)
AudioSink = Callable[[npt.NDArray[np.int16]], None]
"""Receives each piece of int16 audio as espeak produces it."""

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass
class _Job:
    """The synthesis in progress; the callback writes into it (lock held)."""

    on_audio: AudioSink
    should_stop: Callable[[], bool] | None
    aborted: bool = False
    error: BaseException | None = None


class _Engine:
    """The process-wide espeak-ng instance. Use only with ``_LOCK`` held."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise LocalEngineError(f"cannot load espeak-ng: {exc}", vendor=VENDOR) from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        # buflength 100 ms: the callback gets audio in pieces of at most that much.
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 100, data_path.encode(), 0)
        if rate <= 0:
            raise LocalEngineError(f"espeak_Initialize failed ({rate})", vendor=VENDOR)
        self.lib = lib
        self.sample_rate: int = rate
        self.job: _Job | None = None
        self._voice: str | None = None
        self._callback = _SynthCallback(self._on_synth)  # kept alive with the engine
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: ctypes._Pointer[ctypes.c_short], numsamples: int,
                  _events: int | None) -> int:
        job = self.job
        if job is None:
            return _ABORT
        # Exceptions must not escape into C: keep the first, abort, re-raise later.
        try:
            if job.should_stop is not None and job.should_stop():
                job.aborted = True
                return _ABORT
            if numsamples > 0 and wav:
                # Copy: espeak reuses its buffer once we return.
                samples = np.ctypeslib.as_array(wav, shape=(numsamples,)).astype(np.int16)
                job.on_audio(samples)
        except BaseException as exc:  # re-raised by synthesize_to after espeak returns
            job.error = exc
            return _ABORT
        return _CONTINUE

    def configure(self, voice: str, rate_wpm: int) -> None:
        if voice != self._voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                self._voice = None
                raise LocalEngineError(f"unknown espeak-ng voice {voice!r}", vendor=VENDOR)
            self._voice = voice
        if self.lib.espeak_SetParameter(_ESPEAK_RATE, rate_wpm, 0) != _EE_OK:
            raise LocalEngineError(f"cannot set rate {rate_wpm}", vendor=VENDOR)

    def synth(self, text: bytes) -> int:
        return int(self.lib.espeak_Synth(
            text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        ))

    def unload(self) -> None:
        """Terminate the engine and unload the library: loaded again, its statics
        start from their initial values (this is the only handle on it)."""
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)


_LOCK: Final = threading.Lock()
_engine: _Engine | None = None


def _get_engine(*, fresh: bool = False) -> _Engine:
    global _engine
    if fresh and _engine is not None:
        engine, _engine = _engine, None
        engine.unload()
    if _engine is None:
        _engine = _Engine()
    return _engine


def sample_rate() -> int:
    """The engine's output rate in Hz (initialises the engine if needed)."""
    with _LOCK:
        return _get_engine().sample_rate


def synthesize_to(
    text: str,
    on_audio: AudioSink,
    *,
    voice: str = "en-us",
    rate_wpm: int = 160,
    should_stop: Callable[[], bool] | None = None,
    fresh: bool = False,
) -> bool:
    """Speak ``text``, calling ``on_audio`` with each int16 piece (at
    ``sample_rate()``) as espeak produces it, in this thread, lock held.

    ``should_stop`` is polled before each piece; when it returns True synthesis
    aborts and the function returns False (True = spoke everything). An exception
    raised by either callable aborts synthesis and propagates from here. Empty or
    blank text produces no audio and returns True. ``fresh``: from a newly loaded
    engine, so the audio depends on the arguments alone (module docstring).
    """
    if not MIN_RATE_WPM <= rate_wpm <= MAX_RATE_WPM:
        raise LocalEngineError(
            f"rate_wpm must be in {MIN_RATE_WPM}..{MAX_RATE_WPM}, got {rate_wpm}", vendor=VENDOR
        )
    if "\x00" in text:
        raise LocalEngineError("text contains a NUL character", vendor=VENDOR)
    if not text.strip():
        return True
    job = _Job(on_audio=on_audio, should_stop=should_stop)
    with _LOCK:
        engine = _get_engine(fresh=fresh)
        engine.configure(voice, rate_wpm)
        engine.job = job
        try:
            status = engine.synth(text.encode("utf-8"))
        finally:
            engine.job = None
    if job.error is not None:
        raise job.error
    if job.aborted:
        return False
    if status != _EE_OK:
        raise LocalEngineError(f"espeak_Synth failed ({status})", vendor=VENDOR)
    return True


def synthesize(text: str, *, voice: str = "en-us", rate_wpm: int = 160,
               should_stop: Callable[[], bool] | None = None,
               fresh: bool = False) -> tuple[npt.NDArray[np.int16], int]:
    """Speak ``text`` whole: ``(int16 samples, sample_rate)``. If ``should_stop``
    aborts it, the audio produced so far is returned. ``fresh``: as for
    ``synthesize_to``."""
    pieces: list[npt.NDArray[np.int16]] = []
    synthesize_to(text, pieces.append, voice=voice, rate_wpm=rate_wpm, should_stop=should_stop,
                  fresh=fresh)
    rate = sample_rate()
    if not pieces:
        return np.zeros(0, dtype=np.int16), rate
    return np.concatenate(pieces), rate

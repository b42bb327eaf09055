"""Energy voice-activity detector and endpointer for telephone audio.

How it decides
--------------
The stream is cut into frames of ``frame_ms`` (frame ``k`` covers samples
``[k*L, (k+1)*L)``, ``L = sample_rate * frame_ms / 1000``); frame boundaries depend
only on the sample count, never on how the caller chunks the audio. Each frame's
energy ``e`` (dBFS, ``dsp.energy``) is compared with an adaptive noise model:

* ``floor`` (dB): an exponential average (``floor_alpha`` per frame) of the frames
  judged not voiced; while in speech only frames within ``spread`` of the floor
  count, so weak speech does not drag it up. Voiced frames raise it by at most
  ``floor_rise_db_per_s``. Minimum statistics bound it from below: once
  ``min_window_ms`` of audio has been seen, the floor is never below the quietest
  frame of the last window, so a louder background (or a stream that starts in
  noise) is absorbed within one window instead of reading as endless speech.
* ``spread`` (dB): the mean depth of the frames below the floor, i.e. how much the
  background fluctuates. Stationary noise (hiss, hum) has ~0.5 dB, a crowd 3 dB+.
* a frame is *voiced* when ``e >= floor + margin + spread_factor * spread`` and
  ``e >= min_level_dbfs``, with ``margin = start_margin_db`` while idle and the
  lower ``stay_margin_db`` while in speech (hysteresis keeps soft word endings);
* ``min_speech_ms`` of consecutive voiced frames start speech; ``min_silence_ms``
  of consecutive unvoiced frames end it (the hangover).

The defaults were tuned with ``python -m bench vad`` (espeak-ng speech at 8 kHz in
white noise and 12-talker babble, 20/10/5 dB) on one seed and checked on a
held-out seed; see ``bench/results/vad.md``. Known limits of an energy detector:
competing intelligible speech (a TV, a second talker) reads as speech, and at
5 dB SNR weak consonants and word endings drop out.

Event timestamps (seconds of audio since the stream began, exact multiples of the
frame length, no clock involved):

* ``SpeechStarted.t``: the start of the first frame of the voiced run that
  triggered, moved earlier by ``pre_roll_ms`` (never below 0): ``t * sample_rate``
  is the index of that frame's first sample. It is emitted ``min_speech_ms`` after
  the onset, by the ``process`` call that completes the run.
* ``SpeechEnded.t``: the end of the frame that completed the hangover, i.e. the
  moment the endpointer decided: ``t * sample_rate`` is the index of the first
  sample after that frame. The last voiced frame ended exactly ``min_silence_ms``
  earlier (``SpeechEnded.voiced_until``).

Any sample rate whose frame length is a whole number of samples works; the
defaults are tuned on 8 kHz telephone speech and hold for 16 kHz because every
threshold is in dB and ms.

The hot path is one numba call per ``process()``: no per-frame Python objects;
event objects exist only when something happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
from numba import njit

from dsp.energy import frame_dbfs
from dsp.exceptions import InvalidAudio, InvalidSettings
from dsp.pcm import check_mono_pcm16

Int16Array = npt.NDArray[np.int16]

_KIND_START: Final = 1
_KIND_END: Final = 2
# Kernel state layout (see EnergyVAD.reset).
_IN_SPEECH, _FRAMES_DONE = 0, 2
_RING: Final = 3
_RING_SLOTS: Final = 8
_NO_MINIMUM: Final = 1e9


@dataclass(frozen=True, slots=True)
class VADConfig:
    """Tuning of ``EnergyVAD`` (meaning of each field: module docstring). Every
    duration must be a whole number of frames; ``min_window_ms`` is split into 8
    sub-windows of whole frames (rounded down). Out-of-range values raise
    ``InvalidSettings``.

    Defaults are for 8 kHz telephone speech; ``min_silence_ms`` is the endpointing
    hangover, the main latency/robustness trade-off of a turn end (speech-end
    events come exactly that long after the last voiced frame).
    ``initial_floor_dbfs`` only matters until the first quiet frames arrive.
    """

    frame_ms: int = 10
    min_speech_ms: int = 60
    min_silence_ms: int = 300
    pre_roll_ms: int = 0
    start_margin_db: float = 4.0
    stay_margin_db: float = 3.0
    min_level_dbfs: float = -50.0
    initial_floor_dbfs: float = -60.0
    floor_rise_db_per_s: float = 3.0
    floor_alpha: float = 0.05
    spread_factor: float = 0.5
    initial_spread_db: float = 1.0
    min_window_ms: int = 1600

    def __post_init__(self) -> None:
        if self.frame_ms <= 0:
            raise InvalidSettings(f"frame_ms must be positive, got {self.frame_ms}")
        for name in ("min_speech_ms", "min_silence_ms", "pre_roll_ms", "min_window_ms"):
            value = getattr(self, name)
            if value < 0 or value % self.frame_ms:
                raise InvalidSettings(f"{name} must be a non-negative multiple of frame_ms "
                                      f"({self.frame_ms}), got {value}")
        if min(self.min_speech_ms, self.min_silence_ms, self.min_window_ms) == 0:
            raise InvalidSettings("min_speech_ms, min_silence_ms and min_window_ms must be "
                                  "at least one frame")
        if not 0.0 < self.floor_alpha <= 1.0:
            raise InvalidSettings(f"floor_alpha must be in (0, 1], got {self.floor_alpha}")
        if self.stay_margin_db > self.start_margin_db:
            raise InvalidSettings("stay_margin_db must not exceed start_margin_db")
        if min(self.floor_rise_db_per_s, self.spread_factor, self.initial_spread_db) < 0:
            raise InvalidSettings("floor_rise_db_per_s, spread_factor and initial_spread_db "
                                  "must not be negative")

    def frame_len(self, sample_rate: int) -> int:
        """Samples per frame at ``sample_rate``; InvalidAudio if not whole."""
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise InvalidAudio(f"sample_rate must be a positive int, got {sample_rate!r}")
        samples, rest = divmod(sample_rate * self.frame_ms, 1000)
        if rest or samples == 0:
            raise InvalidAudio(f"{self.frame_ms} ms is not a whole number of samples "
                               f"at {sample_rate} Hz")
        return samples


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at ``t`` seconds of audio (onset frame start minus pre-roll)."""

    t: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The endpointer decided at ``t`` seconds of audio that speech had ended;
    the last voiced frame ended at ``voiced_until`` (``t - min_silence_ms``).
    ``voiced_until`` is -1.0 only for events built by hand without it."""

    t: float
    voiced_until: float = field(default=-1.0)


VADEvent = SpeechStarted | SpeechEnded


@njit(cache=True, nogil=True)
def _endpoint_kernel(
    pcm: npt.NDArray[np.int16],
    frame_len: int,
    params: npt.NDArray[np.float64],
    fstate: npt.NDArray[np.float64],
    istate: npt.NDArray[np.int64],
    flags: npt.NDArray[np.uint8],
    events: npt.NDArray[np.int64],
) -> int:
    """Run whole frames of ``pcm`` through the endpointer.

    ``flags[k]`` gets bit 0 = frame voiced, bit 1 = in speech after the frame.
    ``events`` rows are ``(kind, frame)``: for a start the onset frame, for an end
    the frame that completed the hangover. Returns the number of event rows.
    State layout: see ``EnergyVAD.reset``.
    """
    start_margin, stay_margin, min_level = params[0], params[1], params[2]
    rise, alpha, spread_factor = params[3], params[4], params[7]
    min_speech, min_silence, sub_len = int(params[5]), int(params[6]), int(params[8])
    floor, spread, sub_min = fstate[0], fstate[1], fstate[2]
    ring = fstate[_RING:]
    in_speech, run, done, run_start = istate[0], istate[1], istate[2], istate[3]
    sub_count, ring_pos = istate[4], istate[5]
    n_frames = pcm.shape[0] // frame_len
    n_events = 0
    for k in range(n_frames):
        e = frame_dbfs(pcm, k * frame_len, frame_len)
        frame = done + k
        margin = (stay_margin if in_speech else start_margin) + spread_factor * spread
        voiced = e >= floor + margin and e >= min_level
        if voiced:
            floor += min(e - floor, rise)
        else:
            if e < floor:
                # Only the quiet side: the loud side is cut off by the threshold.
                spread += alpha * ((floor - e) - spread)
            # In speech, frames well above the floor are weak speech, not noise.
            if e < floor + spread or not in_speech:
                floor += alpha * (e - floor)
        # Minimum statistics: once a whole window has been seen, the floor never
        # stays below its quietest frame, so a louder background (or a start in
        # noise) is absorbed within one window even while "speech" never pauses.
        sub_min = min(sub_min, e)
        sub_count += 1
        if sub_count == sub_len:
            ring[ring_pos] = sub_min
            ring_pos = (ring_pos + 1) % ring.shape[0]
            sub_min = _NO_MINIMUM
            sub_count = 0
        if ring[-1] < _NO_MINIMUM:  # slots fill in order: the whole window is seen
            floor = max(floor, ring.min())
        if in_speech:
            if voiced:
                run = 0
            else:
                run += 1
                if run >= min_silence:
                    in_speech = 0
                    run = 0
                    events[n_events, 0] = _KIND_END
                    events[n_events, 1] = frame
                    n_events += 1
        elif voiced:
            if run == 0:
                run_start = frame
            run += 1
            if run >= min_speech:
                in_speech = 1
                run = 0
                events[n_events, 0] = _KIND_START
                events[n_events, 1] = run_start
                n_events += 1
        else:
            run = 0
        flags[k] = (1 if voiced else 0) | (2 if in_speech else 0)
    fstate[0], fstate[1], fstate[2] = floor, spread, sub_min
    istate[0], istate[1], istate[2], istate[3] = in_speech, run, done + n_frames, run_start
    istate[4], istate[5] = sub_count, ring_pos
    return n_events


class EnergyVAD:
    """Streaming endpointer: feed int16 chunks of any length, get speech events.

    A partial trailing frame is kept until the next call completes it. ``reset()``
    forgets everything (noise floor included) for an unrelated stream.
    """

    def __init__(self, config: VADConfig = VADConfig(), sample_rate: int = 8000) -> None:
        self.config = config
        self.sample_rate = sample_rate
        self.frame_len = config.frame_len(sample_rate)
        self._min_silence_frames = config.min_silence_ms // config.frame_ms
        self._pre_roll_samples = config.pre_roll_ms * sample_rate // 1000
        self._params = np.array([
            config.start_margin_db,
            config.stay_margin_db,
            config.min_level_dbfs,
            config.floor_rise_db_per_s * config.frame_ms / 1000.0,
            config.floor_alpha,
            config.min_speech_ms // config.frame_ms,
            self._min_silence_frames,
            config.spread_factor,
            max(1, config.min_window_ms // config.frame_ms // _RING_SLOTS),
        ], dtype=np.float64)
        self._fstate = np.empty(_RING + _RING_SLOTS, dtype=np.float64)
        self._istate = np.empty(6, dtype=np.int64)
        self._remainder = np.zeros(0, dtype=np.int16)
        self.last_flags: npt.NDArray[np.uint8] = np.zeros(0, dtype=np.uint8)
        self.reset()

    def reset(self) -> None:
        """Start over: no speech, initial noise floor, frame 0 at the next sample."""
        # fstate: noise floor, noise spread, minimum of the current sub-window,
        # then the ring of sub-window minima. istate: in speech, run length,
        # frames done, start frame of the voiced run, frames in the sub-window,
        # ring position.
        self._fstate[:] = _NO_MINIMUM
        self._fstate[0] = self.config.initial_floor_dbfs
        self._fstate[1] = self.config.initial_spread_db
        self._istate[:] = 0
        self._remainder = np.zeros(0, dtype=np.int16)
        self.last_flags = np.zeros(0, dtype=np.uint8)

    @property
    def in_speech(self) -> bool:
        """True between a ``SpeechStarted`` and the following ``SpeechEnded``."""
        return bool(self._istate[_IN_SPEECH])

    @property
    def frames_done(self) -> int:
        """Whole frames consumed since the stream (or the last ``reset``) began."""
        return int(self._istate[_FRAMES_DONE])

    @property
    def noise_floor_dbfs(self) -> float:
        """The current adaptive noise-floor estimate."""
        return float(self._fstate[0])

    def process(self, chunk: Int16Array) -> list[SpeechStarted | SpeechEnded]:
        """Consume ``chunk``; return the events its completed frames caused, in order.

        ``last_flags`` then holds one byte per frame completed by this call
        (bit 0: frame voiced, bit 1: in speech after the frame).
        """
        chunk = check_mono_pcm16(chunk)
        # Only a leftover partial frame forces a copy.
        pcm = np.concatenate((self._remainder, chunk)) if self._remainder.shape[0] else chunk
        n_frames = pcm.shape[0] // self.frame_len
        used = n_frames * self.frame_len
        self._remainder = pcm[used:].copy()
        flags = np.empty(n_frames, dtype=np.uint8)
        events = np.empty((n_frames, 2), dtype=np.int64)
        n_events = _endpoint_kernel(
            pcm, self.frame_len, self._params, self._fstate, self._istate, flags, events
        )
        self.last_flags = flags
        if n_events == 0:
            return []
        return [self._event(int(kind), int(frame)) for kind, frame in events[:n_events]]

    def _event(self, kind: int, frame: int) -> SpeechStarted | SpeechEnded:
        rate = self.sample_rate
        if kind == _KIND_START:
            return SpeechStarted(max(0, frame * self.frame_len - self._pre_roll_samples) / rate)
        end = (frame + 1) * self.frame_len
        voiced_until = end - self._min_silence_frames * self.frame_len
        return SpeechEnded(end / rate, voiced_until / rate)


def speech_segments(
    pcm: Int16Array, config: VADConfig = VADConfig(), sample_rate: int = 8000
) -> list[tuple[float, float]]:
    """Run a fresh ``EnergyVAD`` over a whole signal; return ``(start, voiced_until)``
    per segment in seconds. A segment still open at the end closes at the end."""
    vad = EnergyVAD(config, sample_rate)
    segments: list[tuple[float, float]] = []
    start: float | None = None
    for event in vad.process(pcm):
        if isinstance(event, SpeechStarted):
            start = event.t
        elif start is not None:
            segments.append((start, event.voiced_until))
            start = None
    if start is not None:
        segments.append((start, vad.frames_done * vad.frame_len / sample_rate))
    return segments


def speech_frames(
    pcm: Int16Array, config: VADConfig = VADConfig(), sample_rate: int = 8000
) -> npt.NDArray[np.bool_]:
    """Per-frame labels (``config.frame_ms`` frames) of the segments the endpointer
    reports: a frame is speech when it lies inside ``[start, voiced_until)`` of a
    segment. This is what the events say about the audio after the fact, used by
    the quality benchmark; the live decision per frame is ``last_flags``."""
    frame_len = config.frame_len(sample_rate)
    labels = np.zeros(pcm.shape[0] // frame_len, dtype=np.bool_)
    for start, end in speech_segments(pcm, config, sample_rate):
        labels[round(start * sample_rate) // frame_len:round(end * sample_rate) // frame_len] = True
    return labels


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernel for writable arrays and for
    read-only views of ``bytes`` (numba types them differently), and run it once."""
    vad = EnergyVAD()
    vad.process(np.zeros(vad.frame_len * 3 + 1, dtype=np.int16))
    vad.process(np.frombuffer(bytes(2 * vad.frame_len * 3), dtype=np.int16))

"""Stateful streaming resampler for mono PCM16: one ``StreamResampler`` per
direction per call, fed every chunk in order, never reset on a timer.

Why the stream runs in float32
------------------------------
``soxr`` applies TPDF dither when it writes int16 output, and the dither pattern
depends on how the stream was chunked: an int16 ``soxr.ResampleStream`` fed 160-sample
chunks differs from the same stream fed 1-sample chunks by up to 2 LSB. The float
pipeline is chunking-invariant, so this wrapper converts int16 → float32 (``x / 32768``,
exact), streams in float32 and converts back with round-half-even and clipping. The
result is a pure function of the whole input: ``process()`` over any chunking plus
``flush()`` equals :func:`resample_oneshot`, which is ``soxr.resample`` of the float32
signal with the same conversion back (bit-exact; the tests check it). Against
``soxr.resample`` on int16 input it differs only by soxr's dither (≤ 1 LSB).

Delay in streaming use (measured: ``python -m bench resample_delay``)
---------------------------------------------------------------------
20 ms chunks of noise; held back = input duration consumed minus output duration
returned, after each chunk, in steady state (median / max, ms), and the share of
chunks that return nothing:

=======  ==============  ==============  ==============  =====================
quality  8k→16k, 16k→8k  24k→8k          22.05k→8k       chunks with no output
=======  ==============  ==============  ==============  =====================
QQ       0.2 / 0.2       0.0 / 0.0       0.0 / 0.0       0 %
LQ       32.5 / 61.2     22.5 / 40.0     23.0 / 43.4     47–66 %
MQ       63.9 / 117.5    42.8 / 75.2     46.2 / 82.2     70–82 %
HQ       63.8 / 115.0    42.9 / 73.1     45.9 / 80.4     68–81 %
VHQ      63.9 / 111.2    85.0 / 152.5    93.2 / 168.4    79–87 %
=======  ==============  ==============  ==============  =====================

Every quality but QQ emits in bursts: most 20 ms inputs return nothing, then one
call returns 40–150 ms at once (LQ: at most ~60 ms). Downstream (chunker, pacer)
must accept that. Per-chunk cost is the same for every quality (~9 µs per 20 ms
on the shared 2-core bench machine), so only latency decides.

Default quality: ``"LQ"``
-------------------------
Voice-to-voice latency is the product's main number, and every quality costs the
same CPU, so latency decides. HQ (and MQ) hold back ~64 ms median, peaks 115 ms,
per resampling stage at 8k↔16k; LQ halves that (~33 ms median; ~23 ms at 24k→8k
and 22.05k→8k, the TTS routes) and still has a real anti-aliasing low-pass.

The price, measured with tones at an 8 kHz output (either direction): LQ is flat
to 2.5 kHz, −0.3 dB at 3.0 kHz, −8 dB at 3.4 kHz and −30 dB at 3.7 kHz, so the top
of the telephone band (3–3.4 kHz) is a little dull; HQ is flat to 3.7 kHz. For
speech intelligibility on a phone call that trade is worth ~30 ms per stage; pass
``quality="HQ"`` where fidelity matters more than delay (offline rendering, cached
template audio). QQ is cubic interpolation without an anti-aliasing filter:
downsampling 22/24 kHz TTS with it folds everything above 4 kHz back into the
voice band, so it is never the default.

``delay_samples``
-----------------
The number of output samples (at ``out_rate``) that the input consumed so far
entitles, minus the output samples already returned:
``in_total * out_rate / in_rate - out_total`` (a float, since the ratio need not be
whole). It equals libsoxr's own ``soxr_delay()`` (checked: identical) and is the
audio the stream holds back right now (filter group delay plus block buffering).
After ``flush()`` the stream holds nothing and reports 0; so do passthrough streams.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import soxr

from dsp.exceptions import InvalidAudio, InvalidSettings
from dsp.pcm import check_mono_pcm16

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
QUALITIES: Final[tuple[Quality, ...]] = ("QQ", "LQ", "MQ", "HQ", "VHQ")
DEFAULT_QUALITY: Final[Quality] = "LQ"

Int16Array = npt.NDArray[np.int16]
_EMPTY_F32: Final = np.zeros(0, dtype=np.float32)
_SCALE: Final = np.float32(32768.0)


def _check_rate(name: str, rate: int) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise InvalidAudio(f"{name} must be a positive integer sample rate, got {rate!r}")
    return int(rate)


def _check_quality(quality: str) -> Quality:
    for known in QUALITIES:
        if quality == known:
            return known
    raise InvalidSettings(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")


def _to_float(pcm: Int16Array) -> npt.NDArray[np.float32]:
    return pcm.astype(np.float32) / _SCALE


def _to_int16(samples: npt.NDArray[np.float32]) -> Int16Array:
    out: Int16Array = np.clip(np.rint(samples * _SCALE), -32768, 32767).astype(np.int16)
    return out


def resample_oneshot(
    pcm: Int16Array, in_rate: int, out_rate: int, quality: Quality = DEFAULT_QUALITY
) -> Int16Array:
    """Resample a whole signal at once; the reference a stream must reproduce exactly."""
    pcm = check_mono_pcm16(pcm)
    in_rate, out_rate = _check_rate("in_rate", in_rate), _check_rate("out_rate", out_rate)
    quality = _check_quality(quality)
    if in_rate == out_rate:
        return pcm.copy()
    return _to_int16(soxr.resample(_to_float(pcm), in_rate, out_rate, quality=quality))


class StreamResampler:
    """Resample one continuous mono int16 stream chunk by chunk.

    ``process()`` accepts any chunk length (including 0) and returns whatever output
    is ready, which may be empty (see the burstiness note in the module docstring).
    ``flush()`` marks the end of the stream and returns the held-back tail; after it
    the stream is finished and only ``reset()`` makes it usable again. ``reset()``
    clears all state for an unrelated stream; nothing ever calls it implicitly.
    Equal rates make a passthrough that returns a copy of each chunk.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: Quality = DEFAULT_QUALITY) -> None:
        self.in_rate = _check_rate("in_rate", in_rate)
        self.out_rate = _check_rate("out_rate", out_rate)
        self.quality: Quality = _check_quality(quality)
        self._stream: soxr.ResampleStream | None = None
        self._in_total = 0
        self._out_total = 0
        self._finished = False
        if self.in_rate != self.out_rate:
            self._stream = soxr.ResampleStream(
                self.in_rate, self.out_rate, 1, dtype="float32", quality=self.quality
            )

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and samples are copied through untouched."""
        return self._stream is None

    @property
    def delay_samples(self) -> float:
        """Output samples owed for input already consumed (see the module docstring)."""
        if self._stream is None or self._finished:
            return 0.0
        return self._in_total * self.out_rate / self.in_rate - self._out_total

    @property
    def delay_seconds(self) -> float:
        """``delay_samples`` as seconds of audio."""
        return self.delay_samples / self.out_rate

    def process(self, chunk: Int16Array) -> Int16Array:
        """Feed the next chunk; return the output that is ready (possibly empty)."""
        chunk = check_mono_pcm16(chunk)
        if self._finished:
            raise InvalidAudio("stream already flushed; call reset() to start a new one")
        if self._stream is None:
            return chunk.copy()
        out = _to_int16(self._stream.resample_chunk(_to_float(chunk)))
        self._in_total += chunk.shape[0]
        self._out_total += out.shape[0]
        return out

    def flush(self) -> Int16Array:
        """End the stream: return the held-back tail. Flushing twice returns nothing."""
        if self._stream is None or self._finished:
            self._finished = True
            return np.zeros(0, dtype=np.int16)
        self._finished = True
        out = _to_int16(self._stream.resample_chunk(_EMPTY_F32, last=True))
        self._out_total += out.shape[0]
        return out

    def reset(self) -> None:
        """Drop all state (held-back audio included) and start a fresh stream."""
        if self._stream is not None:
            self._stream.clear()
        self._in_total = 0
        self._out_total = 0
        self._finished = False


def warm_up() -> None:
    """Touch soxr once so the first live chunk pays no lazy initialisation."""
    stream = StreamResampler(8000, 16000)
    stream.process(np.zeros(160, dtype=np.int16))
    stream.flush()

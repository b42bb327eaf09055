"""What the loopback ElevenLabs server says: real speech from espeak-ng
(:mod:`providers.local.espeak`, called synchronously: it runs ~1000x faster than
real time), resampled to the requested output format (pcm_8000/16000/22050/24000/
44100, ulaw_8000 and alaw_8000 through ``dsp``), and the frame size that cuts it
into pieces of a given duration. Shared by the WebSocket and HTTP endpoints.

Renders are cached per (text, format, voice): the same sentence always sounds
the same, and a load test's hundred calls saying one sentence cost one render
instead of blocking the simulator's event loop a hundred times (~10 ms each).
The cache is the simulator's own economy, not the vendor's behaviour: timing
(``ttfb``, frame gaps), framing and faults are applied per generation as before.
"""

from __future__ import annotations

import functools

import numpy as np

import dsp
from dsp.resample import resample_oneshot
from providers.local import espeak
from providers.tts import elevenlabs_wire as wire

#: Distinct renders kept: a few minutes of speech at 8 kHz is a few MB.
RENDER_CACHE_SIZE = 256


def render(text: str, output_format: str, voice_id: str = "") -> bytes:
    """``text`` spoken by espeak-ng, in ``output_format``'s bytes (cached)."""
    voice = voice_id if voice_id in ("en", "en-us", "hi") else "en-us"
    return _render(text, output_format, voice)


@functools.lru_cache(maxsize=RENDER_CACHE_SIZE)
def _render(text: str, output_format: str, voice: str) -> bytes:
    samples, source_rate = espeak.synthesize(text, voice=voice)
    rate, encoding = wire.audio_format(output_format)
    pcm = resample_oneshot(samples, source_rate, rate, quality="HQ")
    if encoding == "ulaw":
        return bytes(dsp.ulaw_encode(pcm))
    if encoding == "alaw":
        return bytes(dsp.alaw_encode(pcm))
    return np.asarray(pcm, dtype="<i2").tobytes()


def frame_bytes(seconds: float, output_format: str) -> int:
    """Bytes in ``seconds`` of ``output_format`` audio, rounded down to an even
    count (whole PCM16 samples) and never less than two."""
    per_second = wire.bytes_per_second(output_format)
    step = max(2, round(seconds * per_second))
    return step - step % 2

"""Pure numeric audio core (numba-compiled): G.711, PCM16 helpers, streaming
resampler, energy VAD + endpointer and the frame chunker. No I/O, no clock.

Call ``warm_up()`` once at process start so no call pays JIT compilation.
"""

from dsp.chunker import Chunker, frame_bytes_for
from dsp.exceptions import DspError, InvalidAudio, InvalidFrameSize
from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from dsp.pcm import pcm16_from_bytes, pcm16_to_bytes
from dsp.resample import StreamResampler
from dsp.vad import EnergyVAD, SpeechEnded, SpeechStarted, VADConfig
from dsp.warmup import warm_up

__all__ = [
    "Chunker",
    "DspError",
    "EnergyVAD",
    "InvalidAudio",
    "InvalidFrameSize",
    "SpeechEnded",
    "SpeechStarted",
    "StreamResampler",
    "VADConfig",
    "alaw_decode",
    "alaw_encode",
    "frame_bytes_for",
    "pcm16_from_bytes",
    "pcm16_to_bytes",
    "ulaw_decode",
    "ulaw_encode",
    "warm_up",
]

"""``warm_up()``: compile (or load from numba's cache) every kernel once, at start.

numba compiles a kernel the first time it sees a new argument type, and a
read-only array (a zero-copy view of ``bytes``, as ``pcm16_from_bytes`` gives)
is a different type from a writable one. The first frame of the first call
must pay neither, so this runs each public entry point with both kinds of
input, exactly as the server calls them. Call it once per process before
accepting calls. It is idempotent; it takes tens of ms when numba's on-disk
cache is warm and a few seconds on a machine's very first run (compiling).
"""

from __future__ import annotations

import numpy as np

from dsp import resample, vad
from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from dsp.pcm import pcm16_from_bytes

__all__ = ["warm_up"]


def warm_up() -> None:
    """Run every numba kernel in ``dsp`` once with each input kind it will see."""
    twenty_ms = 160  # samples at 8 kHz; content does not matter for compilation
    pcm_inputs = (pcm16_from_bytes(bytes(2 * twenty_ms)), np.zeros(twenty_ms, dtype=np.int16))
    code_inputs = (
        np.frombuffer(bytes(twenty_ms), dtype=np.uint8),
        np.zeros(twenty_ms, dtype=np.uint8),
    )
    for pcm in pcm_inputs:
        ulaw_encode(pcm)
        alaw_encode(pcm)
        # The VAD kernel reads the caller's chunk directly when no partial
        # frame is pending, so it meets read-only views too.
        vad.EnergyVAD().process(pcm)
    for codes in code_inputs:
        ulaw_decode(codes)
        alaw_decode(codes)
    resample.warm_up()
    vad.warm_up()

"""Per-frame energy of int16 PCM in dBFS: the numba kernel under ``dsp.vad``.

Level convention: ``10 * log10(mean((x - mean(x))**2) / 32768**2)``. A full-scale
square wave is 0 dBFS, a full-scale sine −3.01 dBFS. The frame's own mean is
removed first, so a DC offset on the line does not read as energy. Digital
silence is clamped to ``ENERGY_FLOOR_DBFS`` instead of −inf.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
from numba import njit

ENERGY_FLOOR_DBFS: Final = -100.0
_FULL_SCALE_POWER: Final = 32768.0 * 32768.0


@njit(cache=True, nogil=True)
def frame_dbfs(pcm: npt.NDArray[np.int16], start: int, frame_len: int) -> float:
    """Energy of ``pcm[start:start + frame_len]`` in dBFS."""
    total = 0.0
    total_sq = 0.0
    for i in range(start, start + frame_len):
        v = float(pcm[i])
        total += v
        total_sq += v * v
    mean = total / frame_len
    power = total_sq / frame_len - mean * mean
    power = max(power, _FULL_SCALE_POWER * 10.0 ** (ENERGY_FLOOR_DBFS / 10.0))
    return 10.0 * math.log10(power / _FULL_SCALE_POWER)


@njit(cache=True, nogil=True)
def frame_energy_dbfs_into(
    pcm: npt.NDArray[np.int16], frame_len: int, out: npt.NDArray[np.float64]
) -> int:
    """Write the energy of each whole frame of ``pcm`` into ``out``; return the
    number of frames. A trailing partial frame is ignored (the caller keeps it)."""
    n_frames = int(pcm.shape[0] // frame_len)
    for k in range(n_frames):
        out[k] = frame_dbfs(pcm, k * frame_len, frame_len)
    return n_frames


def frame_energy_dbfs(pcm: npt.NDArray[np.int16], frame_len: int) -> npt.NDArray[np.float64]:
    """Energy of each whole frame of ``pcm`` (dBFS, see the module docstring)."""
    out = np.empty(pcm.shape[0] // frame_len, dtype=np.float64)
    frame_energy_dbfs_into(pcm, frame_len, out)
    return out

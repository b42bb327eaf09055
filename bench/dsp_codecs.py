"""The G.711 section of ``python -m bench dsp``: dsp's codecs against references.

For μ-law and A-law, encode and decode, on 20 ms, 100 ms, 1 s and 1 min blocks
at 8 kHz: audioop (bytes → bytes, the stdlib reference), a numpy lookup table,
the numba alternatives to what ``dsp`` ships (the branch-free encode kernel
called directly, a 256-entry decode-table gather), and ``dsp`` itself from
arrays and from bytes. The verdicts compare dsp's array → array speed with audioop's at
1 s and 1 min against the targets (encode ≥ 5×, decode ≥ 1.5×).
"""

from __future__ import annotations

import audioop
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

import dsp
from bench.dsp_timing import fmt_us, interleaved_runs, speechlike
from dsp import g711

__all__ = ["codec_section"]

BLOCKS = {"20 ms": 160, "100 ms": 800, "1 s": 8000, "1 min": 480_000}


@njit(cache=True, nogil=True)
def _decode_gather(codes: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """Reference: 256-entry table gather in numba (what dsp does *not* use)."""
    for i in range(codes.size):
        out[i] = table[codes[i]]


def _filled(kernel: Callable[..., None], data: np.ndarray,
            dtype: type[np.generic], *extra: np.ndarray) -> np.ndarray:
    """Call an ``out``-filling kernel the way the public functions do."""
    out = np.empty(data.size, dtype=dtype)
    kernel(data, *extra, out)
    return out


@dataclass(frozen=True)
class _Law:
    name: str
    encode: Callable[[Any], np.ndarray]
    decode: Callable[[Any], np.ndarray]
    encode_kernel: Callable[..., None]
    lin2x: Callable[[bytes, int], bytes]
    x2lin: Callable[[bytes, int], bytes]
    encode_table: np.ndarray
    decode_table: np.ndarray


LAWS = (
    _Law("μ-law", dsp.ulaw_encode, dsp.ulaw_decode, g711.ulaw_encode_kernel, audioop.lin2ulaw,
         audioop.ulaw2lin, g711.ULAW_ENCODE_TABLE, g711.ULAW_DECODE_TABLE),
    _Law("A-law", dsp.alaw_encode, dsp.alaw_decode, g711.alaw_encode_kernel, audioop.lin2alaw,
         audioop.alaw2lin, g711.ALAW_ENCODE_TABLE, g711.ALAW_DECODE_TABLE),
)
AUDIOOP = "audioop (bytes→bytes)"
OURS = "**dsp** (array→array)"


def _encoders(law: _Law, n: int) -> dict[str, Callable[[], object]]:
    pcm = speechlike(n)
    raw = pcm.tobytes()
    by_view = np.roll(law.encode_table, 32768)  # numpy table indexed by the uint16 view
    return {
        AUDIOOP: lambda: law.lin2x(raw, 2),
        "numpy table": lambda: by_view[pcm.view(np.uint16)],
        "numba branch-free kernel": lambda: _filled(law.encode_kernel, pcm, np.uint8),
        OURS: lambda: law.encode(pcm),
        "**dsp** (bytes→bytes)": lambda: law.encode(raw).tobytes(),
    }


def _decoders(law: _Law, n: int) -> dict[str, Callable[[], object]]:
    codes = law.encode(speechlike(n))
    raw = codes.tobytes()
    table = law.decode_table
    return {
        AUDIOOP: lambda: law.x2lin(raw, 2),
        "numpy table": lambda: table[codes],
        "numba table gather": lambda: _filled(_decode_gather, codes, np.int16, table),
        OURS: lambda: law.decode(codes),
        "**dsp** (bytes→bytes)": lambda: law.decode(raw).tobytes(),
    }


def codec_section(repeats: int) -> list[str]:
    lines = [
        "| law | op | implementation | " + " | ".join(BLOCKS) + " | × audioop 1 s | 1 min |",
        "|---|---|---|" + "---:|" * (len(BLOCKS) + 2),
    ]
    verdicts = []
    ops = (("encode", _encoders, 5.0), ("decode", _decoders, 1.5))
    for law in LAWS:
        for op, build, target in ops:
            runs = {b: interleaved_runs(build(law, n), repeats) for b, n in BLOCKS.items()}
            table = {b: {k: statistics.median(v) for k, v in r.items()} for b, r in runs.items()}
            best = {b: {k: min(v) for k, v in r.items()} for b, r in runs.items()}
            for impl in table["20 ms"]:
                cells = [fmt_us(table[b][impl]) for b in BLOCKS]
                ratios = [table[b][AUDIOOP] / table[b][impl] for b in ("1 s", "1 min")]
                lines.append(f"| {law.name} | {op} | {impl} | " + " | ".join(cells)
                             + " | " + " | ".join(f"{r:.1f}×" for r in ratios) + " |")
            ours = [table[b][AUDIOOP] / table[b][OURS] for b in ("1 s", "1 min")]
            ours_best = [best[b][AUDIOOP] / best[b][OURS] for b in ("1 s", "1 min")]
            verdict = "met" if min(ours) >= target else "MISSED"
            verdicts.append(f"{law.name} {op} {ours[0]:.1f}× / {ours[1]:.1f}× "
                            f"(best runs {ours_best[0]:.1f}× / {ours_best[1]:.1f}×; "
                            f"target ≥ {target}×): {verdict}")
    return [*lines, "", "Targets, dsp array→array vs audioop at 1 s / 1 min, from medians "
            "(and from the best run of each, which load disturbs least):", "",
            *(f"- {v}" for v in verdicts)]


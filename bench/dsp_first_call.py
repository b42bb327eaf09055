"""The first-call section of ``python -m bench dsp``: latency in a fresh process.

Each run starts a new interpreter that imports ``dsp``, optionally calls
``dsp.warm_up()``, then times the first and the steady-state call of each
kernel on a 100 ms message. Three modes: after ``warm_up()``, without it, and
after ``warm_up()`` with numba's on-disk cache empty (a fresh machine).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from bench.dsp_timing import fmt_us

__all__ = ["first_call_section"]

_FIRST_CALL = """
import json, time, sys
t0 = time.perf_counter()
import numpy as np, dsp
t1 = time.perf_counter()
if sys.argv[1] == "warm":
    dsp.warm_up()
t2 = time.perf_counter()
message = np.arange(-800, 800, 2, dtype=np.int16).tobytes()   # 100 ms at 8 kHz
codes = bytes(range(256)) * 4
vad = dsp.EnergyVAD()
stream = dsp.StreamResampler(24000, 8000)
tts = np.zeros(2400, dtype=np.int16)
calls = {
    "ulaw_encode": lambda: dsp.ulaw_encode(dsp.pcm16_from_bytes(message)),
    "ulaw_decode": lambda: dsp.ulaw_decode(codes),
    "alaw_encode": lambda: dsp.alaw_encode(dsp.pcm16_from_bytes(message)),
    "EnergyVAD.process": lambda: vad.process(dsp.pcm16_from_bytes(message)),
    "StreamResampler.process": lambda: stream.process(tts),
}
out = {"import": (t1 - t0) * 1e6, "warm_up": (t2 - t1) * 1e6}
for name, call in calls.items():
    start = time.perf_counter(); call(); first = time.perf_counter() - start
    steady = []
    for _ in range(200):
        start = time.perf_counter(); call(); steady.append(time.perf_counter() - start)
    steady.sort()
    out[name] = (first * 1e6, steady[100] * 1e6)
print(json.dumps(out))
"""


def first_call_section(repeats: int) -> list[str]:
    results: dict[str, list[dict[str, Any]]] = {"warm": [], "cold": [], "nocache": []}
    for mode in results:
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as empty_cache:
                # "nocache": a fresh machine, numba's on-disk cache empty.
                env = {**os.environ, "NUMBA_CACHE_DIR": empty_cache} if mode == "nocache" else None
                done = subprocess.run(
                    [sys.executable, "-W", "ignore", "-c", _FIRST_CALL,
                     "cold" if mode == "cold" else "warm"],
                    capture_output=True, text=True, check=True, env=env,
                )
            results[mode].append(json.loads(done.stdout))

    def med(mode: str, key: str, index: int | None = None) -> str:
        values = [float(r[key] if index is None else r[key][index]) for r in results[mode]]
        return fmt_us(statistics.median(values))

    lines = [
        f"| fresh process ({repeats} runs each) | after warm_up(): first call µs | steady µs "
        "| without warm_up(): first call µs | empty numba cache, after warm_up() µs |",
        "|---|---:|---:|---:|---:|",
        f"| import dsp | {med('warm', 'import')} | | {med('cold', 'import')} "
        f"| {med('nocache', 'import')} |",
        f"| dsp.warm_up() | {med('warm', 'warm_up')} | | — | {med('nocache', 'warm_up')} |",
    ]
    for key in ("ulaw_encode", "ulaw_decode", "alaw_encode", "EnergyVAD.process",
                "StreamResampler.process"):
        lines.append(f"| {key} (100 ms) | {med('warm', key, 0)} | {med('warm', key, 1)} "
                     f"| {med('cold', key, 0)} | {med('nocache', key, 0)} |")
    return lines

"""Resampler delay per quality: ``python -m bench resample_delay [--no-write]``
(or ``python -m bench.resample_delay``).

Feeds 5 s of noise through ``dsp.resample.StreamResampler`` in 20 ms chunks, the
live path's shape, and reports for each quality and rate pair:

* held back: after each chunk, input duration consumed minus output duration
  returned (= ``delay_samples / out_rate``); median and max over the steady state
  (the first 200 ms, while the filter fills, are left out), and the first chunk
  that produced any output;
* burstiness: the share of chunks that return nothing and the largest single
  output (ms of audio);
* cost: median of 5 runs of the per-chunk ``process()`` time.

Results go to ``bench/results/resample_delay.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Final

import numpy as np
import soxr

from dsp.resample import DEFAULT_QUALITY, QUALITIES, StreamResampler

PAIRS: Final = ((8000, 16000), (16000, 8000), (24000, 8000), (22050, 8000))
CHUNK_MS: Final = 20
SECONDS: Final = 5
RUNS: Final = 5
RESULTS_PATH: Final = Path(__file__).parent / "results" / "resample_delay.md"


def measure(in_rate: int, out_rate: int, quality: str) -> str:
    rng = np.random.default_rng(1)
    pcm = np.clip(rng.normal(0, 4000, in_rate * SECONDS), -32768, 32767).astype(np.int16)
    chunk = in_rate * CHUNK_MS // 1000
    held, sizes, timings = [], [], []
    for run in range(RUNS):
        stream = StreamResampler(in_rate, out_rate, quality)  # type: ignore[arg-type]
        per_chunk = []
        for pos in range(0, pcm.shape[0] - chunk + 1, chunk):
            began = time.perf_counter()
            out = stream.process(pcm[pos:pos + chunk])
            per_chunk.append(time.perf_counter() - began)
            if run == 0:
                held.append(stream.delay_seconds * 1000)
                sizes.append(out.shape[0])
        timings.append(float(np.median(per_chunk)))
    steady = np.array(held[200 // CHUNK_MS:])
    first = next(i for i, n in enumerate(sizes) if n)
    empty = np.mean(np.array(sizes) == 0) * 100
    burst_ms = max(sizes) / out_rate * 1000
    return (f"| {in_rate}→{out_rate} | {quality} | {np.median(steady):.1f} | {steady.max():.1f} "
            f"| {first * CHUNK_MS} | {empty:.0f} % | {burst_ms:.0f} | "
            f"{np.median(timings) * 1e6:.1f} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench resample_delay")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    header = [
        f"machine: {platform.platform()}, cpus={os.cpu_count()} (shared with other jobs: "
        "quote ratios, not absolute µs)",
        f"python {platform.python_version()}, numpy {np.__version__}, soxr {soxr.__version__} "
        f"(libsoxr {soxr.soxr_ext.libsoxr_version()}); default quality {DEFAULT_QUALITY}",
    ]
    lines = ["| rates | quality | held back median ms | max ms | first output after ms "
             "| chunks with no output | largest output ms | µs per 20 ms chunk |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for in_rate, out_rate in PAIRS:
        lines += [measure(in_rate, out_rate, q) for q in QUALITIES]
    print("\n".join([*header, "", *lines]))
    if not args.no_write:
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        text = ["## Resampler delay (`python -m bench resample_delay`)", "",
                *(f"- {h}" for h in header), "", *lines, ""]
        RESULTS_PATH.write_text("\n".join(text), encoding="utf-8")
        print(f"wrote {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

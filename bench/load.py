"""``python -m bench load``: how many echo calls one core carries, and at what cost.

Starts ``voicebot serve --echo`` in a subprocess pinned to core 0 (this process,
the load generator, pins itself to core 1), then places ``--calls`` concurrent
Exotel-like calls (``server.telephony.caller``) of ``--seconds`` each against 127.0.0.1,
their starts spread over one second. Reports per run:

- server CPU-ms per call-second (``/proc`` CPU time of the server process over
  the run, divided by calls × seconds) and RSS per call (RSS at mid-run minus
  the idle server's RSS, divided by calls);
- pacing lateness of outbound frames measured at the caller: arrival minus the
  ideal pacer's schedule (frame due once the far end would hold ``max_lead``),
  p50/p99; audible gaps (frames that arrived after their play slot); and the
  server's own view (``voicebot_outbound_lateness_seconds`` histogram: share of
  frames later than 20 ms) and the server's event-loop lag (p99 bucket);
- protocol violations and failed calls; the load generator's own CPU use (if it
  nears 100 % of its core, the numbers measure the generator, not the server).

``--sweep`` runs growing call counts (bounded list, one server) and reports the
largest N with caller-side p99 lateness ≤ 20 ms, no violations and no failures.
Results go to stdout and, as markdown, to ``bench/results/load.md``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import trio

from server.telephony.caller import CallerResult, default_script, run_caller

RESULTS = Path(__file__).parent / "results" / "load.md"
RESULTS_STORE = RESULTS.with_name("load_store.md")
SWEEP = (50, 100, 200, 300, 400, 500, 600)
LATE_LIMIT_S = 0.020


@dataclass(frozen=True, slots=True)
class RunStats:
    calls: int
    seconds: float
    cpu_ms_per_call_s: float
    rss_kib_per_call: float
    late_p50_ms: float
    late_p99_ms: float
    gaps: int
    frames: int
    server_late_share: float
    loop_lag_p99_ms: float
    violations: int
    failed: int
    caller_cpu_pct: float

    @property
    def passes(self) -> bool:
        return self.late_p99_ms <= LATE_LIMIT_S * 1000 and not self.violations and not self.failed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _histogram(text: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) pairs of a Prometheus histogram."""
    out = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out.append((math.inf if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return out


def _share_above(buckets: list[tuple[float, float]], bound: float) -> float:
    total = buckets[-1][1] if buckets else 0.0
    below = max((count for le, count in buckets if le <= bound), default=0.0)
    return (total - below) / total if total else 0.0


def _quantile_bound(buckets: list[tuple[float, float]], q: float) -> float:
    total = buckets[-1][1] if buckets else 0.0
    for le, count in buckets:
        if total and count >= q * total:
            return le
    return math.nan


class Server:
    """``voicebot serve --echo`` in a subprocess pinned to ``core``; with
    ``vendors`` (environment: the vendors' URLs and keys) the pipeline instead.

    With ``store`` the server records every call in its embedded redis-server
    (state in a private temporary directory); that redis-server inherits the
    pinning, so the core carries the store's work too. ``root`` runs the server
    from another checkout (``bench flood --reference``).
    """

    def __init__(self, core: int, *, store: bool = False, root: Path | None = None,
                 vendors: dict[str, str] | None = None) -> None:
        self.port, self.control_port = _free_port(), _free_port()
        self._state_dir = tempfile.TemporaryDirectory(prefix="voicebot-load-")
        mode = [] if vendors is not None else ["--echo"]  # vendors: the pipeline
        cmd = [sys.executable, "-m", "server", "serve", *mode, "--host", "127.0.0.1",
               "--port", str(self.port), "--control-port", str(self.control_port),
               "--log-level", "WARNING", "--grace", "2",
               "--store" if store else "--no-store"]
        env = {**os.environ, **(vendors or {}), "VOICEBOT_STATE_DIR": self._state_dir.name}
        env.pop("REDIS_URL", None)
        self.proc = subprocess.Popen(
            cmd, cwd=root or Path(__file__).resolve().parent.parent, env=env,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
        )
        self.ps = psutil.Process(self.proc.pid)
        self.idle_rss = 0

    def wait_ready(self, deadline_s: float = 60.0) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                if httpx.get(f"http://127.0.0.1:{self.control_port}/readyz").status_code == 200:
                    self.idle_rss = self.rss()
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server not ready in time")

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{self.control_port}/metrics")
        return answer.text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._state_dir.cleanup()


async def run_load(server: Server, calls: int, seconds: float, script: bytes) -> RunStats:
    """One run of ``calls`` concurrent calls; see the module docstring."""
    url = f"ws://127.0.0.1:{server.port}/media?sample-rate=8000"
    results: list[CallerResult] = []
    before_text = await server.metrics()
    rss_before, cpu_before = server.rss(), server.cpu_seconds()
    own_before = time.process_time()
    wall_before = time.monotonic()
    rss_mid = [rss_before]

    async def one(k: int) -> None:
        await trio.sleep(k / calls)  # spread the starts over one second
        results.append(await run_caller(
            url, script, seconds=seconds, offset_bytes=(k * 1600 * 7) % len(script)))

    async def sample_rss() -> None:
        await trio.sleep(1.0 + seconds / 2)
        rss_mid[0] = server.rss()

    with trio.fail_after(seconds + 60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_rss)
            for k in range(calls):
                nursery.start_soon(one, k)
    cpu = server.cpu_seconds() - cpu_before
    own = time.process_time() - own_before
    wall = time.monotonic() - wall_before
    after_text = await server.metrics()
    late = [x for r in results for x in r.schedule_lateness]
    lag = _histogram(after_text, "voicebot_event_loop_lag_seconds")
    lag_before = dict(_histogram(before_text, "voicebot_event_loop_lag_seconds"))
    lag = [(le, count - lag_before.get(le, 0.0)) for le, count in lag]
    srv_late = _histogram(after_text, "voicebot_outbound_lateness_seconds")
    srv_before = dict(_histogram(before_text, "voicebot_outbound_lateness_seconds"))
    srv_late = [(le, count - srv_before.get(le, 0.0)) for le, count in srv_late]
    ok = [r for r in results if r.ok]
    return RunStats(
        calls=calls, seconds=seconds,
        cpu_ms_per_call_s=cpu * 1000 / (calls * seconds),
        rss_kib_per_call=max(0, rss_mid[0] - server.idle_rss) / 1024 / calls,
        late_p50_ms=_percentile(late, 0.5) * 1000,
        late_p99_ms=_percentile(late, 0.99) * 1000,
        gaps=sum(1 for r in results for x in r.lateness if x > LATE_LIMIT_S),
        frames=len(late),
        server_late_share=_share_above(srv_late, LATE_LIMIT_S),
        loop_lag_p99_ms=_quantile_bound(lag, 0.99) * 1000,
        violations=sum(sum(r.violations.values()) for r in results),
        failed=len(results) - len(ok) + (calls - len(results)),
        caller_cpu_pct=100 * own / wall,
    )


def _median_stats(runs: list[RunStats]) -> RunStats:
    """Field-wise medians of repeated runs; violations and failures: the worst run."""
    def med(name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in runs))

    return RunStats(
        calls=runs[0].calls, seconds=runs[0].seconds,
        cpu_ms_per_call_s=med("cpu_ms_per_call_s"), rss_kib_per_call=med("rss_kib_per_call"),
        late_p50_ms=med("late_p50_ms"), late_p99_ms=med("late_p99_ms"),
        gaps=int(med("gaps")), frames=int(med("frames")),
        server_late_share=med("server_late_share"), loop_lag_p99_ms=med("loop_lag_p99_ms"),
        violations=max(r.violations for r in runs), failed=max(r.failed for r in runs),
        caller_cpu_pct=med("caller_cpu_pct"),
    )


HEADER = ("| calls | s | server CPU-ms / call-s | RSS KiB / call | late p50 ms | late p99 ms "
          "| gaps >20 ms | server frames >20 ms | loop lag p99 ms | violations | failed "
          "| caller CPU % |")


def _row(s: RunStats) -> str:
    return (f"| {s.calls} | {s.seconds:g} | {s.cpu_ms_per_call_s:.2f} | {s.rss_kib_per_call:.0f} "
            f"| {s.late_p50_ms:.1f} | {s.late_p99_ms:.1f} | {s.gaps}/{s.frames} "
            f"| {100 * s.server_late_share:.2f} % | ≤{s.loop_lag_p99_ms:g} | {s.violations} "
            f"| {s.failed} | {s.caller_cpu_pct:.0f} |")


def renice(increment: int) -> None:
    """Add ``increment`` to this process's nice value (a server started later
    inherits it). With Linux's autogrouping (``sched_autogroup_enabled``) the
    scheduler first shares a core fairly between sessions and applies nice only
    inside one, so this session's autogroup gets the same nice value: otherwise
    every other job's session on a shared machine still gets an equal share."""
    nice = os.nice(increment)
    autogroup = Path("/proc/self/autogroup")
    if increment and autogroup.exists():
        with contextlib.suppress(OSError):  # not permitted: the process's nice alone
            before = autogroup.read_text().split()[-1]  # "/autogroup-6 nice 0"
            autogroup.write_text(str(nice))
            atexit.register(_write_quietly, autogroup, before)  # the session's, not ours


def _write_quietly(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):
        path.write_text(text)


def _machine() -> list[str]:
    versions = ", ".join(f"{name} {metadata.version(name)}"
                         for name in ("trio", "trio-websocket", "wsproto", "numpy", "numba"))
    return [f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs (shared with other jobs: quote medians/ratios)",
            f"python {platform.python_version()}; {versions}"]


def main(argv: list[str]) -> int:
    if "--pipeline" in argv:
        from bench.load_pipeline import main as pipeline_main

        return pipeline_main([a for a in argv if a != "--pipeline"])
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs per call count; the table shows field-wise medians")
    parser.add_argument("--sweep", action="store_true", help=f"try N in {SWEEP}")
    parser.add_argument("--keep-going", action="store_true",
                        help="sweep every N even after one fails")
    parser.add_argument("--nice", type=int, default=0,
                        help="nice increment for server and load generator (negative needs "
                             "root): shields the measurement from other jobs on a shared machine")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--caller-core", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="do not write results/load.md")
    parser.add_argument("--store", action="store_true",
                        help="server records calls in its embedded Redis (default: --no-store)")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 2000 or not 1 <= args.seconds <= 600 or not 1 <= args.repeat <= 20:
        parser.error("--calls must be in 1..2000, --seconds in 1..600, --repeat in 1..20")
    script, audio = default_script()
    # The generator's own full GC passes (numba's import state: ~70 ms) would
    # read as late frames; the server freezes its start-up heap the same way.
    gc.collect()
    gc.freeze()
    lines = [*_machine(), f"caller audio: {audio}"]
    print("\n".join(lines), flush=True)
    cores = os.sched_getaffinity(0)
    if args.caller_core in cores:
        os.sched_setaffinity(0, {args.caller_core})
    if args.nice:
        renice(args.nice)
    server = Server(args.server_core, store=args.store)
    rows: list[RunStats] = []
    try:
        server.wait_ready()
        counts = SWEEP if args.sweep else (args.calls,)
        print(HEADER, flush=True)
        for calls in counts:
            runs = [trio.run(run_load, server, calls, args.seconds, script)
                    for _ in range(args.repeat)]
            median = _median_stats(runs)
            rows.append(median)
            print(_row(median), flush=True)
            if args.sweep and not median.passes and not args.keep_going:
                break
    finally:
        server.stop()
    passing = [r.calls for r in rows if r.passes]
    verdict = (f"largest N passing (p99 ≤ 20 ms, no violations/failures): "
               f"{max(passing) if passing else 'none'}")
    print(verdict)
    if rows:
        cpu = statistics.median(r.cpu_ms_per_call_s for r in rows)
        print(f"median server CPU-ms per call-second over the runs: {cpu:.2f}")
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        table = "\n".join([HEADER, "|" + "---|" * 12, *(_row(r) for r in rows)])
        (RESULTS_STORE if args.store else RESULTS).write_text(
            "## Load: echo calls per core (`python -m bench load"
            + (" --sweep --keep-going" if args.sweep and args.keep_going
               else " --sweep" if args.sweep else f" --calls {args.calls}")
            + f" --seconds {args.seconds:g} --repeat {args.repeat} --nice {args.nice}"
            + (" --store" if args.store else "") + "`)\n\n"
            + "\n".join(f"- {line}" for line in lines)
            + f"\n- server pinned to core {args.server_core}, caller to core {args.caller_core}, "
            f"both at nice {args.nice:+d}; 100 ms frames, 8 kHz, max lead 300 ms; "
            f"{args.repeat} runs per row, field-wise medians (violations/failed: worst run)\n"
            "- late = caller-side arrival minus the ideal pacer's schedule; gaps = frames "
            "that arrived after their play slot; server frames = the server's own "
            "lateness histogram\n\n"
            + table + f"\n\n{verdict}\n")
    return 0

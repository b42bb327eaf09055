"""``python -m bench load --pipeline``: how many conversation calls one core carries.

``voicebot serve`` (the pipeline, no store) in a subprocess pinned to one core;
this process — the vendor simulators (reference latencies: Deepgram final 150
ms, LLM first token 400 ms at 60 tokens/s, TTS first byte 200 ms) and the
Exotel-like callers — pinned to the other. For each call count in the sweep,
that many concurrent calls (starts spread over two seconds), each saying the
same five lines (three answered by templates, two by the LLM), each call's
campaign its own Deepgram usage tag so the simulator hears each call's script.

Per count: voice to voice at the caller (template and LLM lines, p50/p95), the
server's CPU-ms per call-second and RSS per call (over the idle server), the
event-loop lag p99 (the server's histogram), lines unanswered, and the load
generator's own CPU share and event-loop lag p99 (the server's probe, run here:
a generator near 100 % of its core or lagging tens of ms measures itself, not
the server). The capacity is the largest count whose p95 voice to voice stays
within 10 % of the single call's (template and LLM alike) with every line
answered.

On a machine shared with other jobs, ``--nice -15`` (root) gives the server and
the generator their cores: see ``bench.load.renice`` for why the session's
autogroup is reniced too.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from bench.latency import ANSWERS, SCRIPT
from bench.load import Server, _histogram, _machine, _percentile, _quantile_bound, renice
from providers.sim.deepgram_sim import DeepgramSim, open_deepgram_sim
from providers.sim.elevenlabs_sim import open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.sim.openai_sim import open_openai_sim
from server.telephony.caller import dial
from server.telephony.softphone import CallReport, Line, talk

RESULTS = Path(__file__).parent / "results" / "load_pipeline.md"
SWEEP = (1, 25, 50, 100, 150, 200)
WITHIN = 1.10  # p95 voice to voice within 10 % of one call's
LAG_PROBE_S = 0.1


@dataclass(frozen=True, slots=True)
class PipelineRun:
    calls: int
    template_p50_ms: float
    template_p95_ms: float
    llm_p50_ms: float
    llm_p95_ms: float
    cpu_ms_per_call_s: float
    rss_kib_per_call: float
    loop_lag_p99_ms: float
    unanswered: int
    caller_cpu_pct: float
    caller_lag_p99_ms: float

    def within(self, single: PipelineRun) -> bool:
        return (self.unanswered == 0
                and self.template_p95_ms <= WITHIN * single.template_p95_ms
                and self.llm_p95_ms <= WITHIN * single.llm_p95_ms)


async def _call(port: int, sid: str, delay: float) -> CallReport:
    await trio.sleep(delay)
    url = f"ws://127.0.0.1:{port}/media?sample-rate=8000&campaign_id={sid}"
    async with dial(url) as ws:
        return await talk(ws, [Line(text) for text, _ in SCRIPT], sample_rate=8000,
                          call_sid=sid)


async def run_count(server: Server, deepgram: DeepgramSim, calls: int) -> PipelineRun:
    sids = [f"load{calls}x{n}t{int(time.time() * 1000)}" for n in range(calls)]
    for sid in sids:
        deepgram.script(*[text for text, _ in SCRIPT], tag=sid)
    before = await server.metrics()
    cpu_before, own_before, wall_before = server.cpu_seconds(), time.process_time(), \
        time.monotonic()
    rss_peak = [server.rss()]
    reports: list[CallReport] = []
    caller_lag: list[float] = []

    async def one(sid: str, delay: float) -> None:
        reports.append(await _call(server.port, sid, delay))

    async def sample_rss() -> None:
        while True:
            await trio.sleep(2.0)
            rss_peak[0] = max(rss_peak[0], server.rss())

    async def sample_lag() -> None:
        # The server's own probe (server.metrics.monitor_loop_lag), in this process.
        while True:
            before = trio.current_time()
            await trio.sleep(LAG_PROBE_S)
            caller_lag.append(max(0.0, trio.current_time() - before - LAG_PROBE_S))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample_rss)
        nursery.start_soon(sample_lag)
        async with trio.open_nursery() as callers:
            for n, sid in enumerate(sids):
                callers.start_soon(one, sid, 2.0 * n / calls)
        nursery.cancel_scope.cancel()
    wall = time.monotonic() - wall_before
    cpu = server.cpu_seconds() - cpu_before
    own = time.process_time() - own_before
    after = await server.metrics()
    lag_before = dict(_histogram(before, "voicebot_event_loop_lag_seconds"))
    lag = [(le, count - lag_before.get(le, 0.0))
           for le, count in _histogram(after, "voicebot_event_loop_lag_seconds")]
    template: list[float] = []
    llm: list[float] = []
    unanswered = 0
    for report in reports:
        for line, (_, is_llm) in zip(report.lines, SCRIPT, strict=False):
            if line.v2v is None:
                unanswered += 1
            else:
                (llm if is_llm else template).append(line.v2v * 1000)
    call_seconds = sum(r.caller_audio[-1][0] - r.started_at for r in reports
                       if r.caller_audio) or wall * calls
    return PipelineRun(
        calls=calls,
        template_p50_ms=statistics.median(template) if template else float("nan"),
        template_p95_ms=_percentile(template, 0.95) if template else float("nan"),
        llm_p50_ms=statistics.median(llm) if llm else float("nan"),
        llm_p95_ms=_percentile(llm, 0.95) if llm else float("nan"),
        cpu_ms_per_call_s=cpu * 1000 / call_seconds,
        rss_kib_per_call=max(0, rss_peak[0] - server.idle_rss) / 1024 / calls,
        loop_lag_p99_ms=_quantile_bound(lag, 0.99) * 1000,
        unanswered=unanswered + (calls - len(reports)) * len(SCRIPT),
        caller_cpu_pct=100 * own / wall,
        caller_lag_p99_ms=_percentile(caller_lag, 0.99) * 1000)


HEADER = ("| calls | template v2v p50 / p95 ms | LLM v2v p50 / p95 ms | server CPU-ms / "
          "call-s | RSS KiB / call | loop lag p99 ms | unanswered | caller CPU % | caller "
          "loop lag p99 ms |")


def _row(r: PipelineRun, single: PipelineRun) -> str:
    mark = "" if r.within(single) else " ✗"
    return (f"| {r.calls}{mark} | {r.template_p50_ms:.0f} / {r.template_p95_ms:.0f} | "
            f"{r.llm_p50_ms:.0f} / {r.llm_p95_ms:.0f} | {r.cpu_ms_per_call_s:.2f} | "
            f"{r.rss_kib_per_call:.0f} | ≤{r.loop_lag_p99_ms:g} | {r.unanswered} | "
            f"{r.caller_cpu_pct:.0f} | {r.caller_lag_p99_ms:.0f} |")


async def run_sweep(args: argparse.Namespace, lines: list[str]) -> list[PipelineRun]:
    async with open_deepgram_sim(latency=Fixed(0.15), api_key="dg-sim") as dg, \
            open_elevenlabs_sim(ttfb=Fixed(0.2), api_key="el-sim") as el, \
            open_openai_sim(ttft=Fixed(0.4), token_gap=Fixed(1 / 60), api_key="oa-sim",
                            canned=ANSWERS) as oa:
        env = {"DEEPGRAM_API_KEY": "dg-sim", "DEEPGRAM_URL": dg.url,
               "ELEVENLABS_API_KEY": "el-sim", "ELEVENLABS_URL": el.url,
               "OPENAI_API_KEY": "oa-sim", "OPENAI_BASE_URL": oa.base_url}
        server = Server(args.server_core, vendors=env)
        rows: list[PipelineRun] = []
        try:
            await trio.to_thread.run_sync(server.wait_ready)
            # One call first, unmeasured: the process's template audio cache fills.
            await run_count(server, dg, 1)
            print(HEADER, flush=True)
            for calls in args.counts:
                for sim in (dg, el):  # what the last count's connections logged
                    sim.connections.clear()
                oa.requests.clear()
                # No cyclic GC in this process while calls run: a full pass over
                # the callers' and simulators' state stalls all of them at once
                # (~100 ms at 150 calls, read as the server's latency); the
                # cycles are collected between counts. The server collects as usual.
                gc.collect()
                gc.disable()
                try:
                    row = await run_count(server, dg, calls)
                finally:
                    gc.enable()
                rows.append(row)
                print(_row(row, rows[0]), flush=True)
                if not row.within(rows[0]) and not args.keep_going and calls > 1:
                    break
        finally:
            with trio.CancelScope(shield=True):  # a simulator failing must not orphan it
                await trio.to_thread.run_sync(server.stop)
        return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench load --pipeline",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=list(SWEEP),
                        help=f"concurrent call counts to try, the first the reference "
                        f"(default {' '.join(map(str, SWEEP))})")
    parser.add_argument("--keep-going", action="store_true",
                        help="try every count even after one falls outside 10 %%")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--caller-core", type=int, default=1)
    parser.add_argument("--nice", type=int, default=0,
                        help="nice increment for server and load generator (negative needs "
                             "root): shields the measurement from other jobs on a shared machine")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    lines = _machine()
    print("\n".join(lines), flush=True)
    if args.caller_core in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {args.caller_core})
    if args.nice:
        renice(args.nice)
    # A full GC pass over the generator's start-up heap (numba's import state:
    # ~70 ms) would stall every caller and simulator at once (see also
    # run_sweep); the server freezes its start-up heap the same way.
    gc.collect()
    gc.freeze()
    rows = trio.run(run_sweep, args, lines)
    single = rows[0] if rows else None
    passing = [r.calls for r in rows if single is not None and r.within(single)]
    verdict = (f"capacity: {max(passing) if passing else 'none'} concurrent calls with p95 "
               f"voice to voice within 10 % of {rows[0].calls} call(s) and every line "
               f"answered" if rows else "no runs")
    print(verdict)
    if not args.no_write and single is not None:
        RESULTS.write_text(
            "## Load: pipeline calls per core (`python -m bench load --pipeline "
            + " ".join(argv) + "`)\n\n" + "\n".join(f"- {line}" for line in lines)
            + f"\n- server pinned to core {args.server_core}, simulators and callers to core "
            f"{args.caller_core}, both at nice {args.nice:+d}; each call: greeting, 3 template "
            f"and 2 LLM lines\n\n"
            + "\n".join([HEADER, "|" + "---|" * 9, *(_row(r, single) for r in rows)])
            + f"\n\n{verdict}\n", "utf-8")
    return 0

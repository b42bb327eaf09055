"""``python -m bench latency``: voice to voice, ours beside the naive and seed flows, in one run.

K scripted calls per mode (default 20, ``--concurrency`` at a time) against a
server in a subprocess whose vendors are the loopback simulators in this
process (defaults: Deepgram final 150 ms after the audio, LLM first token 400
ms at 60 tokens/s, TTS first byte 200 ms; Deepgram's endpointing 300 ms), each
caller an Exotel-like softphone over the real WebSocket, paced in real time.
Each call: the greeting, three template replies and two LLM replies.

Modes, run one after the other against the same simulators:

- ``ours``: ``voicebot serve`` as shipped;
- ``naive``: ``voicebot serve --no-preempt --no-adaptive-endpointing
  --no-pause-finalize --no-vad-finalize --no-audio-cache``
  (the vendor's endpointing decides the turn, no preemptive generation, every
  line synthesized, whole first sentences);
- ``seed``: ``bench.seed``, the replaced design's sequential flow (a second of
  silence, batch STT, whole LLM reply, whole TTS, then send).

Reported per mode: voice to voice as the caller hears it (the line's last
speech sample → the first bot audio at the caller) for template and LLM lines
apart, p50/p95/p99; the greeting (``start`` → first audio at the caller); the
server's stage timestamps per LLM and template turn (ms after the end of
speech, from the session records in Redis; not for ``seed``); LLM requests per
LLM turn and the preempted replies kept; the LLM turns above the floor (first
token + first clause + TTS first byte). Written to ``bench/results/latency.md``,
``latency.json`` and ``latency.png`` (stage waterfall of the median LLM turn).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import trio

from bench.calls import ROOT, Serve
from providers.sim.deepgram_sim import DeepgramSim, open_deepgram_sim
from providers.sim.elevenlabs_sim import open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.sim.openai_sim import OpenAISim, open_openai_sim
from server.store.connection import StoreConfig, connect
from server.store.embedded import EmbeddedRedisServer
from server.store.records import LATENCY_MARKS
from server.store.redis_store import RedisBackend
from server.telephony.caller import dial
from server.telephony.softphone import CallReport, Line, talk

RESULTS = Path(__file__).parent / "results"
PRICE = "kitna hai total?"
SUBSIDY = "subsidy kaise milegi?"
ANSWERS = {
    PRICE: "A typical three kilowatt system is about one lakh ninety thousand rupees. The "
           "subsidy brings that down by up to seventy-eight thousand.",
    SUBSIDY: "The government pays up to seventy-eight thousand rupees straight into your bank "
             "account. We do all the paperwork for you.",
}
#: (line, answered by the LLM)
SCRIPT = (("haan ji, boliye", False), ("yes, bill is high", False), (PRICE, True),
          (SUBSIDY, True), ("I am busy right now, call me back tomorrow evening", False))
MODES: dict[str, tuple[str, ...]] = {
    "ours": ("server.cli", "serve"),
    "naive": ("server.cli", "serve", "--no-preempt", "--no-adaptive-endpointing",
              "--no-pause-finalize", "--no-vad-finalize", "--no-audio-cache"),
    "seed": ("bench.seed",),
}
STAGES = ("turn_final", "decided", "llm_first_token", "first_sentence", "tts_first_audio",
          "first_media_sent")


@dataclass(frozen=True, slots=True)
class Latencies:
    stt_s: float = 0.15
    ttft_s: float = 0.4
    tokens_per_s: float = 60.0
    tts_s: float = 0.2

    @property
    def floor_ms(self) -> float:
        """An LLM turn's least past the endpoint: first token, ~a first clause, TTS."""
        return (self.ttft_s + 0.05 + self.tts_s) * 1000


@dataclass
class ModeResult:
    mode: str
    template_ms: list[float] = field(default_factory=list)
    llm_ms: list[float] = field(default_factory=list)
    greeting_ms: list[float] = field(default_factory=list)
    stages: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {"llm": {}, "template": {}})
    llm_requests: int = 0
    llm_turns: int = 0
    preempted_kept: float = 0.0
    preempted_dropped: float = 0.0
    unanswered: int = 0
    seconds: float = 0.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _stats(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(statistics.median(values), 1),
            "p95": round(_pct(values, 0.95), 1), "p99": round(_pct(values, 0.99), 1)}


async def _one_call(port: int, call_sid: str) -> CallReport:
    # The call's campaign is its Deepgram usage tag: the simulator hears this
    # call's script whatever the other calls are saying.
    url = f"ws://127.0.0.1:{port}/media?sample-rate=8000&campaign_id={call_sid}"
    async with dial(url) as ws:
        return await talk(ws, [Line(text) for text, _ in SCRIPT], sample_rate=8000,
                          call_sid=call_sid)


def _stage_marks(redis_url: str, call_sids: list[str]) -> dict[str, dict[str, list[float]]]:
    """Per turn kind, each stage timestamp in ms after the end of speech."""
    found: dict[str, dict[str, list[float]]] = {"llm": {}, "template": {}}
    config = StoreConfig()
    client = connect(redis_url, config)
    try:
        backend = RedisBackend(client, config)
        for sid in call_sids:
            for record in backend.read_session(sid).latency:
                marks = record.marks
                end = marks.get("speech_end")
                if end is None:
                    continue
                kind = "llm" if "llm_first_token" in marks else "template"
                for name in LATENCY_MARKS:
                    if name in marks and name != "speech_end":
                        found[kind].setdefault(name, []).append((marks[name] - end) * 1000)
    finally:
        client.close()
    return found


def _counter(control_port: int, name: str, labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{control_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def run_mode(mode: str, args: argparse.Namespace, env: dict[str, str], work: Path,
                   redis_url: str, sims: tuple[DeepgramSim, OpenAISim]) -> ModeResult:
    result = ModeResult(mode)
    serve = Serve(env, work / f"{mode}.log", MODES[mode])
    try:
        await trio.to_thread.run_sync(serve.wait_ready)
        deepgram, openai = sims
        requests_before = len(openai.requests)
        sids = [f"lat{mode}{n}{int(time.time() * 1000)}" for n in range(args.calls)]
        for sid in sids:
            deepgram.script(*[text for text, _ in SCRIPT], tag=sid)
        reports: list[CallReport] = []
        limit = trio.CapacityLimiter(args.concurrency)
        started = time.monotonic()

        async def call(sid: str) -> None:
            async with limit:
                reports.append(await _one_call(serve.port, sid))

        async with trio.open_nursery() as nursery:
            for sid in sids:
                nursery.start_soon(call, sid)
                await trio.sleep(0.3)  # callers do not all speak on the same frame
        result.seconds = time.monotonic() - started
        for report in reports:
            if report.greeting_at is not None:
                result.greeting_ms.append((report.greeting_at - report.started_at) * 1000)
            for line, (_, llm) in zip(report.lines, SCRIPT, strict=False):
                if line.v2v is None:
                    result.unanswered += 1
                    continue
                (result.llm_ms if llm else result.template_ms).append(line.v2v * 1000)
        result.llm_turns = sum(llm for _, llm in SCRIPT) * len(reports)
        result.llm_requests = sum(1 for body in openai.requests[requests_before:]
                                  if "response_format" not in body)
        if mode != "seed":
            await trio.sleep(1.0)  # the last turns' records reach Redis
            result.stages = await trio.to_thread.run_sync(_stage_marks, redis_url, sids)
            result.preempted_kept = _counter(serve.control_port, "voicebot_preemptions_total",
                                             'result="kept"')
            result.preempted_dropped = sum(
                _counter(serve.control_port, "voicebot_preemptions_total", f'result="{r}"')
                for r in ("changed", "resumed"))
    finally:
        await trio.to_thread.run_sync(serve.stop)
    return result


async def run_all(args: argparse.Namespace, work: Path) -> list[ModeResult]:
    lat = args.latencies
    redis = EmbeddedRedisServer(socket_dir=work)
    redis.start()
    try:
        async with open_deepgram_sim(latency=Fixed(lat.stt_s), api_key="dg-sim") as dg, \
                open_elevenlabs_sim(ttfb=Fixed(lat.tts_s), api_key="el-sim") as el, \
                open_openai_sim(ttft=Fixed(lat.ttft_s), token_gap=Fixed(1 / lat.tokens_per_s),
                                api_key="oa-sim", canned=ANSWERS) as oa:
            env = {**os.environ, "DEEPGRAM_API_KEY": "dg-sim", "DEEPGRAM_URL": dg.url,
                   "ELEVENLABS_API_KEY": "el-sim", "ELEVENLABS_URL": el.url,
                   "OPENAI_API_KEY": "oa-sim", "OPENAI_BASE_URL": oa.base_url,
                   "REDIS_URL": redis.url, "VOICEBOT_STATE_DIR": str(work / "state")}
            results = []
            for mode in args.modes:
                result = await run_mode(mode, args, env, work, redis.url, (dg, oa))
                print(_summary_line(result), flush=True)
                results.append(result)
            return results
    finally:
        redis.stop()


def _summary_line(r: ModeResult) -> str:
    def p50(values: list[float]) -> str:
        return f"{statistics.median(values):.0f}" if values else "-"

    return (f"{r.mode:6} template p50 {p50(r.template_ms)} ms, LLM p50 {p50(r.llm_ms)} ms, "
            f"greeting p50 {p50(r.greeting_ms)} ms, unanswered {r.unanswered}, "
            f"{r.seconds:.0f} s")


def report(results: list[ModeResult], lat: Latencies, argv: list[str]) -> dict[str, Any]:
    by_mode: dict[str, Any] = {}
    for r in results:
        by_mode[r.mode] = {
            "template_v2v_ms": _stats(r.template_ms), "llm_v2v_ms": _stats(r.llm_ms),
            "greeting_ms": _stats(r.greeting_ms),
            "stages_ms": {kind: {name: _stats(values) for name, values in marks.items()}
                          for kind, marks in r.stages.items()},
            "llm_requests_per_llm_turn": round(r.llm_requests / r.llm_turns, 3)
            if r.llm_turns else None,
            "preempted_kept": r.preempted_kept, "preempted_dropped": r.preempted_dropped,
            "llm_above_floor_ms_p50": round(statistics.median(r.llm_ms) - lat.floor_ms, 1)
            if r.llm_ms else None,
            "unanswered": r.unanswered, "seconds": round(r.seconds, 1)}
    return {"argv": argv, "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
            "python": platform.python_version(),
            "latencies": {"stt_final_ms": lat.stt_s * 1000, "llm_first_token_ms":
                          lat.ttft_s * 1000, "tokens_per_s": lat.tokens_per_s,
                          "tts_first_byte_ms": lat.tts_s * 1000, "floor_ms": lat.floor_ms},
            "modes": by_mode}


def _ratio(data: dict[str, Any], kind: str, mode: str) -> str:
    ours = data["modes"].get("ours", {}).get(kind, {}).get("p50")
    other = data["modes"].get(mode, {}).get(kind, {}).get("p50")
    return f"{ours / other:.2f}" if ours and other else "–"


def markdown(data: dict[str, Any]) -> str:
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("trio", "numpy", "numba"))
    lat = data["latencies"]
    modes = data["modes"]

    def cell(mode: str, key: str) -> str:
        s = modes[mode][key]
        return f"{s['p50']:.0f} / {s['p95']:.0f} / {s['p99']:.0f}" if s.get("n") else "–"

    rows = "\n".join(
        f"| {mode} | {cell(mode, 'template_v2v_ms')} | {cell(mode, 'llm_v2v_ms')} | "
        f"{cell(mode, 'greeting_ms')} | {m['llm_requests_per_llm_turn']} | "
        f"{m['preempted_kept']:.0f} kept, {m['preempted_dropped']:.0f} dropped | "
        f"{m['llm_above_floor_ms_p50']} | {m['unanswered']} |" for mode, m in modes.items())
    stage_rows = []
    for kind in ("llm", "template"):
        for name in STAGES:
            cells = []
            for mode in modes:
                s = modes[mode]["stages_ms"].get(kind, {}).get(name, {})
                cells.append(f"{s['p50']:.0f} / {s['p95']:.0f} / {s['p99']:.0f}"
                             if s.get("n") else "–")
            stage_rows.append(f"| {kind} | {name} | " + " | ".join(cells) + " |")
    head = " | ".join(modes)
    command = " ".join(["python -m bench latency", *data["argv"]])
    table_head = ("| mode | template v2v p50/p95/p99 ms | LLM v2v p50/p95/p99 ms | greeting ms "
                  "| LLM requests per LLM turn | preempted | LLM p50 above floor ms "
                  "| unanswered |")
    return f"""## Voice to voice: ours, naive, seed (`{command}`)

- machine: {data['machine']} (shared, noisy); python {data['python']}; {versions}
- simulators: STT final {lat['stt_final_ms']:.0f} ms, LLM first token \
{lat['llm_first_token_ms']:.0f} ms at {lat['tokens_per_s']:.0f} tokens/s, TTS first byte \
{lat['tts_first_byte_ms']:.0f} ms; the LLM floor past the endpoint {lat['floor_ms']:.0f} ms

{table_head}
|---|---|---|---|---|---|---|---|
{rows}

Ratios of the medians, ours ÷ naive: template {_ratio(data, 'template_v2v_ms', 'naive')}, \
LLM {_ratio(data, 'llm_v2v_ms', 'naive')}; ours ÷ seed: template \
{_ratio(data, 'template_v2v_ms', 'seed')}, LLM {_ratio(data, 'llm_v2v_ms', 'seed')}.

Server stage timestamps, ms after the end of the caller's speech (p50 / p95 / p99; the
seed flow records none):

| turn | stage | {head} |
|---|---|{'---|' * len(modes)}
{chr(10).join(stage_rows)}

![stage waterfall](latency.png)
"""


def waterfall(data: dict[str, Any], path: Path) -> None:
    """The median LLM turn's stages per mode, and its v2v at the caller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(data["modes"])
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.6 * len(modes)))
    labelled: set[str] = set()
    for row, mode in enumerate(modes):
        stages = data["modes"][mode]["stages_ms"].get("llm", {})
        # Each stage's bar runs from the stage reached before it (in time: with
        # preemptive generation the decision comes before the turn is final).
        reached = sorted((stages[name]["p50"], k, name) for k, name in enumerate(STAGES)
                         if stages.get(name, {}).get("p50") is not None)
        start = 0.0
        for end, k, name in reached:
            ax.barh(row, end - start, left=start, color=f"C{k}",
                    label=None if name in labelled else name)
            labelled.add(name)
            start = end
        v2v = data["modes"][mode]["llm_v2v_ms"].get("p50")
        if v2v is not None:
            ax.plot([v2v], [row], marker="|", color="black", markersize=18)
            ax.annotate(f"{v2v:.0f} ms", (v2v, row), xytext=(6, 0), textcoords="offset points",
                        va="center")
    longest = max((m["llm_v2v_ms"].get("p50") or 0.0) for m in data["modes"].values())
    ax.set_xlim(0, longest * 1.15 + 1)
    ax.set_yticks(range(len(modes)), [m if data["modes"][m]["stages_ms"].get("llm")
                                      else f"{m} (no stage marks)" for m in modes])
    ax.invert_yaxis()
    ax.set_xlabel("ms after the caller stopped speaking (| = LLM reply's first audio at the "
                  "caller, median)")
    ax.set_title("LLM turn: median stage timestamps by mode")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _latencies(text: str) -> Latencies:
    stt, ttft, tps, tts = (float(x) for x in text.split(","))
    return Latencies(stt / 1000, ttft / 1000, tps, tts / 1000)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20, help="calls per mode (default 20)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="calls at once (default 4)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--latencies", type=_latencies, default=Latencies(),
                        metavar="STT_MS,TTFT_MS,TOKENS_PER_S,TTS_MS",
                        help="simulator latencies (default 150,400,60,200)")
    parser.add_argument("--no-write", action="store_true", help="do not write results")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="keep the servers' logs (and Redis data) in DIR")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = trio.run(run_all, args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="voicebot-latency-") as tmp:
            results = trio.run(run_all, args, Path(tmp))
    data = report(results, args.latencies, argv)
    text = markdown(data)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latency.md").write_text(text, "utf-8")
        (RESULTS / "latency.json").write_text(json.dumps(data, indent=2) + "\n", "utf-8")
        waterfall(data, RESULTS / "latency.png")
        print(f"written: {(RESULTS / 'latency.md').relative_to(ROOT)}, latency.json, "
              "latency.png")
    # The seed flow misses lines by design (a caller who speaks within its second
    # of silence); ours and naive must answer every line.
    return 0 if all(r.unanswered == 0 for r in results if r.mode != "seed") else 1

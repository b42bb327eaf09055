"""A whole call through the real pipeline handler, in-process: the call server's
per-connection handler over an in-memory stream, the vendor simulators on
loopback, and the scripted caller (``server.telephony.softphone``).

Run under trio's ``MockClock(autojump_threshold=0)`` (pytest-trio's
``autojump_clock``) every figure is virtual time and exact; on the real clock
it is a real-time call. The pipeline tests (``tests/handlers``) and the
whole-turn budget check (``bench.turn_budgets``) share it. Nothing here may
use a worker thread or Redis: a task waiting on a thread counts as blocked,
so the virtual clock would jump while the thread runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import trio
import trio.testing
from trio_websocket import wrap_client_stream

from dialogue import load_playbook
from dialogue.playbook import Playbook
from providers.config import DeepgramConfig, ElevenLabsConfig, OpenAIConfig, Secret
from providers.sim.deepgram_sim import DeepgramSim, open_deepgram_sim
from providers.sim.elevenlabs_sim import ElevenLabsSim, open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.sim.openai_sim import OpenAISim, open_openai_sim
from server.calls.hook import (
    CallRecord,
    CallRecordFactory,
    CallSession,
    CallSummary,
    DialogueReport,
    TurnReport,
)
from server.calls.server import CallServer
from server.config import ServerConfig
from server.handlers.pipeline import (
    AudioCache,
    EngineChoice,
    EngineSettings,
    Pipeline,
    PipelineOptions,
    open_engines,
)
from server.store.records import LeadContext
from server.telephony.softphone import CallReport, Line, talk
from server.ws.connection import WebSocketLimits
from server.ws.listen import serve_connection

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 12, 5, 11, 0, tzinfo=IST)  # a Saturday morning


class Recorded:
    """A ``CallRecord`` that keeps everything it is told (the store's role)."""

    def __init__(self, lead: LeadContext | None = None) -> None:
        self.session: CallSession | None = None
        self.turns: list[TurnReport] = []
        self.progress_reports: list[DialogueReport] = []
        self.summary: CallSummary | None = None
        self._lead = lead

    def started(self, session: CallSession) -> None:
        self.session = session

    async def lead(self) -> LeadContext:
        params = self.session.custom_parameters if self.session else {}
        return self._lead or LeadContext(params=params)

    def turn(self, report: TurnReport) -> None:
        self.turns.append(report)

    def progress(self, report: DialogueReport) -> None:
        self.progress_reports.append(report)

    def ended(self, summary: CallSummary) -> None:
        self.summary = summary

    @property
    def last(self) -> DialogueReport:
        return self.progress_reports[-1]


class _Tee:
    """A ``CallRecord`` telling a ``Recorded`` and a real record alike (the
    lead comes from the real one)."""

    def __init__(self, copy: Recorded, real: CallRecord) -> None:
        self.copy, self.real = copy, real

    def started(self, session: CallSession) -> None:
        self.copy.started(session)
        self.real.started(session)

    async def lead(self) -> LeadContext:
        return await self.real.lead()

    def turn(self, report: TurnReport) -> None:
        self.copy.turn(report)
        self.real.turn(report)

    def progress(self, report: DialogueReport) -> None:
        self.copy.progress(report)
        self.real.progress(report)

    def ended(self, summary: CallSummary) -> None:
        self.copy.ended(summary)
        self.real.ended(summary)


@dataclass
class Sims:
    deepgram: DeepgramSim
    elevenlabs: ElevenLabsSim
    openai: OpenAISim


@dataclass
class CallRun:
    report: CallReport
    record: Recorded
    sims: Sims
    server: CallServer
    extras: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def simulators(*, llm_answers: Mapping[str, str] | None = None,
                     ttft: float = 0.4, tts_first_byte: float = 0.2,
                     dg_latency: float = 0.0, tokens_per_s: float = 60.0,
                     llm_responder: Callable[[Mapping[str, Any]], str] | None = None,
                     tts_finals_per_flush: bool = True,
                     ) -> AsyncIterator[Sims]:
    """The three vendor simulators; the LLM answers ``llm_answers`` by the last
    user message, else ``llm_responder(request body)``, else an echo. Latencies
    are fixed: ``dg_latency`` before every Deepgram message (so a final comes
    that long after ``Finalize``), the LLM's first token after ``ttft`` and one
    token (a word) every ``1 / tokens_per_s`` after it, the TTS's first audio
    ``tts_first_byte`` after each sentence is sent. ``tts_finals_per_flush``:
    the ElevenLabs sim answers every ``flush`` with ``isFinal`` (True), or only
    a closed context, as the live service is reported to (False; see
    :mod:`providers.sim.elevenlabs_ws`)."""
    async with open_deepgram_sim(latency=Fixed(dg_latency)) as dg, \
            open_elevenlabs_sim(ttfb=Fixed(tts_first_byte),
                                finals_per_flush=tts_finals_per_flush) as el, \
            open_openai_sim(ttft=Fixed(ttft), token_gap=Fixed(1 / tokens_per_s),
                            canned=dict(llm_answers or {}), responder=llm_responder) as oa:
        yield Sims(dg, el, oa)


def sim_settings(sims: Sims, *, llm: bool = True) -> EngineSettings:
    """The engine settings that point every vendor at ``sims``."""
    choice = EngineChoice("deepgram", "elevenlabs", "openai" if llm else "none")
    return EngineSettings(
        choice, DeepgramConfig(url=sims.deepgram.url),
        ElevenLabsConfig(url=sims.elevenlabs.url, api_key=Secret("k"), voice_id="en-us"),
        OpenAIConfig(base_url=sims.openai.base_url))


def call_limit_s(lines: list[Line]) -> float:
    """How long a scripted call may take before the caller gives up: generous
    for every line (a minute each, plus its silence) and the greeting."""
    return 60.0 + sum(60.0 + (line.silent_s or 0.0) for line in lines)


async def run_call(sims: Sims, lines: list[Line], *, llm: bool = True,
                   options: PipelineOptions | None = None, rate: int = 8000,
                   lead: LeadContext | None = None, clock: datetime = NOW,
                   config: ServerConfig | None = None,
                   playbook: Playbook | None = None,
                   cache: AudioCache | None = None,
                   call_record: CallRecordFactory | None = None,
                   resource: str | None = None,
                   around_call: Callable[[Pipeline], AbstractAsyncContextManager[object]]
                   | None = None,
                   ) -> CallRun:
    """One call: ``lines`` said to the pipeline; the Deepgram sim hears each
    line's text (a line of ``audio`` with no text is wordless noise).
    ``cache``: the process's template audio cache (default: empty).
    ``call_record``: a real record (e.g. the session store's) told everything
    too; ``CallRun.record`` keeps a copy either way. ``resource``: the upgrade
    URL's path and query (default ``/media?sample-rate={rate}``).
    ``around_call``: entered with the process's pipeline before the caller
    dials and left after the call (e.g. ``/exotel/url`` announcing it). The
    caller hangs up after ``call_limit_s(lines)`` whatever happened
    (``CallReport.gave_up``), and the bot hanging up early leaves the rest
    ``CallReport.unsaid``: a call that goes other than its test expects
    returns, for the test's assertions to fail."""
    sims.deepgram.script(*[line.text for line in lines
                           if (line.text or line.audio is not None) and line.dtmf is None])
    settings = sim_settings(sims, llm=llm)
    record = Recorded(lead)

    @asynccontextmanager
    async def open_record() -> AsyncIterator[CallRecord]:
        if call_record is None:
            yield record
            return
        async with call_record() as real:
            yield _Tee(record, real)

    async with open_engines(settings, cache) as engines:
        pipeline = Pipeline(engines, playbook or load_playbook(), options or PipelineOptions(),
                            clock=lambda: clock)
        server = CallServer(config or ServerConfig(), pipeline.handler_factory(),
                            call_record=open_record)
        client_stream, server_stream = trio.testing.memory_stream_pair()
        async with around_call(pipeline) if around_call else nullcontext(), \
                trio.open_nursery() as nursery:
            nursery.start_soon(serve_connection, server.handle_request, WebSocketLimits(),
                               server_stream)
            ws = await wrap_client_stream(nursery, client_stream, "test",  # type: ignore[arg-type]
                                          resource or f"/media?sample-rate={rate}")
            report = await talk(ws, lines, sample_rate=rate, max_call_s=call_limit_s(lines))
            await ws.aclose()
            with trio.fail_after(30):
                await server.wait_idle()
    return CallRun(report, record, sims, server)

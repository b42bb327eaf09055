"""An uncertain turn's LLM reading runs beside its reply (issue 16, item 5):
the reply is not held for it, and the slots it finds reach the outcome."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
import trio.testing

from dialogue import LLM_BELOW_CONFIDENCE, analyze
from dialogue.model import Stage
from server.handlers.pipeline import PipelineOptions
from server.store.records import LeadContext
from server.telephony.softphone import Line
from tests.handlers.pipeline_harness import NOW, run_call, simulators

UNSURE = "hmm something like a scooter maybe"  # at the budget question: other, 0.6
LINES = [Line("haan ji, boliye"), Line("yes, bill is high"),
         Line("yes it's my own house, I decide"), Line(UNSURE),
         Line("I am busy right now, call me back tomorrow evening")]
READING = {"intent": "other", "objection": None, "sentiment": 0.1, "buying_signals": [],
           "budget_inr": 80000, "timeline": None, "callback_at": None,
           "decision_maker": None, "need": None, "confidence": 0.8}


class Reader:
    """The LLM: a JSON reading for structured requests, a short answer otherwise;
    notes when each request arrived (the simulator asks as a request arrives)."""

    def __init__(self) -> None:
        self.arrived: list[tuple[float, str]] = []

    def __call__(self, body: Mapping[str, Any]) -> str:
        structured = "response_format" in body
        self.arrived.append((trio.current_time(), "reading" if structured else "reply"))
        if structured:
            return json.dumps(READING)
        return "Most families here spend about one lakh on it."


def json_requests(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in bodies if "response_format" in b]


def test_the_turn_is_one_the_rules_are_unsure_of() -> None:
    analysis = analyze(UNSURE, Stage.QUALIFICATION, NOW)
    assert analysis.confidence < LLM_BELOW_CONFIDENCE
    assert "budget_inr" not in analysis.slots


async def test_an_unsure_turn_is_read_by_the_llm_beside_its_reply_and_the_budget_is_kept(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server.handlers.pipeline.conversation")
    reader = Reader()
    async with simulators(llm_responder=reader, ttft=1.2) as sims:
        run = await run_call(sims, LINES, lead=LeadContext(name="Rahul"))
    [request] = json_requests(sims.openai.requests)  # only the unsure turn
    assert request["messages"][-1]["content"].endswith(f"Caller turn to label: {UNSURE}")
    assert "Do you have a budget in mind" in request["messages"][-1]["content"]  # the question
    assert run.record.last.slots["budget_inr"] == 80000
    assert run.record.last.slots["callback_at"] is not None  # the later turn still decided
    assert "turn refined" in caplog.messages
    # Not in front of the reply: the turn's answer (an LLM reply here) was asked
    # for together with the reading or before it (preemptive generation starts it
    # at the caller's pause), not after the reading's 1.2 s and more.
    [(read_at, _)] = [a for a in reader.arrived if a[1] == "reading"]
    replies_at = [at for at, kind in reader.arrived if kind == "reply"]
    assert any(-0.5 < at - read_at < 0.05 for at in replies_at)


async def test_a_reading_later_than_its_deadline_is_dropped(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server.handlers.pipeline.conversation")
    async with simulators(llm_responder=Reader(), ttft=0.4) as sims:
        run = await run_call(sims, LINES, lead=LeadContext(name="Rahul"),
                             options=PipelineOptions(refine_deadline_s=0.3))
    assert len(json_requests(sims.openai.requests)) == 1
    assert "budget_inr" not in run.record.last.slots
    assert "turn not refined: no reading in time" in caplog.messages
    assert run.record.last.stage is Stage.FOLLOW_UP_SCHEDULED


async def test_without_an_llm_nothing_is_refined(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators(llm_responder=Reader()) as sims:
        run = await run_call(sims, LINES, llm=False, lead=LeadContext(name="Rahul"))
    assert sims.openai.requests == []
    assert "budget_inr" not in run.record.last.slots
    assert len(run.record.turns) == len(LINES) + 1

"""Whole calls through the pipeline on virtual time, against the simulators."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trio.testing

from dialogue.model import Stage
from server.config import ServerConfig
from server.handlers.pipeline.handler import usage_tag
from server.store.records import LeadContext
from server.telephony.softphone import Line
from tests.handlers.pipeline_harness import IST, run_call, simulators

SCRIPT_NOW = datetime(2026, 11, 24, 11, 0, tzinfo=IST)  # the scripts' Tuesday


async def test_a_busy_lead_is_called_back_tomorrow_evening(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators() as sims:
        run = await run_call(sims, [Line("I am busy right now, call me back tomorrow evening")])
    record, report = run.record, run.report
    assert report.greeting_at is not None
    assert record.summary is not None
    assert record.summary.reason == "completed"
    assert record.last.stage is Stage.FOLLOW_UP_SCHEDULED
    assert record.last.slots["callback_at"] == datetime(2026, 12, 6, 18, 0, tzinfo=IST)
    [line] = report.lines
    assert line.v2v is not None
    assert line.v2v < 1.0
    assert [t.caller_text for t in record.turns] == [
        "", "I am busy right now, call me back tomorrow evening"]


GREETING = ("Namaste, am I speaking with Rahul? This is Priya from SuryaKiran Solar, "
            "calling about rooftop solar for your home. Do you have two minutes?")


@pytest.mark.parametrize(("limit_s", "heard"), [
    (3.0, "Namaste, am I speaking with Rahul? This is"),
    # all its audio sent, its last mark due when the call ends
    (8.2, GREETING.removesuffix(" minutes?")),
])
async def test_a_call_ended_during_the_greeting_still_reports_it_as_heard(
    limit_s: float, heard: str, autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators() as sims:
        run = await run_call(sims, [Line(silent_s=30.0)], lead=LeadContext(name="Rahul"),
                             config=ServerConfig(max_call_seconds=limit_s))
    # A template's audio is queued at once: the greeting waits for its marks.
    record = run.record
    assert record.summary is not None
    assert record.summary.reason == "time_limit"
    [greeting] = record.turns  # reported once, with what the marks say was heard
    assert greeting.caller_text == ""
    assert greeting.bot_text == GREETING
    assert greeting.heard_text == heard
    assert greeting.stage_after is Stage.INTRO


ANSWER = ("Great question. The total depends on your roof and your bill. For a three "
          "kilowatt system it is about one lakh eighty thousand rupees before the subsidy. "
          "The subsidy brings it down by seventy-eight thousand, and most families pay the "
          "rest as a monthly EMI that is smaller than their old bill. The panels carry a "
          "twenty-five year warranty, the inverter ten years, and our team does the net "
          "metering paperwork with the electricity board for you. Installation takes two "
          "days, and the first service visit is free. Many of our customers in your area "
          "recovered the cost in about four years, and after that the power is practically "
          "free for the next twenty years.")  # at 60 tokens/s: still streaming 2 s in


async def test_a_call_ended_while_the_llm_answers_still_reports_the_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators(llm_answers={"kitna hai total?": ANSWER}) as sims:
        run = await run_call(sims, [Line("kitna hai total?")], lead=LeadContext(name="Rahul"),
                             config=ServerConfig(max_call_seconds=12.2))
    assert sims.openai.disconnects == 1  # the call ended while the answer streamed
    record = run.record
    assert record.summary is not None
    assert record.summary.reason == "time_limit"
    assert [t.caller_text for t in record.turns] == ["", "kitna hai total?"]
    greeting, answer = record.turns
    assert greeting.heard_text is None  # heard whole
    assert answer.bot_text.startswith("Great question.")
    assert answer.heard_text == "Great question."
    assert answer.analysis is not None
    assert answer.stage_after is Stage.INTRO


SCRIPTS = tomllib.loads(
    (Path(__file__).parent.parent / "data" / "conversations" / "scripts.toml").read_text("utf-8"))
PLAIN = [s for s in SCRIPTS["conversation"]
         if not any("heard" in t for t in s["turns"])]  # barge-ins are tested apart


def _lines(script: dict[str, Any]) -> list[dict[str, Any]]:
    """The script's turns up to the one that ends the call (the bot hangs up there)."""
    turns = [*SCRIPTS["prefixes"].get(script.get("start", ""), []), *script["turns"]]
    for n, turn in enumerate(turns):
        if turn["stage"] == "ENDED":
            return turns[: n + 1]
    return turns


@pytest.mark.parametrize("script", PLAIN, ids=[s["name"] for s in PLAIN])
async def test_scripted_conversations_reach_their_outcome_over_the_wire(
    script: dict[str, Any], autojump_clock: trio.testing.MockClock,
) -> None:
    """The scripts specify the rules engine: they run with no LLM configured
    (templates only, as ``voicebot demo`` without OpenAI keys), so a turn the
    analysis is unsure of is acted on as read (``test_pipeline_unsure`` has
    the LLM's side)."""
    turns = _lines(script)
    now = datetime.fromisoformat(script["now"]) if "now" in script else SCRIPT_NOW
    async with simulators() as sims:
        run = await run_call(sims, [Line(t["say"]) for t in turns], llm=False,
                             lead=LeadContext(name="Rahul"), clock=now)
    assert sims.openai.requests == []
    record = run.record
    assert not run.report.gave_up, "the call never ended"
    assert run.report.unsaid == [], "the bot hung up before these lines"
    ended = turns[-1]["stage"] == "ENDED"
    assert record.summary is not None
    assert record.summary.reason == ("completed" if ended else "stop")
    assert record.turns[0].bot_text.startswith("Namaste, am I speaking with Rahul?")
    answered = [line.v2v for line in run.report.lines]
    assert all(v is not None and v < 2.0 for v in answered), answered  # every turn answered
    stages = [t.stage_after.value for t in record.turns[1:] if t.stage_after]
    assert stages == [t["stage"] for t in turns]
    if "outcome" in script and ended:
        assert record.last.stage.value == script["outcome"]
    if "callback_at" in script:
        assert record.last.slots["callback_at"] == datetime.fromisoformat(script["callback_at"])
    assert record.last.do_not_call is script.get("do_not_call", False)
    for key, value in script.get("slots", {}).items():
        assert record.last.slots[key] == value
    assert run.report.violations == 0


def test_the_campaign_labels_the_vendors_usage_only_when_it_is_a_plain_id() -> None:
    assert usage_tag({"campaign_id": "diwali-2026.v2"}) == "diwali-2026.v2"
    assert usage_tag({}) is None
    assert usage_tag({"campaign_id": ""}) is None
    assert usage_tag({"campaign_id": "a&tag=b"}) is None  # nothing else reaches the query
    assert usage_tag({"campaign_id": "x" * 65}) is None


async def test_a_call_the_bot_ends_with_lines_left_returns_them_unsaid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lines = [Line("please don't call me again"), Line("hello?"), Line("are you there?")]
    async with simulators() as sims:
        run = await run_call(sims, lines, lead=LeadContext(name="Rahul"))
    report = run.report
    assert report.hung_up_by_bot
    assert not report.gave_up
    assert [result.line for result in report.lines] == lines[:1]
    assert report.unsaid == lines[1:]
    assert run.record.summary is not None
    assert run.record.summary.reason == "completed"
    assert run.record.last.do_not_call


LONG = ("I wanted to ask about the subsidy and the monthly EMI and the warranty on "
        "the panels and also who will come for the installation")  # ~8 s of speech


async def test_a_call_ended_while_the_caller_speaks_returns_the_line_cut_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lines = [Line(LONG), Line("hello?")]
    async with simulators() as sims:
        run = await run_call(sims, lines, lead=LeadContext(name="Rahul"),
                             config=ServerConfig(max_call_seconds=12.0))
    report = run.report
    assert report.hung_up_by_bot
    [cut] = report.lines
    assert cut.spoke_at is not None
    assert cut.spoke_at < 12.0
    assert cut.speech_end is None  # the bot hung up before its end
    assert report.unsaid == lines[1:]
    assert run.record.summary is not None
    assert run.record.summary.reason == "time_limit"

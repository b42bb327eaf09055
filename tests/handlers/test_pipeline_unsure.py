"""A turn the analysis is unsure of, with an LLM configured, is answered
through the LLM (issue 16, item 5): the reply request carries the caller's
words, the stage stays, and the structured reading beside the reply corrects
the slots. Sure turns keep their templates; a second unsure turn in a row and
a do-not-call are acted on as read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import trio.testing

from dialogue import LLM_BELOW_CONFIDENCE, analyze
from dialogue.model import Intent, Stage
from server.store.records import LeadContext
from server.telephony.softphone import Line
from tests.handlers.pipeline_harness import NOW, CallRun, run_call, simulators

MISREAD = "ye unka number hai"  # "this is his number": read at the greeting as wrong_person
AGAIN = "ye office ka number hai"  # "this is the office number": wrong_person, unsure again
DNC = "list se mera naam hatao"  # "take my name off the list": do_not_call, unsure
BUSY = "I am busy right now, call me back tomorrow evening"
ANSWER = "No problem, Rahul. Could I tell you in two minutes how solar cuts your bill?"
READING: dict[str, object] = {
    "intent": "callback_request", "objection": None, "sentiment": 0.0, "buying_signals": [],
    "budget_inr": 80000, "timeline": None, "callback_at": None, "decision_maker": None,
    "need": None, "confidence": 0.8}
RAHUL = LeadContext(name="Rahul")


def _llm(body: Mapping[str, Any]) -> str:
    """The LLM: a JSON reading for structured requests, ``ANSWER`` otherwise."""
    return json.dumps(READING) if "response_format" in body else ANSWER


def _replies(run: CallRun) -> list[list[str]]:
    """The caller's words in each reply request (not the structured readings)."""
    return [[m["content"] for m in body["messages"] if m["role"] == "user"]
            for body in run.sims.openai.requests if "response_format" not in body]


def test_the_turns_are_ones_the_rules_are_unsure_of() -> None:
    for text, intent in ((MISREAD, Intent.WRONG_PERSON), (AGAIN, Intent.WRONG_PERSON),
                         (DNC, Intent.DO_NOT_CALL)):
        analysis = analyze(text, Stage.INTRO, NOW)
        assert analysis.intent is intent, text
        assert analysis.confidence < LLM_BELOW_CONFIDENCE, text
    assert analyze(BUSY, Stage.INTRO, NOW).confidence >= LLM_BELOW_CONFIDENCE


async def test_an_unsure_turn_is_answered_by_the_llm_and_refined_beside_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators(llm_responder=_llm) as sims:
        run = await run_call(sims, [Line(MISREAD), Line(BUSY)], lead=RAHUL)
    replies = _replies(run)
    assert replies
    assert all(words[-1] == MISREAD for words in replies)  # the caller's words, last
    [turn] = [t for t in run.record.turns if t.caller_text == MISREAD]
    assert turn.bot_text == ANSWER
    assert "llm_first_token" in turn.marks
    assert turn.stage_after is Stage.INTRO  # the unsure wrong_person was not acted on
    # The reading beside the reply found a budget the rules did not: it is kept.
    [reading] = [b for b in sims.openai.requests if "response_format" in b]
    assert reading["messages"][-1]["content"].endswith(MISREAD)
    assert run.record.last.slots["budget_inr"] == 80000
    # The sure turn after it is a template, and the call goes on to its outcome.
    assert run.record.turns[-1].bot_text.startswith("Done, I'll call you tomorrow at 6 PM")
    assert run.record.last.stage is Stage.FOLLOW_UP_SCHEDULED
    assert not run.report.unsaid


async def test_without_an_llm_the_unsure_turn_is_acted_on_as_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators(llm_responder=_llm) as sims:
        run = await run_call(sims, [Line(MISREAD), Line(BUSY)], llm=False, lead=RAHUL)
    assert sims.openai.requests == []
    assert run.record.last.stage is Stage.DEAD_END  # wrong person: the call ended there
    assert run.report.unsaid == [Line(BUSY)]


async def test_a_sure_turn_is_answered_by_its_template(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators(llm_responder=_llm) as sims:
        run = await run_call(sims, [Line("haan ji, boliye")], lead=RAHUL)
    assert sims.openai.requests == []  # no reply, no reading
    turn = run.record.turns[-1]
    assert turn.bot_text.startswith("Thank you! To see if solar makes sense for you")
    assert turn.stage_after is Stage.DISCOVERY


async def test_a_second_unsure_turn_in_a_row_is_acted_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators(llm_responder=_llm) as sims:
        run = await run_call(sims, [Line(MISREAD), Line(AGAIN), Line(BUSY)], lead=RAHUL)
    assert all(words[-1] == MISREAD for words in _replies(run))  # not AGAIN
    turns = {t.caller_text: t for t in run.record.turns}
    assert turns[MISREAD].stage_after is Stage.INTRO
    assert turns[AGAIN].stage_after is Stage.ENDED  # wrong person, acted on: no loop
    assert turns[AGAIN].bot_text == "Oh, my apologies for the trouble. Have a good day!"
    assert run.record.last.stage is Stage.DEAD_END
    assert run.report.unsaid == [Line(BUSY)]
    # Both were read beside their replies (the second too late to matter).
    assert len([b for b in sims.openai.requests if "response_format" in b]) == 2


async def test_an_unsure_do_not_call_never_goes_to_the_llm(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators(llm_responder=_llm) as sims:
        run = await run_call(sims, [Line(DNC), Line("hello?")], lead=RAHUL)
    assert _replies(run) == []
    turn = run.record.turns[-1]
    assert turn.caller_text == DNC
    assert turn.bot_text.startswith("Understood. I have removed your number")
    assert run.record.last.do_not_call
    assert run.record.last.stage is Stage.DEAD_END
    assert run.report.unsaid == [Line("hello?")]

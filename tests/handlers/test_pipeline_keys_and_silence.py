"""Key presses and silence in a whole call, on virtual time: DTMF digits are
turns (``[call.dtmf]``), a silent caller gets one re-prompt and then the
goodbye, and the call ends ``no_response``."""

from __future__ import annotations

import trio.testing

from dialogue.model import Stage
from server.store.records import LeadContext
from server.telephony.softphone import Line
from tests.handlers.pipeline_harness import run_call, simulators

REPROMPT = "Are you still there, Rahul?"
GOODBYE = "I'll let you go for now. Thank you, Rahul, and have a good day!"


async def test_pressing_9_is_a_do_not_call_and_the_bot_hangs_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators() as sims:
        run = await run_call(sims, [Line(dtmf="9")], lead=LeadContext(name="Rahul"))
    record, report = run.record, run.record.turns
    assert [t.caller_text for t in report] == ["", "dtmf:9"]
    pressed = report[-1]
    assert pressed.analysis is not None
    assert pressed.analysis.intent.value == "do_not_call"
    assert record.last.stage is Stage.DEAD_END
    assert record.last.do_not_call
    assert record.summary is not None
    assert record.summary.reason == "completed"
    assert run.report.hung_up_by_bot
    [line] = run.report.lines
    assert line.v2v is not None
    assert line.v2v < 1.0  # a template answer: no STT, no LLM in front of it
    assert sims.openai.requests == []


async def test_an_unmapped_key_is_ignored_and_the_call_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators() as sims:
        run = await run_call(sims, [Line(dtmf="7"), Line("haan ji, boliye")],
                             lead=LeadContext(name="Rahul"))
    turns = run.record.turns
    assert [t.caller_text for t in turns] == ["", "haan ji, boliye"]
    assert turns[-1].stage_after is Stage.DISCOVERY


async def test_a_silent_caller_is_reprompted_once_then_the_call_ends_no_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators() as sims:
        run = await run_call(sims, [Line(silent_s=30.0)], lead=LeadContext(name="Rahul"))
    record = run.record
    assert [t.bot_text for t in record.turns[1:]] == [REPROMPT, GOODBYE]
    assert [t.caller_text for t in record.turns] == ["", "", ""]
    assert record.summary is not None
    assert record.summary.reason == "no_response"
    assert run.report.hung_up_by_bot
    # The re-prompt comes reprompt_after_s (6 s) after the greeting has played,
    # the goodbye 6 s after the re-prompt has.
    greeting_end, reprompt_at, reprompt_end, goodbye_at = _bursts(run.report.bot_audio)
    assert 6.0 <= reprompt_at - greeting_end <= 6.5
    assert 6.0 <= goodbye_at - reprompt_end <= 6.5


async def test_an_answer_after_the_reprompt_carries_the_call_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators() as sims:
        run = await run_call(sims, [Line(silent_s=8.0), Line("haan ji, boliye"),
                                    Line(silent_s=8.0), Line("around three thousand")],
                             lead=LeadContext(name="Rahul"))
    record = run.record
    texts = [(t.caller_text, t.bot_text) for t in record.turns]
    # greeting, re-prompt, answer, re-prompt again (the count starts over), answer
    assert [c for c, _ in texts] == ["", "", "haan ji, boliye", "", "around three thousand"]
    assert texts[1][1] == texts[3][1] == REPROMPT
    assert record.turns[-1].stage_before is Stage.DISCOVERY
    assert record.turns[-1].stage_after is Stage.QUALIFICATION
    assert record.last.slots["budget_inr"] == 3000
    assert record.summary is not None
    assert record.summary.reason == "stop"  # the caller hung up; the bot did not give up


def _bursts(audio: list[tuple[float, bytes]]) -> tuple[float, float, float, float]:
    """(end of the 1st burst of bot audio, start of the 2nd, end of the 2nd, start
    of the 3rd): a burst is audio with no gap over 1 s."""
    edges: list[float] = []
    last: float | None = None
    for at, pcm in audio:
        if last is None or at - last > 1.0:
            if last is not None:
                edges.append(last)
            edges.append(at)
        last = at + len(pcm) / 16000
    return edges[1], edges[2], edges[3], edges[4]

"""Key presses and silence in a whole call, on virtual time: DTMF digits are
turns (``[call.dtmf]``), a silent caller gets one re-prompt and then the
goodbye, and the call ends ``no_response``; wordless noise (no turn) does not
stop the silence from being counted."""

from __future__ import annotations

import pytest
import trio.testing

from dialogue.model import Stage
from server.store.records import LeadContext
from server.telephony.caller import speech_like_script
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


def _wordless(seconds: float) -> bytes:
    """Voiced audio the STT finds no words in (a cough, a door, a TV)."""
    return speech_like_script(8000, speech_s=seconds, silence_s=0.0, repeats=1, seed=3)


def _first_audio_after(audio: list[tuple[float, bytes]], at: float) -> float:
    return next(start for start, _ in audio if start > at)


async def test_a_cough_after_the_question_does_not_stop_the_reprompt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators() as sims:
        run = await run_call(sims, [Line("haan ji, boliye"), Line(audio=_wordless(0.6)),
                                    Line(silent_s=25.0)], lead=LeadContext(name="Rahul"))
    record, report = run.record, run.report
    # The cough is no turn; the silence after it is timed from its end.
    assert [t.caller_text for t in record.turns] == ["", "haan ji, boliye", "", ""]
    assert [t.bot_text for t in record.turns[2:]] == [REPROMPT, GOODBYE]
    cough_end = report.lines[1].speech_end
    assert cough_end is not None
    # our VAD's end of speech (300 ms), reprompt_after_s (6 s), the TTS (200 ms)
    reprompt_at = _first_audio_after(report.bot_audio, cough_end)
    assert reprompt_at - cough_end == pytest.approx(6.5, abs=0.05)
    assert record.summary is not None
    assert record.summary.reason == "no_response"


async def test_wordless_noise_that_cuts_the_bot_is_followed_by_the_reprompt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators() as sims:
        run = await run_call(sims, [Line("haan ji, boliye"), Line("yes, bill is high"),
                                    Line(audio=_wordless(1.0), barge_in_s=1.0),
                                    Line(silent_s=25.0)], lead=LeadContext(name="Rahul"))
    record, report = run.record, run.report
    assert report.clears == 1  # voiced past the threshold with no words: a barge-in
    cut = record.turns[2]
    assert cut.caller_text == "yes, bill is high"
    assert cut.heard_text  # "Is it your own" (the pacing model's estimate at the clear)
    assert cut.bot_text.startswith(cut.heard_text)
    assert len(cut.heard_text) < len(cut.bot_text)
    # No turn came: the caller who made the noise is asked whether they are there.
    assert [t.caller_text for t in record.turns[3:]] == ["", ""]
    assert [t.bot_text for t in record.turns[3:]] == [REPROMPT, GOODBYE]
    noise_end = report.lines[2].speech_end
    assert noise_end is not None
    reprompt_at = _first_audio_after(report.bot_audio, noise_end)
    assert reprompt_at - noise_end == pytest.approx(6.5, abs=0.05)  # as after a cough
    assert record.summary is not None
    assert record.summary.reason == "no_response"


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

"""Preemptive generation over the wire: an LLM reply starts at the caller's
pause and is heard only once the turn is confirmed with the same words; a
caller who goes on speaking drops it. On virtual time, against the simulators."""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing

from server.handlers.pipeline import PipelineOptions
from server.telephony.caller import speech_like_script
from server.telephony.softphone import Line
from tests.handlers.pipeline_harness import CallRun, run_call, simulators

PRICE = "kitna hai total?"
ANSWER = "About one lakh ninety thousand rupees for three kilowatt. The subsidy helps a lot."
BUSY = "I am busy right now, call me back tomorrow evening"


def preemptions(run: CallRun, result: str) -> float:
    value = run.server.metrics.registry.get_sample_value(
        "voicebot_preemptions_total", {"result": result})
    return value or 0.0


def replies_asked(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat requests for replies (not structured readings of a turn)."""
    return [b for b in bodies if "response_format" not in b]


async def _call(lines: list[Line], options: PipelineOptions | None = None) -> CallRun:
    async with simulators(llm_answers={PRICE: ANSWER}, dg_latency=0.15) as sims:
        return await run_call(sims, lines, options=options)


async def test_a_reply_started_at_the_pause_is_kept_and_saves_the_endpointing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lines = [Line("haan ji, boliye"), Line(PRICE), Line(BUSY)]
    run = await _call(lines)
    [turn] = [t for t in run.record.turns if t.caller_text == PRICE]
    assert turn.bot_text == ANSWER
    # Asked for at the pause (150 ms of quiet, seen at the caller's next frame),
    # before the turn was final; one LLM request for the turn, state committed once.
    assert turn.marks["decided"] - turn.marks["speech_end"] == pytest.approx(0.2)
    assert turn.marks["decided"] < turn.marks["turn_final"]
    assert len(replies_asked(run.sims.openai.requests)) == 1
    assert (preemptions(run, "kept"), preemptions(run, "resumed"),
            preemptions(run, "changed")) == (1, 0, 0)
    assert [t.caller_text for t in run.record.turns].count(PRICE) == 1
    assert run.record.last.slots["callback_at"] is not None  # the call went on as usual

    # The same call without preemption (and without the final asked for at the
    # pause): the caller hears the answer exactly the VAD's hangover and the
    # STT's final (150 ms here) later, less the pause. With the final asked for
    # at the pause, only the STT's final is left: 150 ms later.
    off = await _call(lines, PipelineOptions(preempt=False, pause_finalize=False))
    final_at_pause = await _call(lines, PipelineOptions(preempt=False))
    assert preemptions(off, "kept") == 0
    on_v2v, off_v2v = run.report.lines[1].v2v, off.report.lines[1].v2v
    paused_v2v = final_at_pause.report.lines[1].v2v
    assert on_v2v is not None
    assert off_v2v is not None
    assert paused_v2v is not None
    assert round(off_v2v - on_v2v, 6) == 0.25
    assert round(paused_v2v - on_v2v, 6) == 0.15


async def test_a_caller_who_goes_on_after_a_pause_drops_the_preempted_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two bursts of speech with 200 ms between: quiet long enough to preempt,
    # too short for our VAD's 300 ms end of speech.
    halting = speech_like_script(8000, speech_s=1.0, silence_s=0.2, repeats=2)
    run = await _call([Line("haan ji, boliye"), Line(PRICE, audio=halting), Line(BUSY)])
    [turn] = [t for t in run.record.turns if t.caller_text == PRICE]
    assert turn.bot_text == ANSWER
    # Dropped when the caller went on; started again at the real end, and kept.
    assert preemptions(run, "resumed") == 1
    assert preemptions(run, "kept") == 1
    assert len(replies_asked(run.sims.openai.requests)) == 2
    # The dropped reply was never heard: one answer, sent once.
    assert run.report.lines[1].bot_audio_at is not None
    assert [t.bot_text for t in run.record.turns].count(ANSWER) == 1


async def test_template_replies_are_not_preempted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = await _call([Line("haan ji, boliye"), Line(BUSY)])
    assert replies_asked(run.sims.openai.requests) == []
    assert preemptions(run, "kept") + preemptions(run, "resumed") == 0

"""Adaptive endpointing over the wire: a short answer to the bot's question ends
its turn at the caller's first pause; a caller who goes on after it is a
cut-off, counted. On virtual time, against the simulators (Deepgram 150 ms)."""

from __future__ import annotations

import pytest
import trio.testing

from server.handlers.pipeline import PipelineOptions
from server.telephony.caller import speech_like_script
from server.telephony.softphone import Line
from tests.handlers.pipeline_harness import CallRun, run_call, simulators

BUSY = "I am busy right now, call me back tomorrow evening"


def early_ends(run: CallRun, result: str) -> float:
    value = run.server.metrics.registry.get_sample_value(
        "voicebot_early_ends_total", {"result": result})
    return value or 0.0


async def _call(lines: list[Line], options: PipelineOptions | None = None) -> CallRun:
    async with simulators(dg_latency=0.15) as sims:
        return await run_call(sims, lines, options=options)


async def test_a_short_answer_to_a_question_ends_at_the_first_pause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lines = [Line("haan ji"), Line(BUSY)]  # the greeting asks "Do you have two minutes?"
    run = await _call(lines)
    off = await _call(lines, PipelineOptions(adaptive_endpointing=False))
    [turn] = [t for t in run.record.turns if t.caller_text == "haan ji"]
    [slow] = [t for t in off.record.turns if t.caller_text == "haan ji"]
    assert turn.bot_text == slow.bot_text  # the same answer...
    # ...final at the pause (150 ms of quiet, seen at the caller frame that holds
    # it: 230 ms here) + the STT's 150 ms, not at our VAD's end of speech + 150 ms.
    assert turn.marks["turn_final"] - turn.marks["speech_end"] == pytest.approx(0.38)
    assert slow.marks["turn_final"] - slow.marks["speech_end"] == pytest.approx(0.48)
    assert (early_ends(run, "ended"), early_ends(run, "cut_off")) == (1, 0)
    assert early_ends(off, "ended") == 0
    # The busy line is not a short answer: its turn waits for the end of speech,
    # as without adaptive endpointing.
    [busy] = [t for t in run.record.turns if t.caller_text == BUSY]
    [busy_off] = [t for t in off.record.turns if t.caller_text == BUSY]
    assert busy.marks["turn_final"] - busy.marks["speech_end"] == pytest.approx(
        busy_off.marks["turn_final"] - busy_off.marks["speech_end"])


async def test_a_caller_who_goes_on_after_a_short_answer_is_a_counted_cut_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    halting = speech_like_script(8000, speech_s=1.0, silence_s=0.25, repeats=2)
    run = await _call([Line("haan ji", audio=halting), Line(BUSY)])
    assert early_ends(run, "ended") == 1
    assert early_ends(run, "cut_off") == 1
    assert [t.caller_text for t in run.record.turns][1] == "haan ji"
    assert run.record.last.slots["callback_at"] is not None  # the call went on

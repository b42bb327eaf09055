"""Endpointing over the wire. Adaptive endpointing: a short answer to the bot's
question ends its turn at the caller's first pause; a caller who goes on after
it is a cut-off, counted. Finalize at the pause: the STT's final is asked for at
the caller's pause and held until our end of speech confirms the turn. On
virtual time, against the simulators (Deepgram 150 ms)."""

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
    run = await _call(lines, PipelineOptions(pause_finalize=False))
    off = await _call(lines, PipelineOptions(adaptive_endpointing=False,
                                             pause_finalize=False))
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
    # adaptive endpointing alone: with finalize at the pause too, a caller who
    # resumes before the final is in keeps one turn (held), counted the same
    run = await _call([Line("haan ji", audio=halting), Line(BUSY)],
                      PipelineOptions(pause_finalize=False))
    assert early_ends(run, "ended") == 1
    assert early_ends(run, "cut_off") == 1
    assert [t.caller_text for t in run.record.turns][1] == "haan ji"
    assert run.record.last.slots["callback_at"] is not None  # the call went on


def _finalize_gaps(run: CallRun, text: str) -> float:
    [turn] = [t for t in run.record.turns if t.caller_text == text]
    return turn.marks["turn_final"] - turn.marks["speech_end"]


async def test_finalize_at_the_pause_has_the_final_ready_when_our_end_confirms_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lines = [Line("haan ji"), Line(BUSY)]
    on = await _call(lines, PipelineOptions(adaptive_endpointing=False))
    off = await _call(lines, PipelineOptions(adaptive_endpointing=False,
                                             pause_finalize=False))
    assert [t.bot_text for t in on.record.turns] == [t.bot_text for t in off.record.turns]
    # Finalize at the pause (230 ms here) + the STT's 150 ms: the answer is in at
    # 380 ms, held until our VAD's end of speech (330 ms) confirms the turn;
    # without it the finalize waits for that end: 330 + 150 ms.
    for text in ("haan ji", BUSY):
        assert _finalize_gaps(on, text) == pytest.approx(0.38)
        assert _finalize_gaps(off, text) == pytest.approx(0.48)
    # One finalize per turn either way (the pause's answers the confirmed end).
    assert on.sims.deepgram.connections[0].finalizes == 2
    assert off.sims.deepgram.connections[0].finalizes == 2


async def test_a_caller_who_goes_on_after_the_pause_keeps_one_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 1 s of speech, 250 ms of quiet (a pause, not an end), 1 s more; the
    # simulator says the 7 words at 3 a second, so they end with the audio.
    # The first pause's final is held until the rest is in: one turn.
    halting = speech_like_script(8000, speech_s=1.0, silence_s=0.25, repeats=2)
    text = "busy right now, call me tomorrow evening"
    for pause_finalize in (True, False):
        run = await _call([Line(text, audio=halting)],
                          PipelineOptions(adaptive_endpointing=False,
                                          pause_finalize=pause_finalize))
        assert [t.caller_text for t in run.record.turns][1:] == [text]
        assert run.record.last.slots["callback_at"] is not None
        # at each pause (the one inside, the one at the end), or at the end only
        assert run.sims.deepgram.connections[0].finalizes == (2 if pause_finalize else 1)


async def test_the_local_engine_is_finalized_at_the_end_only() -> None:
    from server.handlers.pipeline.listener import PAUSE_FINALIZE_ENGINES

    # pocketsphinx decodes an utterance whole (a grammar wants the whole phrase)
    assert "local" not in PAUSE_FINALIZE_ENGINES
    assert "whisper" not in PAUSE_FINALIZE_ENGINES

"""Barge-in and backchannels over the wire, on virtual time: the caller talks
over the bot's pitch (a template) or over an LLM answer still streaming."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime

import pytest
import trio.testing

from dialogue import load_playbook
from dialogue.model import Stage
from server.handlers.pipeline import AudioCache
from server.store.records import LeadContext
from server.telephony.softphone import CallReport, Line
from tests.handlers.pipeline_harness import IST, CallRun, run_call, simulators

NOW = datetime(2026, 11, 24, 11, 0, tzinfo=IST)
TO_PITCH = ["haan ji, boliye", "yes, bill is high", "yes it's my own house, I decide",
            "around two lakh", "this month itself"]  # the last is answered with the pitch
PITCH = len(TO_PITCH)  # the pitch's turn (turn 0 is the greeting)
LONG_ANSWER = ("Great question. The total depends on your roof and your bill. For a three "
               "kilowatt system it is about one lakh eighty thousand rupees before the "
               "subsidy. The subsidy brings it down by seventy-eight thousand. Most families "
               "pay the rest as a monthly EMI that is smaller than their old bill. The "
               "panels carry a twenty-five year warranty, the inverter ten years, and our "
               "team does the net metering paperwork with the electricity board for you. "
               "Installation takes two days, and the first service visit is free. Many of "
               "our customers in your area recovered the cost in about four years, and "
               "after that the power is practically free for the next twenty years.")
# Streamed at 60 tokens/s this answer takes longer than the 0.8 s into its audio
# where the caller cuts in: the stream is still open then.


def counter(run: CallRun, name: str) -> float:
    return run.server.metrics.registry.get_sample_value(name) or 0.0


def bot_frames_between(report: CallReport, start: float, end: float) -> list[float]:
    return [at for at, _ in report.bot_audio if start < at < end]


def pitch_audio(report: CallReport, *, until: int) -> bytes:
    """The bot audio from the pitch's turn to the caller's line ``until``."""
    start, end = report.lines[PITCH - 1].speech_end, report.lines[until].spoke_at
    assert start is not None
    assert end is not None
    return b"".join(pcm for at, pcm in report.bot_audio if start < at < end)


async def pitch_call(last: list[Line], **kwargs: object) -> CallRun:
    async with simulators(llm_answers={"kitna hai total?": LONG_ANSWER}) as sims:
        return await run_call(sims, [*(Line(t) for t in TO_PITCH), *last],
                              lead=LeadContext(name="Rahul"), clock=NOW, **kwargs)  # type: ignore[arg-type]


async def test_talking_over_the_pitch_cuts_it_and_takes_the_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = await pitch_call([Line("ruko, kitna hai total?", barge_in_s=1.5)])
    report, turns = run.report, run.record.turns
    barge = report.lines[-1]
    assert barge.spoke_at is not None
    assert barge.speech_end is not None
    # Paused at the first voiced frame: the pitch stops playing within one
    # caller frame (100 ms) and the speaker's lead (300 ms) of the caller starting.
    assert barge.talkover is not None
    assert barge.talkover <= 0.4
    assert report.clears == 1
    [cleared] = report.clear_times
    assert barge.spoke_at < cleared < barge.speech_end  # cut while the caller still talks
    # Nothing of the old reply arrives after the clear.
    assert bot_frames_between(report, cleared, barge.speech_end) == []
    pitch = turns[PITCH]
    assert pitch.heard_text is not None
    assert pitch.heard_text
    assert pitch.bot_text.startswith(pitch.heard_text)
    assert len(pitch.heard_text) < len(pitch.bot_text) / 2
    # Each reply is recorded with the turn it answered, the cut one included.
    assert [t.caller_text for t in turns] == ["", *TO_PITCH, "ruko, kitna hai total?"]
    assert barge.v2v is not None
    assert barge.v2v < 2.0
    assert counter(run, "voicebot_barge_ins_total") == 1
    assert counter(run, "voicebot_backchannels_total") == 0
    # The LLM was asked with the history trimmed to what the caller heard.
    [request] = run.sims.openai.requests
    said = [m["content"] for m in request["messages"] if m["role"] == "assistant"]
    assert said[-1] == pitch.heard_text


async def test_a_backchannel_over_the_pitch_pauses_it_and_it_plays_on_whole(
    autojump_clock: trio.testing.MockClock,
) -> None:
    after = Line("sounds good, I'm interested")
    # One process, two calls: the pitch's audio is rendered once and both calls
    # play the same bytes. (Rendered anew, the simulator's espeak-ng speech of
    # the same sentence varies by a few samples with what it said before, which
    # depends on task order: a padded frame more or less.)
    cache = AudioCache()
    plain = await pitch_call([after], cache=cache)
    run = await pitch_call([Line("haan", barge_in_s=1.5), after], cache=cache)
    report, turns = run.report, run.record.turns
    haan = report.lines[-2]
    assert haan.spoke_at is not None
    assert report.clears == 0
    assert counter(run, "voicebot_backchannels_total") == 1
    assert counter(run, "voicebot_barge_ins_total") == 0
    assert [t.caller_text for t in turns] == [t.caller_text for t in plain.record.turns]
    assert turns[PITCH].heard_text is None  # the caller heard all of it
    # Paused while the caller spoke: a gap in the pitch's audio at the far end...
    arrivals = [at for at, _ in report.bot_audio if haan.spoke_at < at < haan.spoke_at + 3]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) > 0.3
    # ...and nothing lost: the pitch reached the caller whole, byte for byte as in
    # the call without the backchannel.
    heard = pitch_audio(report, until=PITCH + 1)
    assert heard
    assert heard == pitch_audio(plain.report, until=PITCH)
    assert [t.bot_text for t in turns] == [t.bot_text for t in plain.record.turns]
    assert turns[-1].stage_after == plain.record.turns[-1].stage_after


async def test_a_yes_over_a_yes_no_question_is_an_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # "yes" is a backchannel over the pitch, but the bot's question "Is it your
    # own house, and would you be the one deciding on this?" is being asked.
    async with simulators() as sims:
        run = await run_call(sims, [Line("haan ji, boliye"), Line("yes, bill is high"),
                                    Line("yes", barge_in_s=1.0)],
                             lead=LeadContext(name="Rahul"), clock=NOW)
    assert run.record.turns[-1].caller_text == "yes"
    assert counter(run, "voicebot_backchannels_total") == 0
    assert run.report.lines[-1].v2v is not None


async def test_a_barge_in_stops_the_llm_stream_and_the_tts_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with simulators(llm_answers={"kitna hai total?": LONG_ANSWER}) as sims:
        run = await run_call(sims, [*(Line(t) for t in TO_PITCH), Line("kitna hai total?"),
                                    Line("ruko, subsidy kaise milegi?", barge_in_s=0.8)],
                             lead=LeadContext(name="Rahul"), clock=NOW)
        await trio.testing.wait_all_tasks_blocked()
        answer = run.record.turns[-2]
        assert [t.caller_text for t in run.record.turns[-2:]] == [
            "kitna hai total?", "ruko, subsidy kaise milegi?"]
        assert answer.heard_text is not None
        assert len(answer.heard_text) < len(LONG_ANSWER) / 2
        assert sims.openai.disconnects == 1  # the answer's stream, abandoned mid-way
        [tts] = sims.elevenlabs.connections
        synthesized = " ".join(text for _, text in tts.generations)
        assert "practically free" not in synthesized  # the rest was never paid for
    assert run.report.clears == 1
    assert counter(run, "voicebot_barge_ins_total") == 1
    assert run.report.lines[-1].v2v is not None


def dialogue_of(request: dict[str, object]) -> list[tuple[str, str]]:
    """An LLM request's history: (role, text) of its user and assistant messages."""
    messages = request["messages"]
    assert isinstance(messages, list)
    return [(m["role"], m["content"]) for m in messages if m["role"] != "system"]


async def test_an_llm_answer_cut_by_a_barge_in_is_in_the_history_as_heard(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = await pitch_call([Line("kitna hai total?"),
                            Line("ruko, subsidy kaise milegi?", barge_in_s=0.8),
                            Line("and what about the warranty?")])
    answer = run.record.turns[PITCH + 1]
    assert answer.caller_text == "kitna hai total?"
    assert answer.heard_text == "Great question."
    _, cut_in, after = run.sims.openai.requests
    # The next request knows what the caller heard of the answer, once...
    assert dialogue_of(cut_in)[-3:] == [
        ("user", "kitna hai total?"), ("assistant", "Great question."),
        ("user", "ruko, subsidy kaise milegi?")]
    # ...and so does the one after it.
    assert dialogue_of(after)[-5:] == [
        ("user", "kitna hai total?"), ("assistant", "Great question."),
        ("user", "ruko, subsidy kaise milegi?"),
        ("assistant", "You said: ruko, subsidy kaise milegi?"),
        ("user", "and what about the warranty?")]


@pytest.mark.parametrize(("pressed_at", "heard"), [(1.5, "Here is how it works:"), (0.0, "")])
async def test_a_key_press_over_the_pitch_keeps_the_new_line_in_the_history(
    pressed_at: float, heard: str, autojump_clock: trio.testing.MockClock,
) -> None:
    # No barge-in: the key press is a turn that supersedes the pitch, and the
    # pitch's own history message is cut to what was heard (gone if nothing was).
    run = await pitch_call([Line(dtmf="1", barge_in_s=pressed_at), Line("kitna hai total?")])
    turns = run.record.turns
    pitch, pressed = turns[PITCH], turns[PITCH + 1]
    assert pitch.heard_text == heard
    assert pitch.stage_after is Stage.PRESENTATION  # the pitch's turn, not the key's
    assert pressed.caller_text == "dtmf:1"
    assert pressed.stage_after is Stage.TRIAL_CLOSE
    expected = [("user", "this month itself"), *([("assistant", heard)] if heard else []),
                ("user", "dtmf:1"), ("assistant", pressed.bot_text),
                ("user", "kitna hai total?")]
    [request] = run.sims.openai.requests
    assert dialogue_of(request)[-len(expected) - 1:] == [
        ("assistant", "And when would you like it installed: this month, or later in the year?"),
        *expected]


async def test_a_non_interruptible_line_plays_on_under_the_caller(
    autojump_clock: trio.testing.MockClock,
) -> None:
    playbook = load_playbook()
    conduct = dataclasses.replace(playbook.conduct,
                                  non_interruptible=frozenset({"PRESENTATION.pitch.0"}))
    run = await pitch_call([Line("ruko, kitna hai total?", barge_in_s=1.5)],
                           playbook=dataclasses.replace(playbook, conduct=conduct))
    assert run.report.clears == 0
    assert run.record.turns[PITCH].heard_text is None
    assert counter(run, "voicebot_barge_ins_total") == 0
    assert run.record.turns[-1].caller_text == "ruko, kitna hai total?"  # still answered

"""A ``Finalize`` the vendor never answers. Deepgram "may" answer one (its docs);
one with nothing to settle — right after its own ``speech_final`` gave every
word — the Deepgram simulator leaves unanswered, as the vendor may. Each call
here runs the real pipeline on virtual time against that simulator and, where
it says so, against the lenient one that answers every ``Finalize``
(``answer_idle_finalize``): the turns must come out the same, promptly, once."""

from __future__ import annotations

from datetime import datetime

import pytest
import trio.testing

from server.handlers.pipeline import PipelineOptions
from server.telephony.caller import speech_like_script
from server.telephony.softphone import Line
from tests.handlers.pipeline_harness import IST, CallRun, run_call, simulators

BUSY = "I am busy right now, call me back tomorrow evening"


def halting(first_s: float, pause_s: float, then_s: float) -> bytes:
    """Speech, a pause inside it (quiet for ``pause_s``), more speech."""
    return b"".join(speech_like_script(8000, speech_s=part, silence_s=quiet, repeats=1,
                                       seed=seed)
                    for part, quiet, seed in ((first_s, pause_s, 1), (then_s, 0.0, 2)))


def wordless(seconds: float) -> bytes:
    """Voiced audio the STT finds no words in (a cough)."""
    return speech_like_script(8000, speech_s=seconds, silence_s=0.0, repeats=1, seed=3)


def metric(run: CallRun, name: str, labels: dict[str, str] | None = None) -> float:
    value = run.server.metrics.registry.get_sample_value(f"voicebot_{name}", labels or {})
    return value or 0.0


async def _call(lines: list[Line], options: PipelineOptions | None = None, *,
                answer_idle: bool = False, dg_latency: float = 0.15,
                split_final_after: float | None = None) -> CallRun:
    async with simulators(dg_latency=dg_latency) as sims:
        sims.deepgram.answer_idle_finalize = answer_idle
        sims.deepgram.split_final_after = split_final_after
        return await run_call(sims, lines, options=options)


def _gap(run: CallRun, text: str) -> float:
    """The turn's final after the caller's end of speech."""
    [turn] = [t for t in run.record.turns if t.caller_text == text]
    return turn.marks["turn_final"] - turn.marks["speech_end"]


async def test_an_end_finalize_left_unanswered_costs_the_turn_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Finalize at the end of speech only: it goes out as the vendor's own
    # endpointing (300 ms, like our VAD) gives every word in a speech_final,
    # so it has nothing to settle and gets no answer. The turn is that final.
    lines = [Line("haan ji"), Line(BUSY)]
    options = PipelineOptions(pause_finalize=False, adaptive_endpointing=False)
    vendor = await _call(lines, options)
    lenient = await _call(lines, options, answer_idle=True)
    assert vendor.sims.deepgram.connections[0].finalizes == 2
    assert vendor.sims.deepgram.connections[0].unanswered_finalizes == 2
    assert lenient.sims.deepgram.connections[0].unanswered_finalizes == 0
    # each line answered once, the same way, as soon: 330 ms to our VAD's end
    # of speech + the vendor's 150 ms
    for run in (vendor, lenient):
        assert [t.caller_text for t in run.record.turns] == ["", "haan ji", BUSY]
        for text in ("haan ji", BUSY):
            assert _gap(run, text) == pytest.approx(0.48)
    assert [t.bot_text for t in vendor.record.turns] == [
        t.bot_text for t in lenient.record.turns]
    assert [line.v2v for line in vendor.report.lines] == pytest.approx(
        [line.v2v for line in lenient.report.lines])
    # given up on 1 s later, counted: nothing waited for them
    assert metric(vendor, "stt_finalize_unanswered_total") == 2
    assert metric(lenient, "stt_finalize_unanswered_total") == 0


async def test_after_an_unanswered_finalize_the_next_pause_is_not_taken_for_an_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A cough: its pause's finalize finds no words, so at the cough's end of
    # speech another goes out, just after the vendor's empty speech_final — and
    # is never answered. The next line pauses 250 ms inside: its pause's answer
    # must not be paired with the cough's unanswered end (a turn cut at the pause).
    said = "busy right now, call me tomorrow evening"
    lines = [Line("haan ji, boliye"), Line(audio=wordless(0.6)),
             Line(said, audio=halting(1.0, 0.25, 1.0))]
    run = await _call(lines, dg_latency=0.0)
    assert run.sims.deepgram.connections[0].unanswered_finalizes == 1
    assert metric(run, "stt_finalize_unanswered_total") == 1
    assert [t.caller_text for t in run.record.turns] == ["", "haan ji, boliye", said]
    turn = run.record.turns[-1]
    speech_end = run.report.lines[-1].speech_end
    assert speech_end is not None
    assert turn.marks["speech_end"] == pytest.approx(speech_end, abs=0.01)
    # the final at the pause (250 ms) was held; the turn is out when our end of
    # speech confirms it
    assert turn.marks["turn_final"] - turn.marks["speech_end"] == pytest.approx(0.35)
    assert run.record.last.slots["callback_at"] == datetime(2026, 12, 6, 18, 0, tzinfo=IST)
    assert metric(run, "early_ends_total", {"result": "cut_off"}) == 0


async def test_a_held_turn_whose_last_finalize_goes_unanswered_ends_at_the_vendors_endpoint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The vendor splits long speech into finals every 650 ms. "haan ji theek
    # hai", a 250 ms pause (its finalize answered: the words, held), 450 ms of
    # wordless voice, quiet: the finalize at that second pause goes out just
    # after a split final, with nothing to settle, and gets no answer. The held
    # turn must not wait for it: the vendor's own (empty) speech_final after the
    # caller's last voice ends it.
    lines = [Line("haan ji theek hai", audio=halting(0.8, 0.25, 0.45)), Line(BUSY)]
    options = PipelineOptions(adaptive_endpointing=False)
    vendor = await _call(lines, options, split_final_after=0.65)
    lenient = await _call(lines, options, split_final_after=0.65, answer_idle=True)
    assert vendor.sims.deepgram.connections[0].unanswered_finalizes >= 1
    for run in (vendor, lenient):
        assert [t.caller_text for t in run.record.turns] == ["", "haan ji theek hai", BUSY]
        assert all(line.v2v is not None and line.v2v < 1.0 for line in run.report.lines)
    # the answer would have come with the vendor's latency (150 ms) after our
    # end of speech was confirmed (350 ms); its speech_final comes 100 ms later
    assert _gap(lenient, "haan ji theek hai") == pytest.approx(0.35)
    assert _gap(vendor, "haan ji theek hai") == pytest.approx(0.45)
    assert [t.bot_text for t in vendor.record.turns] == [
        t.bot_text for t in lenient.record.turns]


#: lines of a whole call: in one breath, with pauses inside, a cough
CALL = [
    Line("haan ji, boliye"),
    Line("yes my bill is high", audio=halting(0.6, 0.25, 1.0)),
    Line(audio=wordless(0.6)),
    Line("I own the house and the roof is mine", audio=halting(1.2, 0.25, 1.6)),
    Line(BUSY),
]


@pytest.mark.parametrize(("dg_latency", "split", "options"), [
    (0.0, None, PipelineOptions()),
    (0.15, 0.65, PipelineOptions()),
    (0.15, None, PipelineOptions(pause_finalize=False)),
], ids=["instant", "split finals", "final at the end"])
async def test_a_whole_call_goes_the_same_whether_or_not_idle_finalizes_are_answered(
    dg_latency: float, split: float | None, options: PipelineOptions,
    autojump_clock: trio.testing.MockClock,
) -> None:
    vendor = await _call(CALL, options, dg_latency=dg_latency, split_final_after=split)
    lenient = await _call(CALL, options, dg_latency=dg_latency, split_final_after=split,
                          answer_idle=True)
    unanswered = vendor.sims.deepgram.connections[0].unanswered_finalizes
    assert metric(vendor, "stt_finalize_unanswered_total") == unanswered
    said = [line.text for line in CALL if line.text]
    for run in (vendor, lenient):
        assert run.record.summary is not None
        assert [t.caller_text for t in run.record.turns if t.caller_text] == said
        spoken = [line for line in run.report.lines if line.line.text]
        assert all(line.v2v is not None and line.v2v < 1.5 for line in spoken), [
            line.v2v for line in spoken]
    assert [t.stage_after for t in vendor.record.turns] == [
        t.stage_after for t in lenient.record.turns]
    assert [t.bot_text for t in vendor.record.turns] == [
        t.bot_text for t in lenient.record.turns]
    assert vendor.record.last.slots == lenient.record.last.slots
    assert vendor.record.last.slots["callback_at"] is not None

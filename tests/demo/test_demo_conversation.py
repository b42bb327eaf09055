"""``voicebot demo``'s conversation: every bundled scenario reaches its outcome
through the whole path (call server, pipeline, embedded Redis, the Exotel-like
caller), and the reports hold what they promise.

On virtual time: worker threads (Redis, pocketsphinx, espeak-ng) take none of it
(``threads_take_no_virtual_time``), so a call of a minute runs in seconds.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import trio
import trio.testing

from dialogue import Playbook
from dialogue.model import Stage
from providers.local import espeak
from providers.sim.deepgram_sim import open_deepgram_sim
from providers.sim.elevenlabs_sim import open_elevenlabs_sim
from providers.sim.openai_sim import open_openai_sim
from server.cli.demo_talk import interactive_call, reached
from server.demo import SCENARIOS, DemoCall, run_demo_call
from server.demo.call import caller_speech, voiced_lines
from server.demo.engines import (
    CAMPAIGN,
    Engaged,
    EngineSetup,
    llm_answer,
    local_engines,
    simulated_engines,
    simulated_settings,
)
from server.demo.report import json_report, turn_lines, write_reports
from server.demo.scenarios import say
from server.telephony.softphone import Line

NOW = datetime(2026, 12, 5, 11, 0, tzinfo=ZoneInfo("Asia/Kolkata"))


@asynccontextmanager
async def in_process_sims(playbook: Playbook, lines: Sequence[Line]) -> AsyncIterator[Engaged]:
    """``--sim``'s engines with the simulators in this process (on the test's
    virtual clock) rather than in ``python -m providers.sim``."""
    async with open_deepgram_sim() as dg, open_elevenlabs_sim() as el, \
            open_openai_sim(responder=lambda body: llm_answer(playbook)) as oa:
        dg.script(*[line.text for line in lines if line.text], tag=CAMPAIGN)

        async def hear(text: str) -> None:
            dg.script(text, tag=CAMPAIGN)

        urls = {"DEEPGRAM_URL": dg.url, "ELEVENLABS_URL": el.url,
                "OPENAI_BASE_URL": oa.base_url}
        yield Engaged("sim", simulated_settings(playbook, urls), hear)


async def _run(name: str, engines: EngineSetup) -> DemoCall:
    return await run_demo_call(SCENARIOS[name], engines=engines, clock=lambda: NOW)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_each_scenario_reaches_its_outcome_through_the_vendor_simulators(
    name: str, autojump_clock: trio.testing.MockClock, threads_take_no_virtual_time: None,
) -> None:
    scenario = SCENARIOS[name]
    call = await _run(name, in_process_sims)
    assert scenario.expected is not None
    assert reached(call, scenario.expected), call.outcome
    assert call.outcome is not None
    assert call.outcome.call_sid == call.call_sid
    assert call.greeting is not None
    assert "Anjali" in call.greeting.bot_text
    # The simulator hears the script, so every line that is a turn was heard as said.
    assert all(turn.heard == turn.said for turn in call.turns)
    assert all(turn.v2v_ms is not None and turn.v2v_ms > 0 for turn in call.turns)
    if name == "barge-in":  # the backchannel is not a turn; the barge-in is
        assert [t.said for t in call.turns][-1] == "call me tomorrow evening"
        assert "right" not in [t.said for t in call.turns]
        assert call.caller is not None
        assert call.caller.clears >= 1
    if name in ("tour", "barge-in"):  # the printout shows where the reply was cut
        cut = [(t, t.cut_to) for t in call.turns if t.cut_to is not None]
        assert cut
        assert all(t.bot.startswith(heard) and heard != t.bot for t, heard in cut)
        last, heard = cut[-1]
        assert f"{heard} … (cut off" in "\n".join(turn_lines(last))


def test_the_default_scenario_shows_the_most() -> None:
    tour = SCENARIOS["tour"]
    assert len(tour.lines) >= 6
    assert any(line.barge_in_s is not None for line in tour.lines)
    assert "i cannot afford it" in [line.text for line in tour.lines]  # a price objection


def test_the_lead_says_a_line_alike_whatever_was_synthesized_before() -> None:
    # espeak-ng carries state from one synthesis into the next; the local
    # recognizer must get the same audio in every run, whatever ran before.
    first = caller_speech("call me tomorrow evening")
    espeak.synthesize("Namaste, this is Anjali from Suryodaya Solar.")
    assert caller_speech("call me tomorrow evening") == first


async def test_the_local_engines_hear_a_callback_and_book_it(
    autojump_clock: trio.testing.MockClock, threads_take_no_virtual_time: None,
) -> None:
    call = await _run("callback", local_engines)  # pocketsphinx on the playbook's phrases
    expected = SCENARIOS["callback"].expected
    assert expected is not None
    assert reached(call, expected), (call.turns, call.outcome)
    assert call.outcome is not None
    assert call.outcome.callback_at == datetime(2026, 12, 6, 18, 0, tzinfo=NOW.tzinfo)


@pytest.mark.parametrize("before", [0, 1, 3, 4])
async def test_the_local_engines_hear_do_not_call_at_any_stage(
    before: int, autojump_clock: trio.testing.MockClock, threads_take_no_virtual_time: None,
) -> None:
    # A caller may ask anywhere: as their first words, after the first question,
    # during qualification, or over the pitch. The dnc scenario is the second.
    qualified = SCENARIOS["tour"].lines[:before]
    request = say("stop calling me", barge_in_s=1.5 if before == 4 else None)
    scenario = replace(SCENARIOS["dnc"], lines=(*qualified, request))
    call = await run_demo_call(scenario, engines=local_engines, clock=lambda: NOW)
    expected = SCENARIOS["dnc"].expected
    assert expected is not None
    assert reached(call, expected), (call.turns, call.outcome)
    assert call.outcome is not None
    assert call.outcome.end_reason == "completed"  # the bot said goodbye and hung up
    assert [t.heard for t in call.turns] == [t.said for t in call.turns]
    assert call.turns[-1].heard == "stop calling me"


async def test_reports_json_png_and_stereo_wav(
    autojump_clock: trio.testing.MockClock, threads_take_no_virtual_time: None,
    tmp_path: Path,
) -> None:
    call = await _run("dnc", in_process_sims)
    json_path, png_path, wav_path = await trio.to_thread.run_sync(
        partial(write_reports, call, tmp_path))
    report = json.loads(json_path.read_text("utf-8"))
    assert report == json.loads(json.dumps(json_report(call)))
    assert report["call_sid"] == call.call_sid
    assert report["scenario"] == "dnc"
    assert report["outcome"] == {"stage": "DEAD_END", "end_reason": "completed",
                                 "callback_at": None, "do_not_call": True, "cost_usd":
                                 report["outcome"]["cost_usd"]}
    assert report["outcome"]["cost_usd"] > 0  # the simulated vendors bill
    turn = report["turns"][-1]
    assert set(turn) == {"said", "heard", "bot", "stage", "v2v_ms", "stages"}
    assert turn["said"] == "stop calling me"
    assert turn["stage"] == "ENDED"
    assert turn["stages"]["speech_end"] == 0.0
    assert 0 < turn["stages"]["turn_final"] <= turn["stages"]["first_media_sent"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with wave.open(str(wav_path)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, 2)
    caller, bot = np.abs(pcm[:, 0].astype(np.int32)), np.abs(pcm[:, 1].astype(np.int32))
    assert caller.max() > 1000
    assert bot.max() > 1000
    # The greeting (bot) comes before the caller's first words.
    assert np.argmax(bot > 1000) < np.argmax(caller > 1000)
    # The line hisses all along, under the caller's words too: espeak-ng's stop
    # closures are exact zeros, which no phone line carries (and a recognizer
    # hears as no sound at all); not 10 ms of digital silence anywhere.
    assert call.caller is not None
    sent = np.frombuffer(b"".join(frame for _, frame in call.caller.caller_audio),
                         dtype=np.int16)
    silent = np.convolve(sent == 0, np.ones(80, dtype=int), mode="valid")
    assert silent.max() < 80


async def test_sim_engines_in_their_own_process_hear_typed_lines() -> None:
    # Real time: ``--sim --interactive``'s path. The simulators run in
    # ``python -m providers.sim``; the typed line reaches its Deepgram script.
    send, typed = trio.open_memory_channel[Line](1)
    async with send:
        await send.send(*voiced_lines([Line("call me tomorrow evening")]))
    call = await run_demo_call(SCENARIOS["callback"], engines=simulated_engines, lines=typed,
                               clock=lambda: NOW)
    assert call.engines == "sim"
    assert [t.heard for t in call.turns] == ["call me tomorrow evening"]
    assert call.outcome is not None
    assert call.outcome.callback_at == datetime(2026, 12, 6, 18, 0, tzinfo=NOW.tzinfo)


async def test_interactive_lines_come_from_stdin_and_a_key_press_ends_the_call(
    autojump_clock: trio.testing.MockClock, threads_take_no_virtual_time: None,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # What a person types: an unknown command, a bad key, then 9 (do not call).
    monkeypatch.setattr("sys.stdin", io.StringIO("/what\n/dtmf x\n\n/dtmf 9\n"))
    call = await interactive_call(in_process_sims)
    out = capsys.readouterr().out
    assert "commands: /dtmf D, /hangup" in out
    assert "usage: /dtmf 9" in out
    assert call.outcome is not None
    assert call.outcome.stage is Stage.DEAD_END
    assert call.outcome.do_not_call
    assert [t.said for t in call.turns] == ["dtmf:9"]

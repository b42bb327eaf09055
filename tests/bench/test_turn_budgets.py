"""The whole-turn budgets: the budget file's turn tables, the verdict and its
table, and the virtual-time figures against what the simulators' latencies imply."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from bench import budget as budget_mod
from bench.budget import BUDGETS_PATH, BudgetFileError
from bench.turn_budgets import TurnBudget, check_turns, load_turn_budgets
from bench.turn_cases import (
    CASES,
    FIRST_SENTENCE,
    PRICE_QUESTION,
    REFERENCE,
    CaseError,
    Figure,
    SimLatencies,
    TurnCase,
    audio_stops,
    measure_case,
    run_on_virtual_time,
    speech_began,
)
from server.telephony.softphone import CallReport, Line, LineResult

SHIPPED = BUDGETS_PATH.read_text("utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(text, "utf-8")
    return path


def _with_turn_table(tmp_path: Path, table: str) -> Path:
    """A budget file with the turn table ``table`` and one stage (after it: a
    top-level key must come before the first table)."""
    return _write(tmp_path, table + '\n[stage.x]\nprobe = "m:f"\nsamples = 1\np50_ms = 1\n'
                  'p99_ms = 1\n')


def test_shipped_file_budgets_every_case_on_virtual_time_and_some_in_real_time() -> None:
    budgets = load_turn_budgets(BUDGETS_PATH)
    virtual = {b.case.name: b for b in budgets if b.table == "turn"}
    assert set(virtual) == set(CASES)
    assert {b.case.name for b in budgets if b.table == "realtime"} >= {"template_first", "llm"}
    for b in budgets:
        assert set(b.budgets_ms) == set(b.case.stages), b.name
    # The real-clock budgets are looser than the virtual ones, stage by stage.
    for b in budgets:
        if b.table == "realtime":
            for stage, ms in b.budgets_ms.items():
                assert ms > virtual[b.case.name].budgets_ms[stage], (b.name, stage)


@pytest.mark.parametrize(("table", "error"), [
    ("[turn.nope]\nv2v_ms = 1\n",
     r"turn\.nope: no such case \(cases: greeting, greeting_announced, template"),
    ("[turn.backchannel]\ntalkover_ms = 1\nresume_ms = 2\nclear_ms = 3\n",
     r"turn\.backchannel\.clear_ms: not a budget of this case \(keys: talkover_ms, resume_ms\)"),
    ("[turn.backchannel]\ntalkover_ms = 1\nresume = 2\n",
     r"turn\.backchannel\.resume: not a budget of this case"),
    ("[realtime.backchannel]\ntalkover_ms = 1\n",
     r"realtime\.backchannel: missing budget\(s\) resume_ms"),
    ("[turn.backchannel]\ntalkover_ms = -1\nresume_ms = 2\n",
     r"turn\.backchannel\.talkover_ms must be a number of ms >= 0, not -1"),
    ("[turn.backchannel]\ntalkover_ms = '300'\nresume_ms = 2\n",
     r"turn\.backchannel\.talkover_ms must be a number of ms >= 0, not '300'"),
    ("[turn.backchannel]\ntalkover_ms = true\nresume_ms = 2\n",
     r"talkover_ms must be a number of ms >= 0, not True"),
    ("[turn.backchannel]\nwhat = 3\ntalkover_ms = 1\nresume_ms = 2\n",
     r"turn\.backchannel\.what must be a string"),
    ("turn = 3\n", r"turn must hold \[turn\.CASE\] tables"),
    ("[turn]\nllm = 3\n", r"turn\.llm must be a table"),
])
def test_a_bad_turn_table_is_named_with_its_key(tmp_path: Path, table: str, error: str) -> None:
    path = _with_turn_table(tmp_path, table)
    with pytest.raises(BudgetFileError, match=error):
        load_turn_budgets(path)


def test_a_bad_turn_table_exits_2_before_measuring_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = _with_turn_table(tmp_path, "[turn.llm]\nv2v_ms = 1300\n")
    assert budget_mod.main(["--file", str(path)]) == 2
    captured = capsys.readouterr()
    assert "budget file error" in captured.err
    assert "turn.llm: missing budget(s) endpoint_ms, preempt_ms" in captured.err
    assert captured.out == ""


def test_an_unparsable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert budget_mod.main(["--file", str(_write(tmp_path, "[turn.llm\n"))]) == 2
    assert "budget file error" in capsys.readouterr().err


def test_only_rejects_a_turn_table_the_file_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert budget_mod.main(["--only", "turn.nope"]) == 2
    assert "unknown stage(s): turn.nope" in capsys.readouterr().err


def test_a_breached_turn_budget_exits_1_with_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tightened, n = re.subn(r"(\[turn\.llm\][^\[]*?)v2v_ms = \d+", r"\1v2v_ms = 999", SHIPPED)
    assert n == 1
    path = _write(tmp_path, tightened)
    assert budget_mod.main(["--file", str(path), "--only", "turn.llm"]) == 1
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in out.splitlines()
            if line.startswith("turn.llm")}
    assert rows[("turn.llm", "v2v")] == ["-", "1000.00", "999.0", "OVER"]
    assert rows[("turn.llm", "llm_first_token")] == ["400.00", "0.00", "10.0", "ok"]
    assert len(rows) == len(CASES["llm"].stages)
    assert out.rstrip().endswith("6 passed, 1 failed")


def test_the_shipped_llm_budget_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert budget_mod.main(["--only", "turn.llm"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("7 passed, 0 failed")


def _figures(case: str, lat: SimLatencies = REFERENCE) -> dict[str, Figure]:
    return {f.stage: f for f in measure_case(CASES[case], run_on_virtual_time(CASES[case], lat),
                                             lat)}


def test_the_llm_turn_spends_exactly_the_simulators_latencies() -> None:
    run = run_on_virtual_time(CASES["llm"])
    [turn] = [t for t in run.record.turns if t.caller_text == PRICE_QUESTION]
    marks = turn.marks
    assert marks["llm_first_token"] - marks["decided"] == pytest.approx(0.400, abs=1e-9)
    assert marks["tts_first_audio"] - marks["first_sentence"] == pytest.approx(0.200, abs=1e-9)
    # The final asked for at the pause (200 ms) is in 150 ms later.
    assert marks["turn_final"] - marks["speech_end"] == pytest.approx(0.350, abs=1e-9)
    # Preempted: the LLM was asked at the caller's pause, before the turn was final.
    assert marks["decided"] - marks["speech_end"] == pytest.approx(0.200, abs=1e-9)
    figures = {f.stage: f for f in measure_case(CASES["llm"], run, REFERENCE)}
    assert figures["llm_first_token"] == Figure("llm_first_token", 0.0, 400.0)
    assert figures["tts_first_audio"] == Figure("tts_first_audio", 0.0, 200.0)
    # The first sentence streams in 12 words, 11 gaps at 60 tokens/s; the splitter
    # releases it one word later, when it sees the next sentence begin.
    assert len(FIRST_SENTENCE.split()) == 12
    assert figures["first_sentence"] == Figure("first_sentence", 16.667, 183.333)
    assert figures["v2v"] == Figure("v2v", 1000.0)


def test_other_simulator_latencies_move_only_the_vendor_shares() -> None:
    faster = SimLatencies(stt_final_s=0.1, llm_first_token_s=0.25, llm_tokens_per_s=60.0,
                          tts_first_byte_s=0.12)
    reference, other = _figures("llm"), _figures("llm", faster)
    for stage in ("endpoint", "preempt", "llm_first_token", "first_sentence",
                  "tts_first_audio", "first_media"):
        assert other[stage].measured_ms == reference[stage].measured_ms, stage
    assert other["llm_first_token"].vendor_ms == 250.0
    # The STT's final is off the LLM turn's path (preempted at the pause): only
    # the LLM's and the TTS's savings show.
    assert reference["v2v"].measured_ms - other["v2v"].measured_ms == pytest.approx(
        150 + 80, abs=1e-6)


def test_a_cached_template_saves_exactly_the_tts_first_byte() -> None:
    first, cached = _figures("template_first"), _figures("template")
    assert first["v2v"].measured_ms - cached["v2v"].measured_ms == pytest.approx(200.0)
    assert cached["tts_first_audio"] == Figure("tts_first_audio", 0.0, 0.0)


def test_an_announced_greeting_saves_exactly_the_tts_first_byte() -> None:
    plain, announced = _figures("greeting"), _figures("greeting_announced")
    assert plain["greeting"].measured_ms - announced["greeting"].measured_ms == 200.0
    assert announced["tts_first_audio"] == Figure("tts_first_audio", 0.0, 0.0)


@pytest.mark.parametrize(("announce_s", "greeting_ms"), [(0.0, 200.0), (0.1, 100.0),
                                                          (0.2, 0.0), (1.0, 0.0)])
def test_a_greeting_announced_shortly_before_start_waits_for_the_rest_of_its_render(
    announce_s: float, greeting_ms: float,
) -> None:
    case = dataclasses.replace(CASES["greeting_announced"], announce_s=announce_s)
    run = run_on_virtual_time(case)
    assert {f.stage: f for f in measure_case(case, run, REFERENCE)}["greeting"] == Figure(
        "greeting", greeting_ms)
    # One render of each sentence, the announce's, whatever the call found.
    texts = [text for log in run.sims.elevenlabs.connections for _, text in log.generations]
    assert len(texts) == len(set(texts)) == 3


def test_a_case_whose_call_goes_otherwise_fails_with_the_reason() -> None:
    # The LLM case's figures on a call where the price question is never asked.
    wrong = dataclasses.replace(CASES["llm"], lines=(Line("haan ji, boliye"),))
    [result] = check_turns([TurnBudget("turn", wrong, dict.fromkeys(wrong.stages, 1e9))])
    assert result.error is not None
    assert "no turn answered 'kitna hai total?'" in result.error
    assert result.failed == 1


def test_figures_must_be_the_cases_stages_in_order() -> None:
    case = dataclasses.replace(CASES["greeting"], stages=("greeting", "opening"))
    with pytest.raises(CaseError, match="are not the stages"):
        measure_case(case, run_on_virtual_time(case), REFERENCE)


def test_figures_that_differ_between_runs_fail_as_not_deterministic() -> None:
    calls: list[int] = []

    def differing(run: object, lat: SimLatencies) -> list[Figure]:
        calls.append(1)
        return [Figure("x", float(len(calls)))]

    case = TurnCase("greeting", "", (), ("x",), differing)
    [result] = check_turns([TurnBudget("turn", case, {"x": 1e9})])
    assert result.error == "not deterministic: x 1 on one run, x 2 on another"


def _frame(ms: int, level: int = 1000) -> bytes:
    return level.to_bytes(2, "little", signed=True) * (8 * ms)


def test_audio_stops_at_the_end_of_the_unbroken_run_or_at_a_clear() -> None:
    report = CallReport("sid", bot_audio=[(1.0, _frame(100)), (1.1, _frame(100)),
                                           (1.2, _frame(100)), (1.5, _frame(100))])
    assert audio_stops(report, 1.05) == pytest.approx(1.3)
    assert audio_stops(report, 1.4) == 1.4  # nothing plays then
    report.clear_times.append(1.25)
    assert audio_stops(report, 1.05) == 1.25
    assert audio_stops(report, 1.3) == pytest.approx(1.3)


def test_speech_begins_a_frame_before_the_first_voiced_frame_after_the_line() -> None:
    line = LineResult(Line("haan"), spoke_at=2.05)
    silence = bytes(1600)
    report = CallReport("sid", caller_audio=[(2.0, _frame(100)), (2.1, silence),
                                              (2.2, _frame(100)), (2.3, _frame(100))])
    assert speech_began(report, line) == pytest.approx(2.1)
    with pytest.raises(CaseError, match="never said"):
        speech_began(report, LineResult(Line("haan")))

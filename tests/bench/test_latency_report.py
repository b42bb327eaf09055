"""``python -m bench latency``'s report: the figures it promises, from its measurements."""

from __future__ import annotations

from pathlib import Path

from bench.latency import Latencies, ModeResult, markdown, report, waterfall


def _results() -> list[ModeResult]:
    ours = ModeResult("ours", template_ms=[400.0, 420.0, 440.0], llm_ms=[900.0, 1000.0],
                      greeting_ms=[5.0], llm_requests=2, llm_turns=2, preempted_kept=2)
    ours.stages["llm"] = {"decided": [200.0, 200.0], "tts_first_audio": [990.0, 1000.0]}
    naive = ModeResult("naive", template_ms=[500.0], llm_ms=[1250.0], greeting_ms=[210.0],
                       llm_requests=1, llm_turns=1)
    seed = ModeResult("seed", template_ms=[1500.0], llm_ms=[2250.0, 2300.0],
                      greeting_ms=[230.0], llm_requests=2, llm_turns=2, unanswered=1)
    return [ours, naive, seed]


def test_the_report_holds_each_modes_figures_and_the_ratios(tmp_path: Path) -> None:
    data = report(_results(), Latencies(), ["--calls", "2"])
    ours = data["modes"]["ours"]
    assert ours["llm_v2v_ms"] == {"n": 2, "p50": 950.0, "p95": 1000.0, "p99": 1000.0}
    assert ours["template_v2v_ms"]["p50"] == 420.0
    assert ours["llm_requests_per_llm_turn"] == 1.0
    assert ours["llm_above_floor_ms_p50"] == 300.0  # 950 - (400 + 50 + 200)
    assert ours["stages_ms"]["llm"]["decided"]["p50"] == 200.0
    assert data["modes"]["seed"]["unanswered"] == 1
    text = markdown(data)
    assert "ours ÷ naive: template 0.84, LLM 0.76" in text
    assert "ours ÷ seed: template 0.28, LLM 0.42" in text
    assert "| llm | decided | 200 / 200 / 200 | – | – |" in text
    png = tmp_path / "latency.png"
    waterfall(data, png)
    assert png.read_bytes()[:4] == b"\x89PNG"

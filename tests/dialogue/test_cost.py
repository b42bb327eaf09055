"""The per-call cost model."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogue import PlaybookError, Prices, Usage, call_cost, load_playbook
from dialogue.cost import load_prices


def test_five_minute_call_from_session_counters() -> None:
    # As a Redis hash returns them: strings, plus unrelated keys.
    counters = {
        "stt_seconds": "300.0",
        "llm_input_tokens": "12000",
        "llm_output_tokens": b"900",
        "tts_characters": "1800",
        "stage": "ENDED",
    }
    usage = Usage.from_counters(counters)
    assert usage == Usage(300.0, 12000, 900, 1800)
    cost = call_cost(usage, load_playbook().prices)
    assert cost.stt_usd == pytest.approx(5 * 0.0125)
    assert cost.llm_usd == pytest.approx(12000 * 0.15e-6 + 900 * 0.60e-6)
    assert cost.tts_usd == pytest.approx(1.8 * 0.30)
    assert cost.total_usd == pytest.approx(0.0625 + 0.00234 + 0.54)
    assert cost.total_inr == pytest.approx(cost.total_usd * 84.0)
    report = cost.report(usage)
    assert "5.00 min" in report
    assert "$0.6048" in report
    assert "₹50.81" in report


def test_defaults_have_no_inr_and_usage_adds() -> None:
    usage = Usage(60, 1000, 100, 500) + Usage(60, 0, 0, 500)
    assert usage == Usage(120, 1000, 100, 1000)
    cost = call_cost(usage, Prices())
    assert cost.total_inr is None
    assert "₹" not in cost.report(usage)


def test_llm_requests_add_and_are_read_from_counters_but_not_priced() -> None:
    usage = Usage(llm_requests=2) + Usage(llm_input_tokens=10, llm_requests=1)
    assert usage == Usage(llm_input_tokens=10, llm_requests=3)
    assert Usage.from_counters({"llm_requests": "4"}).llm_requests == 4
    assert call_cost(usage, Prices()).llm_usd == call_cost(Usage(llm_input_tokens=10),
                                                           Prices()).llm_usd


def test_prices_load_from_a_toml_section(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[costs]\ndeepgram_per_minute_usd = 0.0059\nusd_to_inr = 83\n")
    prices = load_prices(path, section="costs")
    assert prices.deepgram_per_minute_usd == 0.0059
    assert prices.usd_to_inr == 83.0
    assert prices.elevenlabs_per_thousand_chars_usd == Prices().elevenlabs_per_thousand_chars_usd


def test_bad_prices_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[prices]\ndeepgram_per_min = 1\nusd_to_inr = "84"\n'
                    "openai_input_per_million_usd = -1\n")
    with pytest.raises(PlaybookError) as caught:
        load_prices(path)
    assert [str(issue) for issue in caught.value.issues] == [
        "prices.deepgram_per_min: unknown key (expected one of ['deepgram_per_minute_usd', "
        "'elevenlabs_per_thousand_chars_usd', 'openai_input_per_million_usd', "
        "'openai_output_per_million_usd', 'usd_to_inr'])",
        "prices.usd_to_inr: expected a number",
        "prices.openai_input_per_million_usd: must be positive",
    ]

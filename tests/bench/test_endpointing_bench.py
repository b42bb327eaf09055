"""``python -m bench endpointing``: its figures are what the calls did."""

from __future__ import annotations

from bench.endpointing import CASES, measure, table


def test_short_answers_end_sooner_and_a_pause_after_one_is_a_cut_off() -> None:
    on, off = measure(True), measure(False)
    by_text = {r.case.text: (r, o) for r, o in zip(on, off, strict=True)}
    quick, slow = by_text["yes"]
    assert quick.delay_ms is not None
    assert slow.delay_ms is not None
    assert quick.delay_ms < slow.delay_ms
    long_on, long_off = by_text["I am busy right now, call me back tomorrow evening"]
    assert long_on.delay_ms == long_off.delay_ms  # not a short answer: unchanged
    cut, whole = by_text["haan ji but call me tomorrow evening"]
    assert cut.cut_off
    assert not whole.cut_off
    text = table(on, off)
    assert f"false cut-offs 1 of {len(CASES)}" in text
    assert f"false cut-offs 0 of {len(CASES)}" in text

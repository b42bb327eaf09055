"""``python -m bench endpointing``: its figures are what the calls did."""

from __future__ import annotations

from bench.endpointing import CASES, SETTINGS, measure, table

BUSY = "I am busy right now, call me back tomorrow evening"
HALTING_YES = "haan ji but call me tomorrow evening"


def test_each_setting_ends_turns_as_designed() -> None:
    results = {title: measure(options) for title, options in SETTINGS.items()}
    by_text = {title: {r.case.text: r for r in column} for title, column in results.items()}
    yes, busy, halting = ({title: rows[text] for title, rows in by_text.items()}
                          for text in ("yes", BUSY, HALTING_YES))
    # A short answer ends at the pause with adaptive endpointing: 150 ms of quiet
    # seen at the caller's frame that holds it, + the STT's 150 ms; without it,
    # the final at the pause is held until our VAD's 300 ms end; with neither
    # the finalize waits for that end, + 150 ms.
    delays = {title: r.delay_ms for title, r in yes.items()}
    assert delays["both (default)"] == delays["adaptive only"]
    assert delays["adaptive only"] < delays["final at the pause only"] < delays["neither"]
    # A long line is no short answer: only the final at the pause saves, 100 ms.
    assert busy["both (default)"].delay_ms == busy["final at the pause only"].delay_ms
    assert busy["adaptive only"].delay_ms == busy["neither"].delay_ms
    assert round(busy["neither"].delay_ms - busy["both (default)"].delay_ms) == 100
    # A short answer, then more after 250 ms: adaptive endpointing alone answers
    # the first words (a false cut-off); with the final at the pause the caller
    # spoke again before the final was in, so the turn waits: one turn.
    assert halting["adaptive only"].cut_off
    assert not halting["both (default)"].cut_off
    assert not halting["neither"].cut_off
    # A phrase broken for 700 ms after "three thousand": the final at the pause
    # alone answers at our VAD's end (cut off); adaptive endpointing waits 300 ms
    # more after words that stop mid-phrase.
    assert {title: sum(r.cut_off for r in column) for title, column in results.items()} == {
        "both (default)": 0, "adaptive only": 1, "final at the pause only": 2, "neither": 0}
    text = table(results)
    assert "- both (default): mean endpoint delay" in text
    assert f"false cut-offs 2 of {len(CASES)}" in text

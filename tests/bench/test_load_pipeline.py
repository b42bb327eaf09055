"""``python -m bench load --pipeline``: which counts are within the capacity rule."""

from __future__ import annotations

from dataclasses import replace

from bench.load_pipeline import PipelineRun, _row


def test_a_count_is_within_only_with_both_p95s_inside_ten_percent_and_all_answered() -> None:
    single = PipelineRun(1, 450, 520, 1030, 1040, 12.0, 3900, 2, 0, 1, 4)
    assert replace(single, calls=100, template_p95_ms=572, llm_p95_ms=1144).within(single)
    assert not replace(single, calls=100, template_p95_ms=573).within(single)
    assert not replace(single, calls=100, llm_p95_ms=1145).within(single)
    assert not replace(single, calls=100, unanswered=1).within(single)
    assert _row(replace(single, calls=150, unanswered=2), single).startswith("| 150 ✗ |")

"""The budget check's own logic: file validation and the pass/fail decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import budget as budget_mod
from bench.budget import BudgetFileError, StageBudget, StageResult, load_budgets


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    return path


def test_shipped_budget_file_loads_and_names_importable_probes() -> None:
    budgets = load_budgets()
    assert {b.name for b in budgets} >= {"inbound_media", "analyze_decide"}
    for b in budgets:
        assert callable(budget_mod.resolve_probe(b.probe)), b.probe
        assert 0 < b.p50_ms <= b.p99_ms


def test_missing_key_is_reported_with_stage_name(tmp_path: Path) -> None:
    path = _write(tmp_path, '[stage.x]\nprobe = "m:f"\nsamples = 3\np50_ms = 1\n')
    with pytest.raises(BudgetFileError, match=r"stage\.x.*p99_ms"):
        load_budgets(path)


def test_probe_must_name_module_and_function(tmp_path: Path) -> None:
    path = _write(tmp_path, '[stage.x]\nprobe = "nocolon"\nsamples = 3\np50_ms = 1\np99_ms = 2\n')
    with pytest.raises(BudgetFileError, match="module:function"):
        load_budgets(path)


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(BudgetFileError, match="no \\[stage"):
        load_budgets(_write(tmp_path, ""))


def _budget(p50: float, p99: float) -> StageBudget:
    return StageBudget("s", "", "m:f", samples=1, warmup=0, p50_ms=p50, p99_ms=p99)


def test_result_fails_when_either_percentile_is_over() -> None:
    assert StageResult(_budget(1.0, 2.0), p50_ms=0.5, p99_ms=1.9).ok
    assert not StageResult(_budget(1.0, 2.0), p50_ms=1.1, p99_ms=1.9).ok
    assert not StageResult(_budget(1.0, 2.0), p50_ms=0.5, p99_ms=2.1).ok


def test_measure_times_the_probe_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def probe() -> object:
        return lambda: calls.append(1)

    monkeypatch.setattr(budget_mod, "resolve_probe", lambda spec: probe)
    result = budget_mod.measure(StageBudget("s", "", "m:f", samples=50, warmup=7,
                                            p50_ms=10.0, p99_ms=10.0))
    assert len(calls) == 57
    assert 0 <= result.p50_ms <= result.p99_ms

"""Whole-turn latency budgets: ``[turn.CASE]`` and ``[realtime.CASE]`` in ``budgets.toml``.

``python -m bench budget`` runs these after the per-stage probes (DESIGN.md §6).
Each table names a case of ``bench.turn_cases`` and gives every one of its
stages a budget, ``STAGE_ms = N``: the engine's own share of the stage, or the
whole figure as the caller hears it (the case says which).

* ``[turn.CASE]``: the case's call on virtual time (trio's ``MockClock`` with
  ``autojump_threshold=0``) against the simulators at the reference latencies.
  The figures are exact and the same on every run and machine: CPU work takes
  no virtual time, so what they catch is structure (a wait added, a step
  serialised behind another, a vendor round trip more), to the millisecond.
  Each call runs ``VIRTUAL_RUNS`` times and its runs must agree: a figure that
  differs between runs is decided by a race (trio picks at random which of two
  tasks due at one instant runs first), and fails as such.
* ``[realtime.CASE]``: the same call on the real clock, all such cases at once,
  so the real costs (CPU, scheduling, the loopback sockets) show; noisy, so
  their budgets carry generous margins.

A figure over its budget, or a call that did not go as its case scripts
(``CaseError``), fails the check.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from bench.budget import BudgetFileError
from bench.inprocess import CallRun
from bench.turn_cases import (
    CASES,
    REFERENCE,
    CaseError,
    Figure,
    SimLatencies,
    TurnCase,
    measure_case,
    run_on_real_time,
    run_on_virtual_time,
)

__all__ = ["CLOCKS", "VIRTUAL_RUNS", "TurnBudget", "TurnResult", "check_turns",
           "load_turn_budgets", "print_turn_table"]

#: Each virtual case's call runs this often; all its runs must agree.
VIRTUAL_RUNS = 2
#: The budget file's table for each clock the cases run on.
CLOCKS = {"turn": "virtual time (trio MockClock, autojump_threshold=0)",
          "realtime": "the real clock (all cases at once)"}


@dataclass(frozen=True, slots=True)
class TurnBudget:
    """One ``[turn.CASE]`` or ``[realtime.CASE]`` table."""

    table: str
    case: TurnCase
    budgets_ms: Mapping[str, float]

    @property
    def name(self) -> str:
        return f"{self.table}.{self.case.name}"


@dataclass(frozen=True, slots=True)
class TurnResult:
    """A case's figures against its budgets; ``error``: the call went wrong."""

    budget: TurnBudget
    figures: list[Figure] = field(default_factory=list)
    error: str | None = None

    def over(self, figure: Figure) -> bool:
        return figure.measured_ms > self.budget.budgets_ms[figure.stage]

    @property
    def failed(self) -> int:
        """Stages over budget (the whole case, once, when its call went wrong)."""
        if self.error is not None:
            return 1
        return sum(self.over(f) for f in self.figures)


def load_turn_budgets(path: Path) -> list[TurnBudget]:
    """Every turn table of the budget file at ``path``; ``BudgetFileError``
    naming the table and key when one is wrong."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    budgets = []
    for table in CLOCKS:
        section = data.get(table, {})
        if not isinstance(section, dict):
            raise BudgetFileError(f"{path}: {table} must hold [{table}.CASE] tables")
        for name, body in section.items():
            budgets.append(_turn_budget(path, table, name, body))
    return budgets


def _turn_budget(path: Path, table: str, name: str, body: Any) -> TurnBudget:
    where = f"{path}: {table}.{name}"
    if not isinstance(body, dict):
        raise BudgetFileError(f"{where} must be a table")
    case = CASES.get(name)
    if case is None:
        raise BudgetFileError(f"{where}: no such case (cases: {', '.join(CASES)})")
    if not isinstance(body.get("what", ""), str):
        raise BudgetFileError(f"{where}.what must be a string")
    budgets: dict[str, float] = {}
    for key, value in body.items():
        if key == "what":
            continue
        stage = key.removesuffix("_ms")
        if stage == key or stage not in case.stages:
            raise BudgetFileError(f"{where}.{key}: not a budget of this case (keys: "
                                  f"{', '.join(s + '_ms' for s in case.stages)})")
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0:
            raise BudgetFileError(f"{where}.{key} must be a number of ms >= 0, not {value!r}")
        budgets[stage] = float(value)
    missing = [f"{s}_ms" for s in case.stages if s not in budgets]
    if missing:
        raise BudgetFileError(f"{where}: missing budget(s) {', '.join(missing)}")
    return TurnBudget(table, case, budgets)


def _result(budget: TurnBudget, run: CallRun, lat: SimLatencies) -> TurnResult:
    try:
        return TurnResult(budget, measure_case(budget.case, run, lat))
    except CaseError as exc:
        return TurnResult(budget, error=str(exc))


async def _measure_real_time(budgets: Sequence[TurnBudget],
                             lat: SimLatencies) -> list[TurnResult]:
    import dsp  # the first call must not pay numba's compilation (as ``voicebot serve``)

    dsp.warm_up()
    runs: dict[str, CallRun] = {}

    async def one(budget: TurnBudget) -> None:
        runs[budget.name] = await run_on_real_time(budget.case, lat)

    async with trio.open_nursery() as nursery:
        for budget in budgets:
            nursery.start_soon(one, budget)
    return [_result(b, runs[b.name], lat) for b in budgets]


def _virtual_result(budget: TurnBudget, lat: SimLatencies) -> TurnResult:
    """The case's call ``VIRTUAL_RUNS`` times: its figures must come out the
    same every time (else a race decides them, and a budget would flake)."""
    results = [_result(budget, run_on_virtual_time(budget.case, lat), lat)
               for _ in range(VIRTUAL_RUNS)]
    first = results[0]
    for other in results[1:]:
        if (other.error, other.figures) != (first.error, first.figures):
            return TurnResult(budget, error=f"not deterministic: {_summary(first)} on one "
                              f"run, {_summary(other)} on another")
    return first


def _summary(result: TurnResult) -> str:
    if result.error is not None:
        return result.error
    return ", ".join(f"{f.stage} {f.measured_ms:g}" for f in result.figures)


def check_turns(budgets: Sequence[TurnBudget], lat: SimLatencies = REFERENCE,
                ) -> list[TurnResult]:
    """Run every budgeted case: the virtual ones one after the other, then the
    real-clock ones together."""
    results = [_virtual_result(b, lat) for b in budgets if b.table == "turn"]
    real = [b for b in budgets if b.table == "realtime"]
    if real:
        results += trio.run(_measure_real_time, real, lat)
    return results


def print_turn_table(results: Sequence[TurnResult], lat: SimLatencies = REFERENCE,
                     out: Callable[[str], None] = print) -> None:
    """The table: per case and stage, the vendor's share (what the simulator took,
    subtracted; ``-`` for a whole figure, which includes it), the measured
    figure, its budget and the verdict."""
    out(f"whole turns; simulators: {lat.describe()}")
    out(f"{'case':<24} {'stage':<16} {'vendor ms':>9} {'measured ms':>11} {'budget ms':>9}"
        f"  result")
    for table, clock in CLOCKS.items():
        rows = [r for r in results if r.budget.table == table]
        if rows:
            out(f"-- on {clock}")
        for result in rows:
            name = result.budget.name
            if result.error is not None:
                out(f"{name:<24} {'-':<16} {'':>9} {'':>11} {'':>9}  FAILED: {result.error}")
                continue
            for figure in result.figures:
                vendor = "-" if figure.vendor_ms is None else f"{figure.vendor_ms:.2f}"
                budget = result.budget.budgets_ms[figure.stage]
                out(f"{name:<24} {figure.stage:<16} {vendor:>9} {figure.measured_ms:>11.2f} "
                    f"{budget:>9.1f}  {'OVER' if result.over(figure) else 'ok'}")

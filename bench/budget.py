"""``python -m bench budget``: the latency-budget check run by CI.

Reads ``bench/budgets.toml``. Each ``[stage.NAME]`` names a probe,
``module:function``; the probe does its setup and returns a zero-argument
callable: one call is one unit of the stage's work (one message, one chunk, one
turn). The check runs it ``warmup`` times untimed, then ``samples`` times timed
with ``perf_counter_ns``, and compares p50 and p99 with the stage's budget.
Then the whole-turn budgets, ``[turn.CASE]`` on virtual time and
``[realtime.CASE]`` on the real clock (``bench.turn_budgets``). Exit status 1
when anything is over budget, 2 when the budget file itself is wrong.
``--only NAME`` (repeatable) checks only that stage, or that turn table
(``turn.llm``, ``realtime.template_first``).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUDGETS_PATH = Path(__file__).with_name("budgets.toml")


@dataclass(frozen=True, slots=True)
class StageBudget:
    name: str
    what: str
    probe: str
    samples: int
    warmup: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class StageResult:
    budget: StageBudget
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> bool:
        return self.p50_ms <= self.budget.p50_ms and self.p99_ms <= self.budget.p99_ms


class BudgetFileError(ValueError):
    """``budgets.toml`` is malformed; the message names the stage and key."""


def load_budgets(path: Path = BUDGETS_PATH) -> list[StageBudget]:
    with path.open("rb") as f:
        data = tomllib.load(f)
    stages = data.get("stage")
    if not isinstance(stages, dict) or not stages:
        raise BudgetFileError(f"{path}: no [stage.NAME] tables")
    budgets = []
    for name, table in stages.items():
        try:
            budgets.append(
                StageBudget(
                    name=name,
                    what=str(table.get("what", "")),
                    probe=str(table["probe"]),
                    samples=int(table["samples"]),
                    warmup=int(table.get("warmup", 0)),
                    p50_ms=float(table["p50_ms"]),
                    p99_ms=float(table["p99_ms"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BudgetFileError(f"{path}: stage.{name}: missing or bad key {exc}") from exc
        if ":" not in budgets[-1].probe:
            raise BudgetFileError(f"{path}: stage.{name}.probe must be 'module:function'")
    return budgets


def resolve_probe(spec: str) -> Callable[[], Callable[[], object]]:
    module_name, _, attr = spec.partition(":")
    probe: Callable[[], Callable[[], object]] = getattr(importlib.import_module(module_name), attr)
    return probe


def measure(budget: StageBudget) -> StageResult:
    step = resolve_probe(budget.probe)()
    for _ in range(budget.warmup):
        step()
    timings = np.empty(budget.samples, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(budget.samples):
        start = clock()
        step()
        timings[i] = clock() - start
    p50, p99 = np.percentile(timings, [50, 99]) / 1e6
    return StageResult(budget, float(p50), float(p99))


def main(argv: Sequence[str]) -> int:
    # Imported here: bench.turn_budgets imports this module (BudgetFileError).
    from bench.turn_budgets import check_turns, load_turn_budgets, print_turn_table

    parser = argparse.ArgumentParser(prog="python -m bench budget", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=BUDGETS_PATH, help="budget file")
    parser.add_argument("--only", action="append", default=[],
                        help="check only this stage or turn table (repeatable)")
    args = parser.parse_args(list(argv))
    try:
        budgets = load_budgets(args.file)
        turn_budgets = load_turn_budgets(args.file)
    except (BudgetFileError, tomllib.TOMLDecodeError) as exc:
        print(f"budget file error: {exc}", file=sys.stderr)
        return 2
    if args.only:
        unknown = set(args.only) - {b.name for b in budgets} - {b.name for b in turn_budgets}
        if unknown:
            print(f"unknown stage(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        budgets = [b for b in budgets if b.name in args.only]
        turn_budgets = [b for b in turn_budgets if b.name in args.only]

    print(f"latency budgets on {platform.machine()} {platform.python_implementation()} "
          f"{platform.python_version()}")
    checked = failed = 0
    if budgets:
        print(f"{'stage':<16} {'p50 ms':>9} {'budget':>8} {'p99 ms':>9} {'budget':>8}  result")
    for budget in budgets:
        result = measure(budget)
        checked += 1
        failed += not result.ok
        print(f"{budget.name:<16} {result.p50_ms:>9.4f} {budget.p50_ms:>8.3f} "
              f"{result.p99_ms:>9.4f} {budget.p99_ms:>8.3f}  {'ok' if result.ok else 'OVER'}")
    if turn_budgets:
        turn_results = check_turns(turn_budgets)
        print_turn_table(turn_results)
        checked += sum(len(r.figures) or 1 for r in turn_results)
        failed += sum(r.failed for r in turn_results)
    print(f"{checked - failed} passed, {failed} failed")
    return 1 if failed else 0

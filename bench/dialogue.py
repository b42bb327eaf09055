"""``python -m bench dialogue``: speed and accuracy of the dialogue core.

Latency: every turn of the labelled tuning set (``tests/data/utterances*.jsonl``) is
timed one call at a time with ``perf_counter_ns`` — ``analyze`` alone, ``decide``
alone (on precomputed analyses), and ``analyze`` + ``decide`` together — with
text normalisation alone as the floor reference. ``decide`` walks one call per
shuffled (seeded) pass of the set, starting a fresh call whenever one ends, so
it sees every stage the set can drive it into. Each of ``--repeats`` runs
(default 9, at least 5) gives a p50 and a p99; the table shows the median of
those per-run figures. Targets: p99 of analyze ≤ 1 ms (issue 16), of analyze +
decide ≤ 1 ms (issue 5).

Accuracy (metrics defined in ``dialogue.analysis.scoring``), side by side on the
frozen held-out split (``tests/data/frozen/heldout.jsonl``: written from
../shared/LABELS.md alone, never tuned on) and the tuning set (whole and per
split): intent, objection type, each slot, the share of turns below
``dialogue.LLM_BELOW_CONFIDENCE`` and the accuracy of the turns at or above it,
a reliability table (confidence bucket → accuracy, count), slot error kinds and
the intent confusion. Mismatching turns are listed for the tuning set only: the
frozen split's turns are never printed, so nobody tunes on them. Prints markdown
and writes it to ``bench/results/dialogue.md``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

import dialogue
from dialogue.analysis import classifier_model
from dialogue.analysis.lexicon import normalize
from dialogue.analysis.scoring import SLOT_KEYS, LabelledTurn, Score, parse_labelled, score
from dialogue.model import Analysis, Intent

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
FROZEN = DATA / "frozen" / "heldout.jsonl"
RESULTS = Path(__file__).resolve().parent / "results" / "dialogue.md"
LEAD = {"lead_name": "Ravi", "city": "Pune"}
IST = ZoneInfo("Asia/Kolkata")
def _machine() -> list[str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [
        f"- machine: {platform.platform()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        f"- libraries: numpy {np.__version__} (classifier at run time); re, zoneinfo, datetime",
    ]


def _percentile(sorted_ns: Sequence[float], q: float) -> float:
    index = min(len(sorted_ns) - 1, round(q * (len(sorted_ns) - 1)))
    return sorted_ns[index] / 1000.0


def _time_each(calls: Sequence[Callable[[], object]]) -> list[int]:
    """Nanoseconds of each single call, one pass over ``calls``."""
    samples: list[int] = []
    clock = time.perf_counter_ns
    for call in calls:
        start = clock()
        call()
        samples.append(clock() - start)
    return samples


def _decide_walk(
    analyses: Sequence[tuple[LabelledTurn, Analysis]], with_analyze: bool
) -> list[Callable[[], object]]:
    """Zero-argument calls that replay one call walk through ``decide``.

    The states are computed up front (decide is pure), so each timed call is
    exactly one ``decide`` (plus one ``analyze`` when ``with_analyze``).
    """
    playbook = dialogue.load_playbook()
    calls: list[Callable[[], object]] = []
    state = None
    for turn, analysis in analyses:
        if state is None:
            state = dialogue.new_call_state(playbook, LEAD, turn.now)
        current = state

        def call(turn: LabelledTurn = turn, analysis: Analysis = analysis,
                 current: dialogue.CallState = current) -> object:
            if with_analyze:
                analysis = dialogue.analyze(turn.text, current.stage, turn.now)
            return dialogue.decide(current, analysis, turn.now)

        decision = dialogue.decide(current, analysis, turn.now)
        state = None if decision.end_call else decision.state
        calls.append(call)
    return calls


def _latency(turns: Sequence[LabelledTurn], repeats: int) -> list[str]:
    shuffled = list(turns)
    random.Random(7).shuffle(shuffled)
    analyses = [(t, dialogue.analyze(t.text, t.stage, t.now)) for t in shuffled]
    suites: dict[str, list[Callable[[], object]]] = {
        "normalise text only (floor)": [partial(normalize, t.text) for t in shuffled],
        "analyze": [partial(dialogue.analyze, t.text, t.stage, t.now) for t in shuffled],
        "decide": _decide_walk(analyses, with_analyze=False),
        "analyze + decide": _decide_walk(analyses, with_analyze=True),
    }
    runs: dict[str, list[list[int]]] = {name: [] for name in suites}
    for calls in suites.values():  # warm caches and lazy imports once
        _time_each(calls)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, calls in suites.items():  # interleaved, so load hits all rows alike
                runs[name].append(_time_each(calls))
    finally:
        if gc_was_enabled:
            gc.enable()
    lines = [
        f"Single calls over {len(turns)} turns × {repeats} runs, µs, GC off while timing. "
        "*Per-turn median*: each turn's median over the runs, then p50/p99 across turns — "
        "this drops the scheduler preemptions (4–8 ms slices) that a 2-core machine shared "
        "with other jobs puts into single-call timings while keeping genuinely slow inputs. "
        "*Raw*: p50/p99 of each run's samples, median over runs (preemptions included). "
        "Read ratios and medians, not absolutes.",
        "",
        "| operation | p50 µs | p99 µs (per-turn median) | max µs (per-turn median) "
        "| raw p99 µs (median of runs) |",
        "|---|---:|---:|---:|---:|",
    ]
    p99s: dict[str, float] = {}
    for name, samples in runs.items():
        per_turn = sorted(
            statistics.median(run[i] for run in samples) for i in range(len(samples[0]))
        )
        p50 = _percentile(per_turn, 0.50)
        p99 = _percentile(per_turn, 0.99)
        raw_p99 = statistics.median(_percentile(sorted(run), 0.99) for run in samples)
        lines.append(
            f"| {name} | {p50:.1f} | {p99:.1f} | {per_turn[-1] / 1000:.1f} | {raw_p99:.1f} |"
        )
        p99s[name] = p99
    for name in ("analyze", "analyze + decide"):
        verdict = "met" if p99s[name] <= 1000.0 else "NOT met"
        lines += ["", f"Target p99({name}) ≤ 1000 µs (per-turn median): **{verdict}** "
                      f"({p99s[name]:.0f} µs)."]
    return lines


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} % ({part}/{whole})" if whole else "n/a"


BUCKETS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


@dataclass(frozen=True, slots=True)
class Evaluated:
    """One set's score and, per turn, the confidence and whether the intent was right."""

    score: Score
    confidence: list[float]
    right: list[bool]


def _evaluate(turns: Sequence[LabelledTurn]) -> Evaluated:
    readings = [dialogue.analyze(t.text, t.stage, t.now) for t in turns]
    it = iter(readings)
    result = score(turns, lambda text, stage, now: next(it))
    return Evaluated(result, [a.confidence for a in readings],
                     [a.intent is t.intent for a, t in zip(readings, turns, strict=True)])


def _routing(e: Evaluated) -> tuple[str, str]:
    above = [r for c, r in zip(e.confidence, e.right, strict=True)
             if c >= dialogue.LLM_BELOW_CONFIDENCE]
    below = len(e.right) - len(above)
    return _pct(below, len(e.right)), _pct(sum(above), len(above))


def _accuracy(sets: dict[str, Evaluated]) -> list[str]:
    names = list(sets)
    scores = [e.score for e in sets.values()]
    routing = [_routing(e) for e in sets.values()]
    lines = [
        "| field | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        "| intent | " + " | ".join(_pct(s.intent_correct, s.lines) for s in scores) + " |",
        "| objection type, on the turns labelled with one | " + " | ".join(
            _pct(s.objection_labelled_correct, s.objection_lines) for s in scores) + " |",
        "| objection type, over all turns (none = none counts) | " + " | ".join(
            _pct(s.objection_correct, s.lines) for s in scores) + " |",
    ]
    for key in SLOT_KEYS:
        lines.append(f"| {key}, on the lines carrying it | " + " | ".join(
            _pct(s.slots[key].labelled_correct, s.slots[key].labelled) for s in scores) + " |")
        lines.append(f"| {key}, over all lines (none = none counts) | " + " | ".join(
            _pct(s.slots[key].correct, s.slots[key].lines) for s in scores) + " |")
    lines += [
        f"| below threshold ({dialogue.LLM_BELOW_CONFIDENCE}) | "
        + " | ".join(r[0] for r in routing) + " |",
        "| intent right at/above threshold | " + " | ".join(r[1] for r in routing) + " |",
    ]
    return lines


def _reliability(sets: dict[str, Evaluated]) -> list[str]:
    lines = [
        "| confidence | " + " | ".join(f"{n}: accuracy (turns)" for n in sets) + " |",
        "|---|" + "---:|" * len(sets),
    ]
    for lo, hi in itertools.pairwise(BUCKETS):
        cells = []
        for e in sets.values():
            inside = [r for c, r in zip(e.confidence, e.right, strict=True)
                      if lo <= c < hi or (hi == 1.0 and c == 1.0)]
            cells.append(f"{100.0 * sum(inside) / len(inside):.1f} % ({len(inside)})"
                         if inside else "— (0)")
        lines.append(f"| [{lo:.2f}, {hi:.2f}) | " + " | ".join(cells) + " |")
    return lines


def _slot_errors(sets: dict[str, Evaluated]) -> list[str]:
    lines = [
        "| set | slot | lines carrying it | false positives | missed | wrong value |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, e in sets.items():
        for key, c in e.score.slots.items():
            lines.append(f"| {name} | {key} | {c.labelled} | {c.false_positive} | {c.missed} "
                         f"| {c.wrong_value} |")
    return lines


def _confusion(result: Score) -> list[str]:
    lines = [
        "| expected intent | lines | correct | confused with |",
        "|---|---:|---:|---|",
    ]
    totals: Counter[Intent] = Counter()
    for (expected, _), n in result.confusion.items():
        totals[expected] += n
    for intent in Intent:
        wrong = sorted(
            ((n, got) for (exp, got), n in result.confusion.items()
             if exp is intent and got is not intent), reverse=True,
        )
        confused = ", ".join(f"{got.value} ×{n}" for n, got in wrong) or "—"
        lines.append(
            f"| {intent.value} | {totals[intent]} | {result.confusion[(intent, intent)]} "
            f"| {confused} |"
        )
    return lines


def _load(path: Path) -> list[LabelledTurn]:
    return parse_labelled(path.read_text(encoding="utf-8").splitlines())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dialogue", description=__doc__)
    parser.add_argument("--repeats", type=int, default=9, help="timed runs (≥ 5)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")

    turns = [t for path in sorted(DATA.glob("utterances*.jsonl")) for t in _load(path)]
    frozen = _load(FROZEN)
    splits = sorted({t.split for t in turns})
    sets = {"frozen": _evaluate(frozen), "tuning": _evaluate(turns)}
    per_split = {s: _evaluate([t for t in turns if t.split == s]) for s in splits}
    model = classifier_model()

    out = [
        "## Dialogue analysis and decide (`python -m bench dialogue`)",
        "",
        f"Run {datetime.now(IST):%Y-%m-%d %H:%M} IST.",
        *_machine(),
        f"- classifier: {model.weights.shape[0]} hashed buckets × {model.weights.shape[1]} "
        f"classes, trained on data sha256 {model.data_sha256[:12]}…; routing threshold "
        f"`LLM_BELOW_CONFIDENCE` = {dialogue.LLM_BELOW_CONFIDENCE}",
        "",
        "### Latency",
        "",
        *_latency(turns, args.repeats),
        "",
        "### Accuracy: frozen held-out split and tuning set",
        "",
        f"`frozen`: {len(frozen)} turns written from ../shared/LABELS.md alone by someone "
        "who never saw the rules' output, committed before any tuning, never tuned on "
        "(only these aggregate figures are looked at). `tuning`: the "
        f"{len(turns)} turns of tests/data/utterances*.jsonl the rules and the classifier "
        "were built from — in-sample, so they measure conformance to the labels. "
        "Targets (issue 16, frozen): intent ≥ 90 %, objection type ≥ 85 %, budget and "
        "callback ≥ 97 %, decision maker and timeline ≥ 90 %, ≥ 97 % right at/above the "
        "threshold with ≤ 20 % below it. Objection type and slots are read against "
        "those targets on the turns that carry them (the issue's own starting figures "
        "are counted that way); the all-turns rows, where a line without the slot read "
        "without it counts as right, are beside them for comparison.",
        "",
        *_accuracy(sets),
        "",
        "Per tuning split (`calib` and `calib2` were kept out of rule tuning and fit the "
        "calibration — `calib` is fresh turns written after the intent rules' last change, "
        "`calib2` turns written before the budget rules of `dev4` and weighted toward the "
        "turns the rules are half-sure of; the earlier calibration turns, looked at while "
        "widening the rules, are `calib0`; the classifier saw every split):",
        "",
        *_accuracy(per_split),
        "",
        "### Reliability (confidence bucket → share of right intents)",
        "",
        *_reliability(sets),
        "",
        "### Slot errors",
        "",
        *_slot_errors(sets),
        "",
        "### Intent confusion on the frozen split (misses by kind)",
        "",
        *_confusion(sets["frozen"].score),
        "",
        "### Intent confusion on the tuning set",
        "",
        *_confusion(sets["tuning"].score),
    ]
    errors = sets["tuning"].score.errors
    if errors:
        out += ["", "Mismatching tuning turns:", ""]
        out += [f"- {e}" for e in errors]
    text = "\n".join(out) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text, encoding="utf-8")
        print(f"written to {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0

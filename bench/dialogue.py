"""``python -m bench dialogue``: speed and accuracy of the dialogue core.

Latency: every turn of the labelled set (``tests/data/utterances.jsonl``) is
timed one call at a time with ``perf_counter_ns`` — ``analyze`` alone, ``decide``
alone (on precomputed analyses), and ``analyze`` + ``decide`` together — with
text normalisation alone as the floor reference. ``decide`` walks one call per
shuffled (seeded) pass of the set, starting a fresh call whenever one ends, so
it sees every stage the set can drive it into. Each of ``--repeats`` runs
(default 9, at least 5) gives a p50 and a p99; the table shows the median of
those per-run figures. Target (issue 5): p99 of analyze + decide ≤ 1 ms.

Accuracy: per field over the whole set and per split (metrics defined in
``dialogue.analysis.scoring``), slot error kinds, and a per-intent confusion
summary. Prints markdown and writes it to ``bench/results/dialogue.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import dialogue
from dialogue.analysis.lexicon import normalize
from dialogue.analysis.scoring import SLOT_KEYS, LabelledTurn, Score, parse_labelled, score
from dialogue.model import Analysis, Intent

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "utterances.jsonl"
RESULTS = Path(__file__).resolve().parent / "results" / "dialogue.md"
LEAD = {"lead_name": "Ravi", "city": "Pune"}
IST = ZoneInfo("Asia/Kolkata")
# Each holdout split was written after the rules of its day and scored blind once,
# before any rule change it prompted; these are those first scores. The failures of
# holdout..holdout3 were then used to widen the vocabulary (in-sample now);
# holdout4 was never used for tuning, so its live score below stays a held-out one.
# One label per later split was found inconsistent with the documented conventions
# and corrected; the figure in brackets is the blind score under the corrected label.
BLIND_RUNS = (
    "| split | lines | intent | objection | budget_inr | callback_at | timeline "
    "| decision_maker |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    "| holdout | 106 | 84.0 % | 95.3 % | 100 % | 100 % | 99.1 % | 98.1 % |",
    "| holdout2 | 80 | 70.0 % [71.3 %] | 93.8 % | 100 % | 100 % | 100 % | 97.5 % |",
    "| holdout3 | 74 | 75.7 % [77.0 %] | 93.2 % [94.6 %] | 98.6 % | 100 % | 100 % "
    "| 98.6 % |",
    "| holdout4 (never tuned on) | 67 | 80.6 % | 92.5 % | 100 % | 100 % | 97.0 % | 97.0 % |",
)


def _machine() -> list[str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [
        f"- machine: {platform.platform()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        "- libraries: none beyond the standard library (re, zoneinfo, datetime)",
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
    verdict_p99 = 0.0
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
        if name == "analyze + decide":
            verdict_p99 = p99
    verdict = "met" if verdict_p99 <= 1000.0 else "NOT met"
    lines += ["", f"Target p99(analyze + decide) ≤ 1000 µs (per-turn median): **{verdict}** "
                  f"({verdict_p99:.0f} µs)."]
    return lines


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} % ({part}/{whole})" if whole else "n/a"


def _accuracy(scores: dict[str, Score]) -> list[str]:
    names = list(scores)
    lines = [
        "| field | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        "| intent | " + " | ".join(
            _pct(s.intent_correct, s.lines) for s in scores.values()) + " |",
        "| objection | " + " | ".join(
            _pct(s.objection_correct, s.lines) for s in scores.values()) + " |",
    ]
    for key in SLOT_KEYS:
        lines.append(f"| {key} | " + " | ".join(
            _pct(s.slots[key].correct, s.slots[key].lines) for s in scores.values()) + " |")
    overall = scores[names[0]]
    lines += [
        "",
        "Slot errors over the whole set (exact match over all lines; a slot found on a line "
        "that states none is a false positive):",
        "",
        "| slot | lines carrying it | false positives | missed | wrong value |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, c in overall.slots.items():
        lines.append(
            f"| {key} | {c.labelled} | {c.false_positive} | {c.missed} | {c.wrong_value} |"
        )
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dialogue", description=__doc__)
    parser.add_argument("--repeats", type=int, default=9, help="timed runs (≥ 5)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")

    turns = parse_labelled(DATA.read_text(encoding="utf-8").splitlines())
    splits = sorted({t.split for t in turns})
    scores = {"all": score(turns, dialogue.analyze)}
    for split in splits:
        scores[split] = score([t for t in turns if t.split == split], dialogue.analyze)

    out = [
        "## Dialogue analysis and decide (`python -m bench dialogue`)",
        "",
        f"Run {datetime.now(IST):%Y-%m-%d %H:%M} IST.",
        *_machine(),
        "",
        "### Latency",
        "",
        *_latency(turns, args.repeats),
        "",
        "### Accuracy on the labelled set",
        "",
        f"{len(turns)} caller turns ({', '.join(f'{s}: {scores[s].lines}' for s in splits)}). "
        "`dev` was written from the label conventions before the rules. `holdout`, "
        "`holdout2` and `holdout3` were each written later, scored blind once, and their "
        "failures then used to widen the vocabulary — so they are now in-sample and their "
        "100 % figures measure conformance to the conventions, not generalisation. "
        "`holdout4` was written last and never tuned on: its live score is the honest "
        "estimate of accuracy on unseen phrasing. Blind first scores:",
        "",
        *BLIND_RUNS,
        "",
        "Current scores:",
        "",
        *_accuracy(scores),
        "",
        "### Intent confusion (whole set)",
        "",
        *_confusion(scores["all"]),
    ]
    if scores["all"].errors:
        out += ["", "Mismatching turns:", ""]
        out += [f"- {e}" for e in scores["all"].errors]
    text = "\n".join(out) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text, encoding="utf-8")
        print(f"written to {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0

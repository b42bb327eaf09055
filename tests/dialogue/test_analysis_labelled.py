"""Accuracy of ``dialogue.analyze`` on the labelled tuning set (issue 5 targets).

The tuning set is every ``tests/data/utterances*.jsonl`` (the frozen held-out
split in ``tests/data/frozen/`` is scored only by ``python -m bench dialogue``).
The classifier was fitted on these turns, so these are in-sample figures: they
check conformance to the labels, not generalisation.

Metrics are defined in ``dialogue.analysis.scoring``: every field is scored over
all lines, so a slot predicted where none was stated (false positive) fails a
line just like a missed or wrong one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dialogue import analyze
from dialogue.analysis.scoring import LabelledTurn, Score, parse_labelled, score
from dialogue.model import Analysis, Intent, Objection, Stage

DATA = Path(__file__).parent.parent / "data"
TARGET = 0.95


@pytest.fixture(scope="module")
def turns() -> list[LabelledTurn]:
    turns: list[LabelledTurn] = []
    for path in sorted(DATA.glob("utterances*.jsonl")):
        turns += parse_labelled(path.read_text(encoding="utf-8").splitlines())
    return turns


@pytest.fixture(scope="module")
def result(turns: list[LabelledTurn]) -> Score:
    return score(turns, analyze)


def test_set_is_large_and_covers_every_label(turns: list[LabelledTurn]) -> None:
    assert len(turns) >= 1550
    intents = Counter(t.intent for t in turns)
    objections = Counter(t.objection for t in turns)
    assert set(intents) == set(Intent)
    assert min(intents.values()) >= 40
    assert set(objections) - {None} == set(Objection)
    assert min(n for o, n in objections.items() if o is not None) >= 35
    assert sum("budget_inr" in t.slots for t in turns) >= 100
    assert sum("callback_at" in t.slots for t in turns) >= 200
    assert sum(t.split == "calib" for t in turns) >= 300
    assert sum(t.split == "calib2" for t in turns) >= 300
    assert sum("budget_inr" in t.slots for t in turns if t.split == "dev4") >= 100
    assert {t.slots["timeline"] for t in turns if "timeline" in t.slots} >= {
        "immediate", "this_week", "this_month", "next_month", "this_quarter",
        "next_quarter", "this_year", "no_plan",
    }
    assert {t.slots["decision_maker"] for t in turns if "decision_maker" in t.slots} == {
        True, False,
    }
    assert sum(t.stage is not None for t in turns) >= 100


def test_labelled_texts_are_distinct_per_context(turns: list[LabelledTurn]) -> None:
    keys = [(t.text, t.stage, t.now) for t in turns]
    assert len(keys) == len(set(keys))


def test_every_callback_label_is_in_kolkata_and_after_now(turns: list[LabelledTurn]) -> None:
    for turn in turns:
        at = turn.slots.get("callback_at")
        if at is not None:
            assert isinstance(at, datetime)
            assert at.utcoffset() == timedelta(hours=5, minutes=30), turn.text
            assert at >= turn.now.replace(second=0), turn.text


def test_intent_accuracy(result: Score) -> None:
    assert result.intent_accuracy >= TARGET, "\n".join(result.errors)


def test_objection_accuracy(result: Score) -> None:
    assert result.objection_accuracy >= TARGET, "\n".join(result.errors)
    on_objections = result.objection_labelled_correct / result.objection_lines
    assert on_objections >= TARGET, "\n".join(result.errors)


@pytest.mark.parametrize("slot", ["budget_inr", "callback_at", "timeline", "decision_maker"])
def test_slot_exact_match(result: Score, slot: str) -> None:
    assert result.slots[slot].accuracy >= TARGET, "\n".join(result.errors)
    assert result.slots[slot].labelled_accuracy >= TARGET, "\n".join(result.errors)


def test_false_positives_are_counted(turns: list[LabelledTurn]) -> None:
    """The metric punishes a slot invented on a line that states none."""
    plain = [t for t in turns if not t.slots][:10]

    def invents_budget(text: str, stage: Stage | None, now: datetime | None) -> Analysis:
        got = analyze(text, stage, now)
        return replace(got, slots={**got.slots, "budget_inr": 1})

    counts = score(plain, invents_budget).slots["budget_inr"]
    assert counts.false_positive == 10
    assert counts.accuracy == 0.0


def test_slots_are_also_scored_on_the_lines_that_carry_them(turns: list[LabelledTurn]) -> None:
    """A reader that never finds a budget is right on every line without one, so
    the all-lines figure flatters it; on the lines carrying a budget it scores 0."""
    mixed = [t for t in turns if "budget_inr" in t.slots][:5] + [
        t for t in turns if not t.slots][:45]

    def never_budget(text: str, stage: Stage | None, now: datetime | None) -> Analysis:
        got = analyze(text, stage, now)
        return replace(got, slots={k: v for k, v in got.slots.items() if k != "budget_inr"})

    counts = score(mixed, never_budget).slots["budget_inr"]
    assert (counts.labelled, counts.labelled_correct, counts.missed) == (5, 0, 5)
    assert counts.accuracy == 0.9
    assert counts.labelled_accuracy == 0.0

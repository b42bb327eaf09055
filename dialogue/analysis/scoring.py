"""Scoring ``analyze`` against a labelled set (``tests/data/utterances.jsonl``).

One JSON object per line::

    {"text": "kal shaam 7 baje phone karna", "stage": null,
     "now": "2026-11-24T15:30:00+05:30", "intent": "callback_request",
     "objection": null, "slots": {"callback_at": "2026-11-25T19:00:00+05:30"},
     "split": "dev"}

``slots`` holds only the keys the caller stated (``budget_inr``,
``callback_at``, ``timeline``, ``decision_maker``); ``split`` is ``dev``, ``dev2``,
``dev3``, ``dev4`` (written to widen the rules; ``dev4`` is budget turns),
``holdout`` … ``holdout5`` (each written later and scored blind once before its
failures were used to widen the rules), ``calib0`` (the first calibration turns,
used for tuning since issue 16), ``calib`` (written after the last change of the
intent rules) or ``calib2`` (written before the budget rules of ``dev4``,
weighted toward turns the rules are half-sure of); ``calib`` and ``calib2`` were
never tuned on and fit the calibration.

Metrics, every one over **all** lines of the set:

* ``intent`` / ``objection`` — exact label match (``objection`` null = null).
* each slot — *exact match*: a line scores when the predicted value equals the
  label, absence included. So a slot found on a line that states none (a false
  positive, e.g. a count read as a budget) and a slot missed or mis-valued all
  count as errors; ``SlotCounts`` keeps those three apart.

Pure: parsing takes the lines, the caller opens the file.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dialogue.model import Analysis, Intent, Objection, Stage, Timeline

__all__ = [
    "SLOT_KEYS",
    "LabelledTurn",
    "Score",
    "SlotCounts",
    "parse_labelled",
    "score",
]

SLOT_KEYS = ("budget_inr", "callback_at", "timeline", "decision_maker")


@dataclass(frozen=True, slots=True)
class LabelledTurn:
    """One labelled caller turn."""

    text: str
    stage: Stage | None
    now: datetime
    intent: Intent
    objection: Objection | None
    slots: Mapping[str, object]
    split: str


def _slot_value(key: str, value: object) -> object:
    if key == "callback_at":
        if not isinstance(value, str):
            raise ValueError(f"callback_at must be an ISO string, not {value!r}")
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"callback_at must carry an offset: {value!r}")
        return parsed
    if key == "timeline":
        return Timeline(str(value))
    if key == "budget_inr" and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ValueError(f"budget_inr must be an int: {value!r}")
    if key == "decision_maker" and not isinstance(value, bool):
        raise ValueError(f"decision_maker must be a bool: {value!r}")
    return value


def parse_labelled(lines: Iterable[str]) -> list[LabelledTurn]:
    """Parse the JSONL lines (blank lines skipped); raises ValueError with the
    line number on a malformed line."""
    turns: list[LabelledTurn] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            objection = raw["objection"]
            turns.append(LabelledTurn(
                text=raw["text"],
                stage=Stage(raw["stage"]) if raw["stage"] is not None else None,
                now=datetime.fromisoformat(raw["now"]),
                intent=Intent(raw["intent"]),
                objection=Objection(objection) if objection is not None else None,
                slots={k: _slot_value(k, v) for k, v in raw["slots"].items()},
                split=raw.get("split", "dev"),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"line {number}: {exc}") from exc
    return turns


@dataclass(slots=True)
class SlotCounts:
    """Exact-match tally for one slot over a set."""

    lines: int = 0
    correct: int = 0
    labelled: int = 0  # lines that carry the slot
    labelled_correct: int = 0  # of those, read exactly
    false_positive: int = 0  # predicted on a line that carries none
    missed: int = 0  # labelled but not predicted
    wrong_value: int = 0  # both present, values differ

    @property
    def accuracy(self) -> float:
        return self.correct / self.lines if self.lines else 0.0

    @property
    def labelled_accuracy(self) -> float:
        """Exact on the lines that carry the slot (a line without it, read
        without it, does not count here)."""
        return self.labelled_correct / self.labelled if self.labelled else 0.0


@dataclass(slots=True)
class Score:
    """Accuracy of ``analyze`` over a labelled set, and what went wrong."""

    lines: int = 0
    intent_correct: int = 0
    objection_correct: int = 0
    objection_lines: int = 0  # lines labelled with an objection type
    objection_labelled_correct: int = 0  # of those, the type read right
    slots: dict[str, SlotCounts] = field(default_factory=dict)
    confusion: Counter[tuple[Intent, Intent]] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def intent_accuracy(self) -> float:
        return self.intent_correct / self.lines if self.lines else 0.0

    @property
    def objection_accuracy(self) -> float:
        return self.objection_correct / self.lines if self.lines else 0.0


def score(
    turns: Iterable[LabelledTurn],
    analyze: Callable[[str, Stage | None, datetime | None], Analysis],
) -> Score:
    """Run ``analyze`` on every turn and tally the metrics in the module docstring.

    ``confusion`` counts (expected, predicted) intent pairs, diagonal included;
    ``errors`` lists one readable line per mismatching turn.
    """
    result = Score(slots={key: SlotCounts() for key in SLOT_KEYS})
    for turn in turns:
        got = analyze(turn.text, turn.stage, turn.now)
        result.lines += 1
        result.confusion[(turn.intent, got.intent)] += 1
        problems: list[str] = []
        if got.intent is turn.intent:
            result.intent_correct += 1
        else:
            problems.append(f"intent {got.intent} != {turn.intent}")
        result.objection_lines += turn.objection is not None
        if got.objection is turn.objection:
            result.objection_correct += 1
            result.objection_labelled_correct += turn.objection is not None
        else:
            problems.append(f"objection {got.objection} != {turn.objection}")
        for key, counts in result.slots.items():
            expected, predicted = turn.slots.get(key), got.slots.get(key)
            counts.lines += 1
            counts.labelled += expected is not None
            if expected == predicted:
                counts.correct += 1
                counts.labelled_correct += expected is not None
                continue
            if expected is None:
                counts.false_positive += 1
            elif predicted is None:
                counts.missed += 1
            else:
                counts.wrong_value += 1
            problems.append(f"{key} {predicted!r} != {expected!r}")
        if problems:
            result.errors.append(f"{turn.text!r} [{turn.stage}]: " + "; ".join(problems))
    return result

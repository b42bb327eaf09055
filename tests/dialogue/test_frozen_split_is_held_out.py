"""The frozen held-out split shares no turn with the tuning data.

``tests/data/frozen/heldout.jsonl`` is scored only by ``python -m bench dialogue``;
a tuning turn whose text equals a frozen one (after normalisation) would let the
rules and the classifier learn it, inflating the frozen figures. Texts are compared
programmatically and never printed: a failure names only the tuning file and
line numbers to delete.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DATA = Path(__file__).parent.parent / "data"
FROZEN = DATA / "frozen" / "heldout.jsonl"
_APOSTROPHES = re.compile(r"['’‘`´]")
_PUNCT = re.compile(r"[^\w\s]|_")


def normalised_forms(text: str) -> set[str]:
    """Lowercase, punctuation stripped, spaces collapsed — both with punctuation
    deleted ("don't" → "dont") and turned into a space ("9:30" → "9 30")."""
    lower = text.lower()
    deleted = " ".join(_PUNCT.sub("", lower).split())
    spaced = " ".join(_PUNCT.sub(" ", _APOSTROPHES.sub("", lower)).split())
    return {deleted, spaced}


def _texts(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(n, json.loads(line)["text"]) for n, line in enumerate(lines, 1) if line.strip()]


def test_normalised_forms() -> None:
    assert normalised_forms("Don't  CALL me, OK?") == {"dont call me ok"}
    assert normalised_forms("kal 9:30 baje") == {"kal 930 baje", "kal 9 30 baje"}


def test_no_tuning_text_equals_a_frozen_text() -> None:
    frozen: set[str] = set()
    for _, text in _texts(FROZEN):
        frozen |= normalised_forms(text)
    assert frozen, "the frozen split is empty"
    files = sorted(DATA.glob("utterances*.jsonl"))
    assert files
    clashes = [
        f"{path.name}:{n}"
        for path in files
        for n, text in _texts(path)
        if normalised_forms(text) & frozen
    ]
    assert not clashes, f"{len(clashes)} tuning turns repeat a frozen turn: {', '.join(clashes)}"

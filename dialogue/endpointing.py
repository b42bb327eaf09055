"""Adaptive endpointing: how long to wait, from the words so far, before a turn ends.

Pure: the caller's words (the STT's transcript so far) and whether the bot's last
line asked something. ``EARLY``: a complete short answer to a question ("yes",
"haan ji", "nahi", "theek hai") — end the turn at the first pause, no need to
wait out the usual silence. ``LATE``: the words stop mid-phrase ("and", "but",
"because", "matlab", "I think", a number still being said) — give the caller
more silence before deciding they are done. ``NORMAL`` otherwise.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final


class EndpointHint(StrEnum):
    EARLY = "early"
    NORMAL = "normal"
    LATE = "late"


#: Whole answers to a question: nothing more is coming.
SHORT_ANSWERS: Final = frozenset({
    "yes", "yeah", "yep", "yes please", "no", "nope", "no thanks", "no thank you",
    "sure", "okay", "ok", "right", "correct", "exactly", "of course",
    "haan", "haan ji", "ha", "han", "ji", "ji haan", "haanji", "nahi", "nahin", "na",
    "nahi ji", "ji nahi", "theek hai", "thik hai", "bilkul", "achha", "acha", "sahi hai",
})
#: Words after which a phrase goes on.
CONTINUATIONS: Final = frozenset({
    "and", "but", "because", "so", "or", "if", "then", "that", "which", "with", "the", "a",
    "an", "to", "of", "for", "my", "is", "are", "about", "like", "um", "uh", "er",
    "matlab", "aur", "lekin", "par", "ki", "ke", "ka", "toh", "jo", "kyunki", "ya",
    "agar", "mera", "meri", "woh",
})
#: Two-word endings that go on ("I think ...", "you know ...").
CONTINUING_PAIRS: Final = frozenset({("i", "think"), ("you", "know"), ("i", "mean"),
                                     ("i", "want"), ("i", "need"), ("kya", "hai")})
#: Number words: "two thousand ..." may still be growing.
NUMBER_WORDS: Final = frozenset({
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    "hundred", "thousand", "lakh", "lakhs", "crore", "ek", "do", "teen", "char", "paanch",
    "das", "bees", "sau", "hazaar", "hazar",
})
_WORD = re.compile(r"[a-z']+|\d+")


def endpoint_hint(text: str, *, after_question: bool) -> EndpointHint:
    """See the module docstring."""
    words = _WORD.findall(text.lower())
    if not words:
        return EndpointHint.NORMAL
    if after_question and " ".join(words) in SHORT_ANSWERS:
        return EndpointHint.EARLY
    last = words[-1]
    if last in CONTINUATIONS or tuple(words[-2:]) in CONTINUING_PAIRS:
        return EndpointHint.LATE
    if (last in NUMBER_WORDS or last.isdigit()) and not text.rstrip().endswith((".", "?", "!")):
        return EndpointHint.LATE
    return EndpointHint.NORMAL

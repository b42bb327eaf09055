"""Text normalisation shared by the analysis rules.

A caller turn arrives in one of two shapes: a Deepgram transcript (lowercase or
cased, with some punctuation) or a noisy ASR string (lowercase, no punctuation,
Hindi written in Latin script with inconsistent spelling). Every rule in this
package runs on one of two normal forms built here once per turn:

``plain``
    lowercase, apostrophes removed (``don't`` → ``dont``, ``i'm`` → ``im``),
    every other punctuation mark except ``₹`` turned into a space, digit-group
    commas removed (``₹2,80,000`` → ``₹280000``), "rs"/"inr"/"rupees" before a
    digit written ``₹`` ("Rs. 5,000" → ``₹5000``), whitespace collapsed. The
    intent rules match on this form, so they never see a digit where the caller
    said a word ("no one" stays "no one").

``numeric``
    ``plain`` with spoken numbers turned into digits for the money and time
    rules: English ("forty thousand" → ``40 thousand``, "two and a half lakh"
    → ``2.5 lakh``), Hindi ("nabbe hazaar" → ``90 hazaar``, "dedh lakh" →
    ``1.5 lakh``, "saadhe chaar" → ``4.5``, "sawa lakh" → ``1.25 lakh``, "aadhe
    ghante" → ``0.5 ghante``, "paintalis hazaar" → ``45 hazaar``; "half a
    lakh" → ``0.5 lakh``) and the ASR confusions "too"/"to" for two, "for" for
    four and "won" for one, which are only read as numbers where a number is
    expected (after "at"/"after", or before a unit such as "hours", "baje",
    "lakh", also across "point five" or "and a half": "to point five lakh" →
    ``2.5 lakh``). Words that are also ordinary words ("do" = give, "saath"/
    "sath" = with, "nau", "das"/"dus", "che", "tera", "one") become numbers only
    before a unit.

Everything here is precompiled at import; ``normalize`` does no compilation.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["NormalText", "normalize"]


class NormalText(NamedTuple):
    """The two normal forms of one caller turn (see the module docstring)."""

    plain: str
    numeric: str


_APOSTROPHES: Final = re.compile(r"['’‘`´]")
_DIGIT_COMMA: Final = re.compile(r"(?<=\d),(?=\d)")
_RUPEE_PREFIX: Final = re.compile(r"\b(?:rs|inr|rupees?|rupaye|rupay)\.?\s*(?=\d)")
# Keep "." and ":" only between digits (decimals, clock times); ₹ stays.
_PUNCT: Final = re.compile(r"(?!(?<=\d)[.:](?=\d))[^\w₹\s]|_")
_SPACES: Final = re.compile(r"\s+")
# "hellooo", "hmmmm", "nooo": stretched letters, never digits.
_STRETCHED: Final = re.compile(r"([a-z])\1{2,}")
_RUPEE_GLUE: Final = re.compile(r"₹\s*")

# Units after which an ambiguous word is certainly a number.
_UNIT = (
    r"(?:lakhs?|laakhs?|lacs?|lacks?|lack|crores?|cr|karod|karor|hazaar|hazar|hajar|hajaar|hazzar"
    r"|thousand|k|hundred|sau"
    r"|baje|bje|ghante|ghanta|hours?|hrs?|minutes?|mins?|min|pm|am|p m|a m|oclock|o clock"
    r"|tarikh|tareekh|bajkar)"
)

_ONES: Final[dict[str, int]] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}
_TENS: Final[dict[str, int]] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}
# Hindi numerals in common Latin spellings; always numbers.
_HINDI_SAFE: Final[dict[str, int]] = {
    "ek": 1, "teen": 3, "tin": 3, "char": 4, "chaar": 4, "paanch": 5, "panch": 5, "paach": 5,
    "saat": 7, "aath": 8, "gyarah": 11, "gyara": 11, "barah": 12, "baarah": 12,
    "pandrah": 15, "pandra": 15, "bees": 20, "pachees": 25, "pachchis": 25, "pachis": 25,
    "chalis": 40, "chaalis": 40, "pachas": 50, "pachaas": 50,
    "sattar": 70, "assi": 80, "nabbe": 90, "nabbey": 90, "nabe": 90,
    "pantees": 35, "paintees": 35, "chalees": 40, "pachpan": 55, "pachattar": 75,
    "terah": 13, "chaudah": 14, "chaudha": 14, "solah": 16, "satrah": 17, "atharah": 18,
    "unnis": 19, "unnees": 19, "unis": 19, "ikkis": 21, "ikkees": 21, "bais": 22, "baees": 22,
    "teis": 23, "tees": 30, "chaubis": 24, "chaubees": 24, "chhabbis": 26, "chabbis": 26,
    "sattais": 27, "satais": 27, "athais": 28, "atthais": 28, "untees": 29, "battis": 32,
    "battees": 32, "paintalis": 45, "paintalees": 45, "pentalis": 45, "painsath": 65,
    "painsat": 65, "pensath": 65, "pichattar": 75, "pachhattar": 75, "pachasi": 85,
    "pachaasi": 85, "pichasi": 85,
}
# Numbers that are also ordinary words: read as numbers only before a unit.
_HINDI_AMBIGUOUS: Final[dict[str, int]] = {
    "do": 2, "dono": 2, "che": 6, "chhe": 6, "chhah": 6, "cheh": 6, "nau": 9, "das": 10,
    "saath": 60, "sath": 60, "one": 1, "won": 1, "too": 2, "to": 2, "for": 4, "fore": 4,
    "sau": 100, "dus": 10, "tera": 13, "sola": 16, "satra": 17, "athara": 18,
}
_FRACTION_WORDS: Final[dict[str, float]] = {
    "dedh": 1.5, "derh": 1.5, "dhai": 2.5, "dhaai": 2.5, "adhai": 2.5, "arhai": 2.5,
    "aadhe": 0.5, "aadha": 0.5, "adhe": 0.5, "adha": 0.5,
}
# "saadhe N" = N + 0.5, "sawa N" = N + 0.25, "paune N" = N - 0.25.
_FRACTION_PREFIX: Final[dict[str, float]] = {
    "saadhe": 0.5, "sadhe": 0.5, "saade": 0.5, "sade": 0.5, "saare": 0.5,
    "sawa": 0.25, "savva": 0.25, "sava": 0.25, "paune": -0.25, "pone": -0.25,
}

_WORD_NUMBER: Final = re.compile(
    r"\b(?:(?P<tens>" + "|".join(_TENS) + r")(?:\s+(?P<tone>"
    + "|".join(k for k in _ONES if _ONES[k] < 10 and k != "zero")
    + r"))?|(?P<ones>" + "|".join(k for k in _ONES if k != "one") + r")|(?P<hindi>"
    + "|".join(_HINDI_SAFE) + r"))\b"
)
# "to point five lakh", "one and a half lakh": the unit may follow a fraction.
_AMBIGUOUS_BEFORE_UNIT: Final = re.compile(
    r"\b(?P<word>" + "|".join(_HINDI_AMBIGUOUS) + r")(?=\s+(?:point\s+\w+\s+|and\s+a\s+half\s+)?"
    + _UNIT + r"\b)"
)
# ASR: "at for", "after too", "by to" at a clause end or before a unit handled above.
_AMBIGUOUS_AFTER_AT: Final = re.compile(
    r"\b(?P<prep>at|after|around|by)\s+(?P<word>too|to|for|fore|one)\b"
    r"(?!\s+(?:the|a|an|me|us|you|your|my|our|him|her|them|it|this|that|some|sure)\b)"
)
_AND_A_HALF: Final = re.compile(r"\b(\d+)\s+and\s+a\s+half\b")
_ONE_AND_A_HALF: Final = re.compile(r"\bone\s+and\s+a\s+half\b")
# "sawa lakh" = 1.25 lakh, "paune lakh" = 0.75 lakh: the prefix alone before a scale.
_BARE_PREFIX: Final = re.compile(
    r"\b(?P<prefix>sawa|savva|sava|paune|pone)\s+(?=(?:lakhs?|lacs?|lacks?|lack|crores?|karod"
    r"|karor|hazaar|hazar|hajar|thousand)\b)"
)
_POINT: Final = re.compile(r"\b(\d+)\s+point\s+(\d+)\b")
_HALF_AN: Final = re.compile(r"\bhalf\s+an?\s+(?=hour|ghant)")
_AN_HOUR: Final = re.compile(r"\ban?\s+(?=hour\b)")
_HALF_A_SCALE: Final = re.compile(r"\bhalf\s+an?\s+(?=(?:lakh|lac|lack|crore|thousand)\b)")
_A_SCALE: Final = re.compile(r"\ba\s+(?=(?:lakh|lac|lack|crore|thousand)\b)")
_FRACTION: Final = re.compile(r"\b(?P<word>" + "|".join(_FRACTION_WORDS) + r")\b")
_PREFIXED: Final = re.compile(
    r"\b(?P<prefix>" + "|".join(_FRACTION_PREFIX) + r")\s+(?P<n>\d+)\b"
)


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _word_number(match: re.Match[str]) -> str:
    if match["tens"]:
        return str(_TENS[match["tens"]] + (_ONES[match["tone"]] if match["tone"] else 0))
    if match["ones"]:
        return str(_ONES[match["ones"]])
    return str(_HINDI_SAFE[match["hindi"]])


def _ambiguous_before_unit(match: re.Match[str]) -> str:
    return str(_HINDI_AMBIGUOUS[match["word"]])


def _ambiguous_after_at(match: re.Match[str]) -> str:
    return f"{match['prep']} {_HINDI_AMBIGUOUS[match['word']]}"


def _fraction(match: re.Match[str]) -> str:
    return _fmt(_FRACTION_WORDS[match["word"]])


def _prefixed(match: re.Match[str]) -> str:
    return _fmt(int(match["n"]) + _FRACTION_PREFIX[match["prefix"]])


def _plain(text: str) -> str:
    text = _APOSTROPHES.sub("", text.lower())
    text = _DIGIT_COMMA.sub("", text)
    text = _RUPEE_PREFIX.sub("₹", text)
    text = _PUNCT.sub(" ", text)
    text = _STRETCHED.sub(r"\1", text)
    text = _RUPEE_GLUE.sub("₹", text)
    return _SPACES.sub(" ", text).strip()


def _bare_prefix(match: re.Match[str]) -> str:
    return _fmt(1 + _FRACTION_PREFIX[match["prefix"]]) + " "


def _numeric(plain: str) -> str:
    text = _ONE_AND_A_HALF.sub("1.5", plain)
    text = _BARE_PREFIX.sub(_bare_prefix, text)
    text = _AMBIGUOUS_BEFORE_UNIT.sub(_ambiguous_before_unit, text)
    text = _AMBIGUOUS_AFTER_AT.sub(_ambiguous_after_at, text)
    text = _WORD_NUMBER.sub(_word_number, text)
    text = _HALF_AN.sub("0.5 ", text)
    text = _AN_HOUR.sub("1 ", text)
    text = _HALF_A_SCALE.sub("0.5 ", text)
    text = _A_SCALE.sub("1 ", text)
    text = _AND_A_HALF.sub(lambda m: m[1] + ".5", text)
    text = _POINT.sub(lambda m: m[1] + "." + m[2], text)
    text = _FRACTION.sub(_fraction, text)
    return _PREFIXED.sub(_prefixed, text)


def normalize(text: str) -> NormalText:
    """Both normal forms of ``text`` (any case, any punctuation, may be empty)."""
    plain = _plain(text)
    return NormalText(plain, _numeric(plain))

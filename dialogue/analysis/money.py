"""``budget_inr``: the amount the caller has or can spend, in whole rupees.

Runs on the ``numeric`` normal form (see ``lexicon``), where spoken numbers are
already digits. Two steps:

1. **Find amounts.** A number is money when it carries a scale ("5 lakh",
   "2.5 crore", "50k", "15 hazaar", "40 thousand", the ASR spelling "lack"), a
   currency mark ("₹40000", "rs 5000", "60000 rupees"), or is a plain number of
   at least 1,000 that is not followed by a counted noun ("1000 square feet",
   "1500 users") and not a clock time. A smaller scale may follow a larger one:
   "1 lakh 20 thousand" = 1,20,000. Scales: thousand/k/hazaar 10³, lakh 10⁵,
   crore 10⁷ (and hundred/sau 10², "fifteen hundred"). Ranges ("40 to 50
   thousand", "4-5 lakh") share the trailing scale and count as their upper
   bound — the most the caller says they can spend.
2. **Keep only the caller's budget.** Counts and capacities never become money
   (they have no scale or currency, or are under 1,000). An amount in a turn
   that complains about a price ("2 lakh? that's too much", "you said 3.5 lakh,
   out of budget") is a price quoted back, not a budget — unless the turn also
   has a budget cue ("my budget is only 1 lakh, this is way over"), in which
   case the amount nearest a budget cue wins. Without a price complaint every
   amount counts; with several, the one nearest a budget cue, else the first.
   Per-month figures are kept as spoken ("15 hazaar mahine ka" → 15000). An
   amount that names a loan or cover ("teen lakh tak ka loan", "a loan of 8
   lakh"), a bill, salary, turnover or rent is never a budget, and a plain
   number or "N hundred" before a plural noun is a count ("3000 invoices").

``budget_ceiling`` tells a budget stated as a ceiling ("only 2 lakh", "25k is our
limit"): said to a quoted price it is a price objection (``reading``).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["Amount", "budget_ceiling", "extract_budget", "find_amounts"]

_SCALES: Final[dict[str, int]] = {
    "k": 1_000, "thousand": 1_000, "thousands": 1_000, "hazaar": 1_000, "hazar": 1_000,
    "hajar": 1_000, "lakh": 100_000, "lakhs": 100_000, "lac": 100_000,
    "lacs": 100_000, "lack": 100_000, "lacks": 100_000, "crore": 10_000_000,
    "crores": 10_000_000, "cr": 10_000_000, "karod": 10_000_000, "karor": 10_000_000,
    "hundred": 100, "sau": 100,
}
# A count can carry these scales too ("five hundred employees").
_SMALL_SCALES: Final = frozenset({"hundred", "sau"})
_SCALE_RE = r"(?:" + "|".join(sorted(_SCALES, key=len, reverse=True)) + r")"
_NUM = r"\d+(?:\.\d+)?"

_AMOUNT: Final = re.compile(
    r"(?P<cur>₹)?(?P<num>" + _NUM + r")"
    r"(?:\s*(?:to|-|se)\s*(?P<upper>" + _NUM + r"))?"
    r"\s*(?P<scale>" + _SCALE_RE + r")?\b"
    r"(?:\s+(?P<num2>" + _NUM + r")\s*(?P<scale2>" + _SCALE_RE + r")\b)?"
    r"(?P<rupees>\s+(?:rupees?|rupaye|rupay|rupiya|rs|inr|bucks))?"
)
# A plain number followed by one of these is a count or a measure, not money.
_COUNTED: Final = re.compile(
    r"\s*(?:sq|square|feet|ft|kw|kilowatt|watt|units?|employees?|people|log|users?|licen[sc]es?"
    r"|seats?|shops?|dukan|branches|cars?|km|kg|gb|bhk|seater|years?|saal|sal|doctors?|members?"
    r"|rooms?|staff|months?|mahine|days?|din|baje|pm|am|hours?|ghante|minutes?|mins?|tarikh"
    r"|st|nd|rd|th|january|february|march|april|may|june|july|august|september|october"
    r"|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\b"
)
# A plain number followed by any plural noun is a count ("3000 invoices").
_PLURAL: Final = re.compile(
    r"\s*(?!(?:rupees|rupays|bucks|lakhs|lacs|lacks|crores|thousands|plus)\b)[a-z]{3,}s\b"
)
_CLOCK_BEFORE: Final = re.compile(r"(?:\bat|\bafter|\bby|:)\s*$")

_BUDGET_CUE: Final = re.compile(
    r"\b(?:budget|can spend|could spend|spend|afford|can pay|can only pay|only pay|invest"
    r"|de sakt[aei]|de payenge|kar sakt[aei]|kar sakte|ja sakt[aei]|le sakt[aei]|tak|upto|up to"
    r"|max|maximum|only|bas|sirf|mere paas|hamare paas|humare paas|(?<!aas )paas hai|rakha"
    r"|sanctioned"
    r"|can go|go up|se upar nahi|se zyada nahi|ho jayega|have|kar payenge|kar paunga|at most"
    r"|de paunga|afford kar\w*|chalega|(?:our|my|hamari|meri|humari) limit|limit hai)\b"
)
# Phrases that look like budget cues but complain about a price.
_NOT_A_CUE: Final = re.compile(
    r"\b(?:out of (?:my |our )?budget|over (?:my |our |the )?budget|budget se (?:bahar|zyada|upar)"
    r"|beyond (?:my |our )?budget|more than (?:my |our )?budget)\b"
)
_PRICE_COMPLAINT: Final = re.compile(
    r"\b(?:too much|too high|too expensive|expensive|costly|mehe?nga|zyada|jyada|out of budget"
    r"|over budget|way over|you said|aapne bola|aap bol rahe|bata rahe|is too|price is|cost is"
    r"|rate is|itna kyun|kaise itna|no way|fee of)\b"
)
# An amount next to one of these is a loan, a cover, a bill or a limit, not a budget.
_NOT_BUDGET: Final = re.compile(
    r"\b(?:loan|cover|sum insured|bill|limit|turnover|salary|income|fee|fees|kitn[aei])\b"
)
_NEAR: Final = 24
# An amount that names the loan or cover itself ("teen lakh tak ka loan", "a loan of
# 8 lakh") or a bill, salary or rent ("bill is only 800 a month") is never a
# budget, whatever cue is near.
_LOAN_AFTER: Final = re.compile(r"\s*(?:tak\s+)?(?:ka|ki|ke|of)?\s*(?:loan|cover|sum insured)\b")
_LOAN_BEFORE: Final = re.compile(
    r"\b(?:(?:loan|cover|sum insured)(?:\s+(?:of|amount|amount of|ka|ki))?"
    r"|(?:bill|salary|income|turnover|rent)(?:\s+(?:is|hai|of|comes to))?"
    r"(?:\s+(?:only|just|around|about|sirf|roughly))?)\s*$"
)
# A budget stated as a ceiling ("only 2 lakh", "50 thousand max", "25k is our limit").
_CEILING: Final = re.compile(
    r"\b(?:only|sirf|bas|max|maximum|at most|at the most|limit|se zyada nahi|se upar nahi"
    r"|not more than|tak hi|was thinking|nahi de sakte)\b"
)


class Amount(NamedTuple):
    """One money expression: its value in rupees and where it sits in the text."""

    rupees: int
    start: int
    end: int


def _value(num: str, scale: str | None) -> float:
    return float(num) * (_SCALES[scale] if scale else 1)


def find_amounts(numeric: str) -> list[Amount]:
    """Every money expression in a ``numeric`` normal form, in order."""
    amounts: list[Amount] = []
    for m in _AMOUNT.finditer(numeric):
        scale, cur, rupees = m["scale"], m["cur"], m["rupees"]
        bare = not (cur or rupees) and (not scale or scale in _SMALL_SCALES)
        if bare and (_COUNTED.match(numeric, m.end()) or _PLURAL.match(numeric, m.end())
                     or _CLOCK_BEFORE.search(numeric, 0, m.start())):
            continue
        if not (scale or cur or rupees):
            plain_value = float(m["num"])
            if plain_value < 1000 or 1900 <= plain_value <= 2100:  # a count or a year
                continue
        value = _value(m["upper"] or m["num"], scale)
        if m["num2"] and m["scale2"] and _SCALES[m["scale2"]] < (_SCALES[scale] if scale else 1):
            value += _value(m["num2"], m["scale2"])
        if value < 1:
            continue
        amounts.append(Amount(round(value), m.start(), m.end()))
    return amounts


def _cue_positions(numeric: str) -> list[int]:
    blanked = _NOT_A_CUE.sub(lambda m: " " * len(m[0]), numeric)
    return [m.start() for m in _BUDGET_CUE.finditer(blanked)]


def _other_money(numeric: str, amount: Amount, cues: list[int]) -> bool:
    """Whether ``amount`` sits next to a loan/cover/bill word and no budget cue."""
    if (_LOAN_AFTER.match(numeric, amount.end)
            or _LOAN_BEFORE.search(numeric, max(0, amount.start - _NEAR), amount.start)):
        return True
    start, end = max(0, amount.start - _NEAR), amount.end + _NEAR
    if not _NOT_BUDGET.search(numeric, start, end):
        return False
    return not any(start <= cue <= end for cue in cues)


def extract_budget(numeric: str, *, asks_price: bool = False) -> int | None:
    """The caller's budget in rupees, or None (see the module docstring).

    ``asks_price``: the turn asks what something costs ("emi kitna for 5
    lakh"); its amounts are then prices, like in a complaint, unless a budget
    cue is present.
    """
    cues = _cue_positions(numeric)
    amounts = [a for a in find_amounts(numeric) if not _other_money(numeric, a, cues)]
    if not amounts:
        return None
    if (asks_price or _PRICE_COMPLAINT.search(numeric)) and not cues:
        return None
    if len(amounts) == 1 or not cues:
        return amounts[0].rupees

    def distance(amount: Amount) -> int:
        return min(
            min(abs(cue - amount.start), abs(cue - amount.end)) for cue in cues
        )

    return min(amounts, key=distance).rupees


def budget_ceiling(numeric: str) -> bool:
    """Whether the turn states its budget as a ceiling ("our budget is only 2
    lakh", "15k a month max"): said to a price, that is a price objection."""
    return bool(_CEILING.search(numeric)) and extract_budget(numeric) is not None

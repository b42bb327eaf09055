"""``budget_inr``: the amount the caller has or can spend, in whole rupees.

Runs on the ``numeric`` normal form (see ``lexicon``), where spoken numbers are
already digits. Two steps:

1. **Find amounts.** A number is money when it carries a scale ("5 lakh",
   "2.5 crore", "50k", "15 hazaar", "40 thousand", the ASR spellings "lack",
   "laakh", "hajaar"), a currency mark ("₹40000", "rs 5000", "rupees 800",
   "60000 rupees"), or is a plain number of at least 1,000 that is not a year
   (1900–2100, unless "per month"/"a year" follows), not a clock time, and does
   not name something: eight digits or more, one group of a digit string
   ("98765 43210") or a number after "pin code", "flat", "order id", "policy
   number"… is a phone, PIN or reference number. A
   smaller scale may follow a larger one: "1 lakh 20 thousand" = 1,20,000, and
   the spoken "1 lakh 50" = 1,50,000 ("1 crore 20" = 1.2 crore). Scales:
   thousand/k/hazaar 10³, lakh 10⁵, crore 10⁷ (and hundred/sau 10², "fifteen
   hundred"). Ranges ("40 to 50 thousand", "4-5 lakh", "2 se 3 lakh", "3 lakh
   to 4 lakh", "between 80 thousand and 1 lakh") count as their upper bound —
   the most the caller says they can spend. Any number before a measure or a
   plural noun is a count, scale or not ("1000 litre", "10 hazaar sq ft",
   "3000 invoices", "10k customers", "2 lakh followers").
2. **Keep only the caller's budget.** An amount in a turn that complains about a
   price ("2 lakh? that's too much", "you said 3.5 lakh, out of budget"), names
   a price found elsewhere ("the other company quoted 1.5 lakh", "market mein 12
   hazaar mein mil jata hai"), confirms a total or asks for a discount is a
   price, not a budget — unless the turn also has a budget cue ("my budget is
   only 1 lakh, this is way over"), in which case the amount nearest a budget
   cue wins. Otherwise every amount counts; with several, the one nearest a
   budget cue, else the first. Per-month figures are kept as spoken ("15
   hazaar mahine ka" → 15000; an EMI the caller can pay is a budget). An amount
   that names a loan, cover or credit limit ("teen lakh tak ka loan", "a loan
   of 8 lakh"), a bill, salary, income, pension, sales, turnover or rent is
   never a budget; one next to a spend already made or running ("we currently
   pay 3000 a month", "pichle saal 6 hazaar diye the", "my current emi is
   14000") or to a cashback is not one either, unless a budget cue is near.

``budget_ceiling`` tells a budget stated as a ceiling ("only 2 lakh", "25k is our
limit"): said to a quoted price it is a price objection (``reading``).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["Amount", "budget_ceiling", "extract_budget", "find_amounts"]

_SCALES: Final[dict[str, int]] = {
    "k": 1_000, "thousand": 1_000, "thousands": 1_000, "hazaar": 1_000, "hazar": 1_000,
    "hajar": 1_000, "hajaar": 1_000, "hazzar": 1_000, "lakh": 100_000, "lakhs": 100_000,
    "laakh": 100_000, "laakhs": 100_000, "lac": 100_000,
    "lacs": 100_000, "lack": 100_000, "lacks": 100_000, "crore": 10_000_000,
    "crores": 10_000_000, "cr": 10_000_000, "karod": 10_000_000, "karor": 10_000_000,
    "hundred": 100, "sau": 100,
}
# A count can carry these scales too ("five hundred employees").
_SMALL_SCALES: Final = frozenset({"hundred", "sau"})
# "1 lakh 50" = 1,50,000, "1 crore 20" = 1.2 crore: the unit after the scale, unsaid.
_SPOKEN_REST: Final[dict[str, int]] = {
    "lakh": 1_000, "lakhs": 1_000, "laakh": 1_000, "laakhs": 1_000, "lac": 1_000,
    "lacs": 1_000, "lack": 1_000, "lacks": 1_000, "crore": 100_000, "crores": 100_000,
    "cr": 100_000, "karod": 100_000, "karor": 100_000,
}
_SCALE_RE = r"(?:" + "|".join(sorted(_SCALES, key=len, reverse=True)) + r")"
_NUM = r"\d+(?:\.\d+)?"

_AMOUNT: Final = re.compile(
    r"(?P<cur>₹)?(?P<num>" + _NUM + r")"
    r"(?:\s*(?:to|-|se)\s*(?P<upper>" + _NUM + r"))?"
    r"\s*(?P<scale>" + _SCALE_RE + r")?\b"
    r"(?:\s+(?P<num2>" + _NUM + r")(?:\s*(?P<scale2>" + _SCALE_RE + r"))?\b)?"
    r"(?P<rupees>\s+(?:rupees?|rupaye|rupay|rupiya|rs|inr|bucks))?"
)
# Any number followed by one of these is a count or a measure, not money
# ("10 hazaar sq ft", "2 lakh km", "1000 litre").
_MEASURE: Final = re.compile(
    r"\s*(?:sq|sqft|sft|square|feet|ft|gaj|acres?|bigha|kw|kva|kwh|kilowatt|kilo watt|watt|mah"
    r"|units?|litres?|liters?|ltrs?|mbps|gbps|mb|gb|tb|km|kg|tons?|tonnes?|employees?|people"
    r"|log|users?|licen[sc]es?|seats?|shops?|dukan|branches|cars?|bhk|seater|doctors?|members?"
    r"|rooms?|staff)\b"
)
# A plain number followed by one of these is a time, a date or a duration.
_TIMED: Final = re.compile(
    r"\s*(?:years?|saal|sal|months?|mahine|days?|din|baje|pm|am|hours?|ghante|minutes?|mins?"
    r"|tarikh|st|nd|rd|th|january|february|march|april|may|june|july|august|september|october"
    r"|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\b"
)
# Any number followed by a plural noun is a count ("3000 invoices", "10k customers",
# "2 lakh followers"); these words end in s but are not counted nouns.
_PLURAL: Final = re.compile(
    r"\s*(?!(?:rupees|rupays|bucks|lakhs|laakhs|lacs|lacks|crores|thousands|plus|tops|this"
    r"|thats|whats|lets|heres|theres|ours|yours|paas|less|unless|does|always|across|minus"
    r"|pls)\b)[a-z]{3,}s\b"
)
# A plain number that names something rather than counts rupees: a phone, PIN,
# flat, order or policy number ("pin code is 411038", "flat number 1204").
_NAMED_BEFORE: Final = re.compile(
    r"\b(?:number|num|pin|pincode|code|id|otp|account|flat|plot|house|room|sector|model"
    r"|ticket|order|reference|ref|mobile|phone|whatsapp|contact)"
    r"(?:\s+(?:is|hai|no|number|code|id))*\s*$"
)
_NEAR_DIGITS_AFTER: Final = re.compile(r"\s+\d{3,}\b")
_NEAR_DIGITS_BEFORE: Final = re.compile(r"\b\d{3,}\s+$")
_MAX_PLAIN_DIGITS: Final = 7  # eight digits and more with no scale: a phone or account number
# "2000 per month" is money, "since 2015" a year.
_PER_PERIOD: Final = re.compile(
    r"\s*(?:per|a month|a year|every month|monthly|yearly|annually|mahina|mahine)\b"
)
# "3 lakh to 4 lakh", "80 thousand and 1 lakh": one range, counted as its upper bound.
_RANGE_JOIN: Final = re.compile(r"\s*(?:to|-|se|or|ya)\s*")
_BETWEEN_JOIN: Final = re.compile(r"\s*(?:and|aur)\s*")
_BETWEEN: Final = re.compile(r"\b(?:between|beech)\b")
_CLOCK_BEFORE: Final = re.compile(r"(?:\bat|\bafter|\bby|:)\s*$")

_BUDGET_CUE: Final = re.compile(
    r"\b(?:budget|can spend|could spend|(?:will|would|to) spend|spend (?:up ?to|max)|afford"
    r"|can pay|can only pay|only pay|invest|manage|can put|set aside|kept|rakh[aei]\w*|stretch"
    r"|chal jaye\w*|jayenge|jaenge"
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
# A turn whose amounts are prices: a complaint, a price quoted back or found
# elsewhere ("the other company quoted 1.5 lakh", "market mein 12 hazaar mein mil
# jata hai"), a total confirmed, a discount asked for.
_PRICE_COMPLAINT: Final = re.compile(
    r"\b(?:too much|too high|too expensive|to much|to high|to expensive|expensive|costly"
    r"|mehe?nga|zyada|jyada|out of budget|over budget|way over|you said|aapne bola|aap bol rahe"
    r"|bata rahe|is too|price is|cost is|rate is|itna kyun|kaise itna|no way|fee of|quoted?"
    r"|quotation|mil jata|mil jaata|mil raha|milta hai|discount|the total|total is|total hai)\b"
)
# An amount next to one of these is a loan, a cover, a bill or a limit, not a budget.
# Also a spend already made or running ("we currently pay 3000 a month", "pichle
# saal 6 hazaar diye the", "i paid 25000"), what the caller earns, and money
# received ("5000 ka cashback mila").
_NOT_BUDGET: Final = re.compile(
    r"\b(?:loan|cover|sum insured|bill|limit|turnover|salary|income|fee|fees|kitn[aei]"
    r"|current|currently|presently|paid|paying|spent|spending|(?:we|i|they) spend|de rahe"
    r"|de raha|de rahi|diye"
    r"|diya|bharte|bhar rahe|earn\w*|kamata|kamate|kamai|pension|sales|revenue|cashback"
    r"|refund)\b"
)
_NEAR: Final = 24
# An amount that names the loan or cover itself ("teen lakh tak ka loan", "a loan of
# 8 lakh") or a bill, salary or rent ("bill is only 800 a month") is never a
# budget, whatever cue is near.
_LOAN_AFTER: Final = re.compile(r"\s*(?:tak\s+)?(?:ka|ki|ke|of)?\s*(?:loan|cover|sum insured)\b")
_LOAN_BEFORE: Final = re.compile(
    r"\b(?:(?:loan|cover|sum insured)(?:\s+(?:of|amount|amount of|ka|ki))?"
    r"|(?:bill|salary|income|in come|turnover|rent|kiraya|kiraaya|credit limit|pension|sales"
    r"|revenue|earn|earns|earning)(?:\s+(?:is|hai|of|comes to))?"
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


def _counted(numeric: str, end: int, *, plain: bool) -> bool:
    """Whether the number ending at ``end`` counts or measures something; a plain
    number (no scale) may also be a time or a date."""
    return bool(_MEASURE.match(numeric, end) or _PLURAL.match(numeric, end)
                or (plain and _TIMED.match(numeric, end)))


def _names_something(numeric: str, m: re.Match[str]) -> bool:
    """A plain number that is a year, a phone/PIN/flat/order number or one group
    of a digit string ("98765 43210"), not an amount."""
    digits = m["num"].split(".")[0]
    if len(digits) > _MAX_PLAIN_DIGITS:
        return True
    if 1900 <= float(m["num"]) <= 2100 and not _PER_PERIOD.match(numeric, m.end()):
        return True
    return bool(_NAMED_BEFORE.search(numeric, max(0, m.start() - 30), m.start())
                or _NEAR_DIGITS_AFTER.match(numeric, m.end("num"))
                or _NEAR_DIGITS_BEFORE.search(numeric, max(0, m.start() - 12), m.start()))


def _amount(numeric: str, m: re.Match[str]) -> Amount | None:
    scale, cur, rupees = m["scale"], m["cur"], m["rupees"]
    marked = bool(cur or rupees)
    small = not scale or scale in _SMALL_SCALES
    end = m.end()
    rest = 0.0
    if m["num2"]:
        if m["scale2"] and _SCALES[m["scale2"]] < (_SCALES[scale] if scale else 1):
            rest = _value(m["num2"], m["scale2"])
        elif (not m["scale2"] and scale in _SPOKEN_REST and float(m["num2"]) < 100
              and not _counted(numeric, m.end("num2"), plain=True)):
            rest = float(m["num2"]) * _SPOKEN_REST[scale]
        else:  # a second number that is not part of this amount
            end = m.end("scale") if scale else m.end("upper") if m["upper"] else m.end("num")
    if not marked and _counted(numeric, end, plain=small):
        return None
    if small and not marked and _CLOCK_BEFORE.search(numeric, 0, m.start()):
        return None
    if not (scale or marked) and (float(m["num"]) < 1000 or _names_something(numeric, m)):
        return None
    value = _value(m["upper"] or m["num"], scale) + rest
    return Amount(round(value), m.start(), end) if value >= 1 else None


def _join_ranges(numeric: str, amounts: list[Amount]) -> list[Amount]:
    """Two amounts joined as a range ("3 lakh to 4 lakh", "between 80 thousand and
    1 lakh") become one, worth the upper bound."""
    joined: list[Amount] = []
    for amount in amounts:
        if joined:
            last = joined[-1]
            between = numeric[last.end:amount.start]
            if _RANGE_JOIN.fullmatch(between) or (
                    _BETWEEN_JOIN.fullmatch(between)
                    and _BETWEEN.search(numeric, max(0, last.start - 12), amount.end + 12)):
                joined[-1] = Amount(max(last.rupees, amount.rupees), last.start, amount.end)
                continue
        joined.append(amount)
    return joined


def find_amounts(numeric: str) -> list[Amount]:
    """Every money expression in a ``numeric`` normal form, in order."""
    amounts = [a for m in _AMOUNT.finditer(numeric) if (a := _amount(numeric, m)) is not None]
    return _join_ranges(numeric, amounts)


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

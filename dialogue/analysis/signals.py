"""The softer readings of a turn: sentiment, buying signals, authority, need.

All run on the ``plain`` normal form after the intent is known.

* ``sentiment`` in [-1, 1]: a prior per intent (interest is warm, a do-not-call
  request is cold) moved ±0.2 per strongly charged word, clamped.
* ``buying_signals``: short stable labels, only on turns that are not
  negative (objection, decline, DND, wrong person): ``ready_to_buy``,
  ``expressed_interest``, ``asked_price``, ``asked_details``, ``wants_demo``,
  ``has_budget``, ``near_timeline`` (immediate / this week / this month),
  ``decision_maker``.
* ``decision_maker``: only when stated. False for an authority objection, or on
  any turn where someone else decides or must be asked ("no, my brother decides",
  "kal call karna, tab tak wife se baat kar lunga", "wife se baat karke decide
  karunga": ``phrases.AUTHORITY_PEOPLE``, read outside the caller's own claims);
  else true for "I decide", "I'm the owner", "main khud decide karta hoon",
  "final decision mera hai", "kisi se poochne ki zaroorat nahi"
  (``phrases.DECIDER``).
* ``need``: a short phrase after "I/we need", "looking for", "… chahiye"
  (at most six words), never from a negative turn.
"""

from __future__ import annotations

import re
from typing import Final

from dialogue.analysis import phrases
from dialogue.model import Intent, Objection, Timeline

__all__ = ["buying_signals", "decision_maker", "need", "sentiment"]

_PRIOR: Final[dict[Intent, float]] = {
    Intent.INTERESTED: 0.6, Intent.AFFIRM: 0.3, Intent.ASK_PRICE: 0.2, Intent.ASK_DETAILS: 0.25,
    Intent.GREETING: 0.2, Intent.BACKCHANNEL: 0.1, Intent.CALLBACK_REQUEST: 0.0,
    Intent.BUSY: -0.1, Intent.QUESTION: 0.0, Intent.OTHER: 0.0, Intent.DENY: -0.2,
    Intent.OBJECTION: -0.4, Intent.NOT_INTERESTED: -0.5, Intent.WRONG_PERSON: -0.2,
    Intent.DO_NOT_CALL: -0.8,
}
_NEGATIVE_INTENTS: Final = frozenset(
    {Intent.OBJECTION, Intent.NOT_INTERESTED, Intent.DO_NOT_CALL, Intent.WRONG_PERSON,
     Intent.DENY}
)
_POSITIVE_WORDS: Final = re.compile(
    r"\b(?:great|good|nice|love|perfect|excellent|wow|badhiya|pasand|amazing|awesome|helpful"
    r"|useful|exactly|shandar|zabardast|mast)\b"
)
_NEGATIVE_WORDS: Final = re.compile(
    r"\b(?:fraud|scam|cheat\w*|angry|irritat\w*|pareshan|bakwas|stupid|worst|annoying|disturb"
    r"|complain\w*|bad|ganda|faltu|useless|waste|hate|nonsense)\b"
)
_READY: Final = re.compile(
    r"\b(?:lets do it|lets go ahead|(?:want|like) to (?:go ahead|buy|purchase|install|take)"
    r"|sign me up|book kar\w*|le lenge|le lunga|le lungi|process start|register me|close it"
    r"|count me in|lagwa do|start kar do)\b"
)
_INTEREST: Final = re.compile(
    r"\b(?:interested|interest hai|sounds (?:good|great)|pasand|chahiye|lena hai|what we need)\b"
)
_PRICE: Final = re.compile(r"\b(?:price|pricing|cost|rate|kitn[aei]|how much|emi|fees?|charges?)\b")
_DETAILS: Final = re.compile(r"\b(?:details?|brochure|whatsapp|email|mail|features?|catalog\w*)\b")
_DEMO: Final = re.compile(r"\bdemo\b")
_NEAR: Final = frozenset({Timeline.IMMEDIATE, Timeline.THIS_WEEK, Timeline.THIS_MONTH})

_NEED: Final = re.compile(
    r"\b(?:(?:i|we|hum|hume|mujhe) (?:need|want|require)|looking for)\s+"
    r"(?!to\b|it\b|this\b|that\b)(?P<what>[a-z0-9 ]+)"
)
_NEED_CHAHIYE: Final = re.compile(r"\b(?:mujhe|hume|humein|hamein) (?P<what>[a-z0-9 ]+?) chahiye\b")


def sentiment(plain: str, intent: Intent) -> float:
    """Polarity in [-1, 1] (see the module docstring)."""
    score = _PRIOR[intent]
    score += 0.2 * len(_POSITIVE_WORDS.findall(plain))
    score -= 0.2 * len(_NEGATIVE_WORDS.findall(plain))
    return round(max(-1.0, min(1.0, score)), 2)


def buying_signals(
    plain: str, intent: Intent, slots: dict[str, object]
) -> tuple[str, ...]:
    """Short labels for signs the caller may buy (see the module docstring)."""
    if intent in _NEGATIVE_INTENTS:
        return ()
    labels: list[str] = []
    if intent is Intent.INTERESTED and _READY.search(plain):
        labels.append("ready_to_buy")
    if intent is Intent.INTERESTED or _INTEREST.search(plain):
        labels.append("expressed_interest")
    if intent is Intent.ASK_PRICE or _PRICE.search(plain):
        labels.append("asked_price")
    if intent is Intent.ASK_DETAILS or _DETAILS.search(plain):
        labels.append("asked_details")
    if _DEMO.search(plain):
        labels.append("wants_demo")
    if "budget_inr" in slots:
        labels.append("has_budget")
    if slots.get("timeline") in _NEAR:
        labels.append("near_timeline")
    if slots.get("decision_maker") is True:
        labels.append("decision_maker")
    return tuple(labels)


def decision_maker(plain: str, objection: Objection | None) -> bool | None:
    """Whether the caller said they decide; None when they did not say."""
    # Someone else must be asked, outside the caller's own claim ("kisi se poochne
    # ki zaroorat nahi" is a claim): "wife se baat karke decide karunga" is false.
    if objection is Objection.AUTHORITY or phrases.AUTHORITY_PEOPLE.search(
            phrases.DECIDER.sub(" ", plain)):
        return False
    if phrases.DECIDER.search(plain):
        return True
    return None


def need(plain: str, intent: Intent) -> str | None:
    """What the caller says they need, as a short phrase, or None."""
    if intent in _NEGATIVE_INTENTS:
        return None
    m = _NEED.search(plain) or _NEED_CHAHIYE.search(plain)
    if m is None:
        return None
    words = m["what"].split()[:6]
    return " ".join(words) or None

"""One turn's full reading, given the classifier's probabilities.

``_settle`` makes the readings that need the slots as well as the phrases: a
budget stated as a ceiling to a quoted price (PRESENTATION onwards) is a price
objection, and the same ceiling asked for in QUALIFICATION is a plain fact; a
statement of budget that only mentions a price word ("twelve thousand a month
emi is what we can afford") is a fact, not a price question, and so is any
amount stated in DISCOVERY or QUALIFICATION ("my current emi is 14000"); a
timing objection that names a timeline in QUALIFICATION ("abhi koi plan nahi")
answers "when?".

``analyze`` (the package entry point) is ``read`` with the shipped classifier and
calibration. The trainer calls ``read`` with cross-validated probabilities and
the identity calibration to obtain the raw scores it calibrates, so the two can
never drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Final

from dialogue.analysis import intents, money, phrases, signals, when
from dialogue.analysis.classifier import IntentProbabilities
from dialogue.analysis.confidence import RULE_TRUSTED, combine, score
from dialogue.analysis.intents import IntentMatch
from dialogue.analysis.lexicon import NormalText
from dialogue.model import Analysis, Intent, Objection, Stage

__all__ = ["read"]

_NO_BUDGET_INTENTS: Final = frozenset({Intent.DO_NOT_CALL, Intent.WRONG_PERSON})
# Turns about the call itself, where a time phrase is never a buying plan.
_NO_TIMELINE_INTENTS: Final = frozenset({
    Intent.CALLBACK_REQUEST, Intent.BUSY, Intent.DO_NOT_CALL, Intent.WRONG_PERSON,
    Intent.GREETING, Intent.BACKCHANNEL,
})
_UNRESOLVED_CALLBACK_CONFIDENCE: Final = 0.6
_UNREAD_CONFIDENCE: Final = 0.6
_ANSWERS_WHEN: Final = frozenset({Intent.AFFIRM, Intent.OTHER, Intent.BACKCHANNEL})
_TIME_ANSWER: Final = IntentMatch(Intent.CALLBACK_REQUEST, None, 0.85)
# A turn no rule family claimed that states a fact the slots can hold (an amount,
# a timeline, who decides, a need) answers an open question: ``other``.
_PLAIN_FACT: Final = IntentMatch(Intent.OTHER, None, 0.8)
# Stages where the bot has named a price or asked for the sale: a budget stated as
# a ceiling there ("our budget is only 2 lakh") says the offer costs too much.
_PRICED_STAGES: Final = frozenset({
    Stage.PRESENTATION, Stage.TRIAL_CLOSE, Stage.OBJECTION_HANDLING, Stage.CLOSING,
})
_OVER_BUDGET: Final = IntentMatch(Intent.OBJECTION, Objection.PRICE, 0.8)
# Words that find the offer dear, beyond stating a budget's ceiling.
_COMPLAINT: Final = re.compile(
    r"\b(?:too|expensive|costly|mehe?nga|zyada hai|jyada hai|bahut|out of|over|way|double"
    r"|afford)\b"
)
_STATEMENT_INTENTS: Final = frozenset({Intent.ASK_PRICE, Intent.ASK_DETAILS})
_ASKED_ABOUT_CALLER: Final = frozenset({Stage.DISCOVERY, Stage.QUALIFICATION})
_RELATIVE_WHAT: Final = re.compile(r"\b(?:is|thats|exactly) what\b")
_REQUEST: Final = re.compile(
    r"\b(?:send|bhej\w*|share|tell|batao|bataiye|show|dikha\w*|explain|samjha\w*)\b"
)


def _states_fact(normal: NormalText, has_timeline: bool) -> bool:
    return (has_timeline or bool(money.find_amounts(normal.numeric))
            or signals.decision_maker(normal.plain, None) is not None
            or signals.need(normal.plain, Intent.OTHER) is not None)


def _states_budget(normal: NormalText, rule: IntentMatch, stage: Stage | None) -> bool:
    """A price or product word in a statement of budget, not a question: "twelve
    thousand a month emi is what we can afford", "₹30,000 for the whole website";
    where the bot asked about the caller, in a statement of any amount ("about 8
    thousand a month for the premium", "my current emi is 14000")."""
    if rule.intent not in _STATEMENT_INTENTS or phrases.QUESTION_START.search(normal.plain):
        return False
    if phrases.ASKS.search(_RELATIVE_WHAT.sub(" ", normal.plain)) or _REQUEST.search(normal.plain):
        return False
    if rule.intent is Intent.ASK_DETAILS and stage is not Stage.QUALIFICATION:
        return False
    if money.extract_budget(normal.numeric, asks_price=True) is not None:
        return True
    return stage in _ASKED_ABOUT_CALLER and bool(money.find_amounts(normal.numeric))


def _settle(rule: IntentMatch, normal: NormalText, stage: Stage | None,
            has_timeline: bool) -> IntentMatch:
    """Readings the phrase rules cannot make alone, from the slots the turn states."""
    unclaimed = rule.intent is Intent.OTHER and rule.confidence < RULE_TRUSTED
    if unclaimed or _states_budget(normal, rule, stage):
        if stage in _PRICED_STAGES and money.budget_ceiling(normal.numeric):
            return _OVER_BUDGET
        if not unclaimed or _states_fact(normal, has_timeline):
            return _PLAIN_FACT
    # Asked for a budget, "ek lakh se zyada nahi" answers it: a ceiling, no complaint.
    if (stage is Stage.QUALIFICATION and rule.objection is Objection.PRICE
            and money.budget_ceiling(normal.numeric)
            and not _COMPLAINT.search(normal.plain)):
        return _PLAIN_FACT
    # Asked when they plan to buy, "abhi koi plan nahi" answers it.
    if (stage is Stage.QUALIFICATION and rule.objection is Objection.TIMING
            and has_timeline):
        return _PLAIN_FACT
    return rule


def read(
    normal: NormalText,
    stage: Stage | None,
    now: datetime | None,
    probs: IntentProbabilities,
    calibrate: Callable[[float], float],
) -> Analysis:
    """Intent, objection, slots and confidence of one normalised turn."""
    timeline = when.extract_timeline(normal.plain)
    rule = intents.classify(normal.plain, stage, has_timeline=timeline is not None)
    rule = _settle(rule, normal, stage, timeline is not None)
    intent, objection, raw = combine(rule, probs)

    slots: dict[str, object] = {}
    if intent not in _NO_BUDGET_INTENTS:
        budget = money.extract_budget(normal.numeric, asks_price=intent is Intent.ASK_PRICE)
        if budget is not None:
            slots["budget_inr"] = budget
    # In FOLLOW_UP_SCHEDULED the bot has asked when to call: a bare time answers it.
    answers_when = stage is Stage.FOLLOW_UP_SCHEDULED and intent in _ANSWERS_WHEN
    # A hedge or a turn no rule read goes to the LLM by design, however sure the
    # classifier is of its guess ("pata nahi", "the mango trees are flowering").
    cap = _UNREAD_CONFIDENCE if rule.hedge or rule.confidence <= intents.UNREAD else 1.0
    if intent is Intent.CALLBACK_REQUEST or answers_when:
        callback_at = None if now is None else when.extract_callback_at(normal.numeric, now)
        if callback_at is not None:
            slots["callback_at"] = callback_at
            if answers_when:
                intent, objection = Intent.CALLBACK_REQUEST, None
                raw = score(intent, _TIME_ANSWER, probs)
        elif intent is Intent.CALLBACK_REQUEST and now is None:
            cap = _UNRESOLVED_CALLBACK_CONFIDENCE  # cannot resolve "kal" without now
    if intent not in _NO_TIMELINE_INTENTS and timeline is not None:
        slots["timeline"] = timeline
    decides = signals.decision_maker(normal.plain, objection)
    if decides is not None:
        slots["decision_maker"] = decides
    needed = signals.need(normal.plain, intent)
    if needed is not None:
        slots["need"] = needed

    return Analysis(
        intent=intent,
        objection=objection,
        sentiment=signals.sentiment(normal.plain, intent),
        buying_signals=signals.buying_signals(normal.plain, intent, slots),
        slots=slots,
        confidence=min(cap, calibrate(raw)),
    )

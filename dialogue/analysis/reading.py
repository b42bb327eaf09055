"""One turn's full reading, given the classifier's probabilities.

``analyze`` (the package entry point) is ``read`` with the shipped classifier and
calibration. The trainer calls ``read`` with cross-validated probabilities and
the identity calibration to obtain the raw scores it calibrates, so the two can
never drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from dialogue.analysis import intents, money, signals, when
from dialogue.analysis.classifier import IntentProbabilities
from dialogue.analysis.confidence import RULE_TRUSTED, combine, score
from dialogue.analysis.intents import IntentMatch
from dialogue.analysis.lexicon import NormalText
from dialogue.model import Analysis, Intent, Stage

__all__ = ["read"]

_NO_BUDGET_INTENTS: Final = frozenset({Intent.DO_NOT_CALL, Intent.WRONG_PERSON})
# Turns about the call itself, where a time phrase is never a buying plan.
_NO_TIMELINE_INTENTS: Final = frozenset({
    Intent.CALLBACK_REQUEST, Intent.BUSY, Intent.DO_NOT_CALL, Intent.WRONG_PERSON,
    Intent.GREETING, Intent.BACKCHANNEL,
})
_UNRESOLVED_CALLBACK_CONFIDENCE: Final = 0.6
_ANSWERS_WHEN: Final = frozenset({Intent.AFFIRM, Intent.OTHER, Intent.BACKCHANNEL})
_TIME_ANSWER: Final = IntentMatch(Intent.CALLBACK_REQUEST, None, 0.85)
# A turn no rule family claimed that states a fact the slots can hold (an amount,
# a timeline, who decides, a need) answers an open question: ``other``.
_PLAIN_FACT: Final = IntentMatch(Intent.OTHER, None, 0.8)


def _states_fact(normal: NormalText, has_timeline: bool) -> bool:
    return (has_timeline or bool(money.find_amounts(normal.numeric))
            or signals.decision_maker(normal.plain, None) is not None
            or signals.need(normal.plain, Intent.OTHER) is not None)


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
    if (rule.intent is Intent.OTHER and rule.confidence < RULE_TRUSTED
            and _states_fact(normal, timeline is not None)):
        rule = _PLAIN_FACT
    intent, objection, raw = combine(rule, probs)

    slots: dict[str, object] = {}
    if intent not in _NO_BUDGET_INTENTS:
        budget = money.extract_budget(normal.numeric, asks_price=intent is Intent.ASK_PRICE)
        if budget is not None:
            slots["budget_inr"] = budget
    # In FOLLOW_UP_SCHEDULED the bot has asked when to call: a bare time answers it.
    answers_when = stage is Stage.FOLLOW_UP_SCHEDULED and intent in _ANSWERS_WHEN
    cap = 1.0
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

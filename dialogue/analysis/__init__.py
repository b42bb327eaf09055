"""Rule-based reading of one caller turn: ``analyze(text, stage, now)``.

Deterministic and sub-millisecond: every pattern is compiled at import, the
text is normalised once (``lexicon``), then the rule families run in turn:
intent and objection (``intents``), money (``money``), times (``when``),
sentiment, buying signals, authority and need (``signals``). The slower LLM
reading and its merge rules live in ``llm_refine``.

Slots are filled only when stated:

* ``budget_inr`` — from any turn except a do-not-call or wrong-person turn.
* ``callback_at`` — only in a ``callback_request`` turn (in FOLLOW_UP_SCHEDULED,
  where the bot has asked when to call, a yes/other turn that names a time —
  "theek hai kal subah 10 baje" — is read as one), and only when ``now``
  is given: a relative time ("kal", "in 20 minutes") cannot be resolved
  without it, so with ``now=None`` the key is absent (and confidence drops so
  the engine can ask again or let the LLM read it).
* ``timeline`` — from any turn that is not a callback request (there, the time
  phrases are about the call, not the purchase).
* ``decision_maker``, ``need`` — see ``signals``.

``confidence`` is the winning rule's certainty: ~0.9 for explicit phrases, 0.7–
0.85 for yes/no/acknowledgement readings, 0.6 for a bare question opener or a
goodbye, 0.4 for a hedge ("not sure") or a turn no rule recognised — below
``llm_refine.LOW_CONFIDENCE`` (0.5) the LLM's intent is preferred.
"""

from __future__ import annotations

from datetime import datetime

from dialogue.analysis import intents, money, signals, when
from dialogue.analysis.lexicon import normalize
from dialogue.model import Analysis, Intent, Stage

__all__ = ["analyze"]

_NO_BUDGET_INTENTS = frozenset({Intent.DO_NOT_CALL, Intent.WRONG_PERSON})
_UNRESOLVED_CALLBACK_CONFIDENCE = 0.6
_ANSWERS_WHEN = frozenset({Intent.AFFIRM, Intent.OTHER, Intent.BACKCHANNEL})


def analyze(text: str, stage: Stage | None = None, now: datetime | None = None) -> Analysis:
    """Read one caller turn; see the package docstring for the rules.

    ``now`` must be timezone-aware when given (any zone; it is converted to
    Asia/Kolkata).
    """
    normal = normalize(text)
    timeline = when.extract_timeline(normal.plain)
    match = intents.classify(normal.plain, stage, has_timeline=timeline is not None)
    intent, confidence = match.intent, match.confidence

    slots: dict[str, object] = {}
    if intent not in _NO_BUDGET_INTENTS:
        budget = money.extract_budget(normal.numeric, asks_price=intent is Intent.ASK_PRICE)
        if budget is not None:
            slots["budget_inr"] = budget
    # In FOLLOW_UP_SCHEDULED the bot has asked when to call: a bare time answers it.
    answers_when = stage is Stage.FOLLOW_UP_SCHEDULED and intent in _ANSWERS_WHEN
    if intent is Intent.CALLBACK_REQUEST or answers_when:
        callback_at = None if now is None else when.extract_callback_at(normal.numeric, now)
        if callback_at is not None:
            slots["callback_at"] = callback_at
            if answers_when:
                intent, confidence = Intent.CALLBACK_REQUEST, 0.85
        elif intent is Intent.CALLBACK_REQUEST and now is None:
            confidence = min(confidence, _UNRESOLVED_CALLBACK_CONFIDENCE)
    if intent is not Intent.CALLBACK_REQUEST and timeline is not None:
        slots["timeline"] = timeline
    decides = signals.decision_maker(normal.plain, match.objection)
    if decides is not None:
        slots["decision_maker"] = decides
    needed = signals.need(normal.plain, intent)
    if needed is not None:
        slots["need"] = needed
    if intent is Intent.OTHER and slots:
        confidence = max(confidence, 0.7)  # a plain fact answering an open question

    return Analysis(
        intent=intent,
        objection=match.objection,
        sentiment=signals.sentiment(normal.plain, intent),
        buying_signals=signals.buying_signals(normal.plain, intent, slots),
        slots=slots,
        confidence=confidence,
    )

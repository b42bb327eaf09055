"""The slow LLM reading of a turn: its JSON schema, its prompt, and the merge.

The rule-based ``analyze`` answers at once; an LLM call (``complete_json`` in
``providers/llm``) may run beside the turn and refine it. This module is pure:
it builds the request and merges the reply; the I/O lives elsewhere.

Merge rules (``merge_llm_analysis``), field by field:

* ``intent`` / ``objection`` — the rule reading stands unless its confidence is
  below ``LLM_BELOW_CONFIDENCE`` (``dialogue.analysis.confidence``); then a valid LLM
  intent replaces it, with the
  LLM's objection (kept only when the intent is ``objection``) and the LLM's
  confidence (default 0.6, capped at 0.9).
* ``sentiment`` — the LLM's value when it is a number in [-1, 1] (it reads tone
  better than a word list), else the rule's.
* ``buying_signals`` — union, rule labels first; LLM labels must be short
  snake_case words (≤ 32 chars, at most 8 in total).
* ``slots`` — a value the rules extracted always wins (explicit amounts and
  times are exact; the LLM may round or mis-resolve them). The LLM only fills
  absent keys, each validated: ``budget_inr`` a whole number of rupees in
  [1, 10¹⁰]; ``timeline`` a ``Timeline`` value; ``decision_maker`` a bool;
  ``need`` non-empty text ≤ 80 chars; ``callback_at`` an ISO 8601 datetime
  (no offset = Asia/Kolkata), not before ``now`` minus one minute, at most 180
  days ahead, and only when the merged intent is ``callback_request``.
* Anything malformed — a non-mapping reply, unknown enum values, wrong types,
  booleans posing as numbers — is dropped field by field; merging never raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from dialogue.analysis.confidence import LLM_BELOW_CONFIDENCE
from dialogue.analysis.when import IST
from dialogue.model import Analysis, Intent, Objection, Stage, Timeline

__all__ = [
    "ANALYSIS_SCHEMA",
    "RESPONSE_FORMAT",
    "build_analysis_messages",
    "merge_llm_analysis",
]

_DEFAULT_LLM_CONFIDENCE: Final = 0.6
_MAX_LLM_CONFIDENCE: Final = 0.9
_MAX_BUDGET: Final = 10**10
_MAX_CALLBACK_AHEAD: Final = timedelta(days=180)
_SIGNAL: Final = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MAX_SIGNALS: Final = 8
_MAX_NEED: Final = 80

_E = TypeVar("_E", Intent, Objection, Timeline)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


ANALYSIS_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "intent", "objection", "sentiment", "buying_signals", "budget_inr", "timeline",
        "callback_at", "decision_maker", "need", "confidence",
    ],
    "properties": {
        "intent": {"type": "string", "enum": [i.value for i in Intent]},
        "objection": {"type": ["string", "null"], "enum": [*(o.value for o in Objection), None]},
        "sentiment": {"type": "number", "description": "-1 hostile … 1 delighted"},
        "buying_signals": {"type": "array", "items": {"type": "string"},
                           "description": "short snake_case labels"},
        "budget_inr": _nullable({"type": "integer",
                                 "description": "rupees the caller has or can spend"}),
        "timeline": {"type": ["string", "null"], "enum": [*(t.value for t in Timeline), None]},
        "callback_at": _nullable({"type": "string",
                                  "description": "ISO 8601 with +05:30 offset"}),
        "decision_maker": _nullable({"type": "boolean"}),
        "need": _nullable({"type": "string"}),
        "confidence": {"type": "number", "description": "0 … 1"},
    },
}

RESPONSE_FORMAT: Final[dict[str, Any]] = {
    "type": "json_schema",
    "json_schema": {"name": "caller_turn_analysis", "strict": True, "schema": ANALYSIS_SCHEMA},
}

_SYSTEM: Final = """\
You label one caller turn from an Indian outbound sales call (English, Hinglish or noisy \
speech-to-text). Reply with JSON matching the schema. Definitions:
- intent: affirm/deny answer the bot's yes/no or qualifying question; interested wants the \
offer; not_interested declines without a reason; do_not_call asks to stop calling or remove \
the number (wins over a decline); objection resists with a reason; busy cannot talk now; \
callback_request asks to be called later; ask_price cost/rate/EMI; ask_details \
info/brochure/WhatsApp/email; question other questions (who is this, are you a robot); \
wrong_person; greeting an opener only; backchannel a bare acknowledgement while the bot \
presents; other anything else (hold on, line problems, language, plain facts).
- objection (only with intent objection): price, timing, competitor, authority (someone \
else decides), trust (fraud, wants proof), no_need.
- budget_inr: only an amount the caller has or can spend, in rupees (lakh = 100000, crore = \
10000000); never a price they quote back or a count. null if not stated.
- callback_at: when to call back, resolved against the current time given below: morning \
10:00, afternoon 14:00, evening 18:00, night 20:00, a bare hour 1-7 is p.m., a day without a \
time is 10:00, next week is next Monday. null if no time was said.
- timeline: when they plan to buy, null if not said. decision_maker: only if stated.
- need: a few words, null if not stated. Set null for anything the caller did not say."""


def build_analysis_messages(
    text: str,
    *,
    stage: Stage | None,
    now: datetime,
    history: Sequence[tuple[str, str]] = (),
) -> list[dict[str, str]]:
    """Chat messages asking the LLM to label ``text`` (schema: ``RESPONSE_FORMAT``).

    ``history`` holds the last few (role, text) pairs, role "bot" or "caller",
    oldest first; the bot's last line tells the model what the caller answers.
    """
    local = now.astimezone(IST)
    lines = [
        f"Current time: {local.isoformat(timespec='minutes')} ({local:%A}), Asia/Kolkata.",
        f"Call stage: {stage.value if stage is not None else 'unknown'}.",
    ]
    if history:
        lines.append("Recent conversation:")
        lines.extend(f"{role}: {said}" for role, said in history)
    lines.append(f"Caller turn to label: {text}")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _enum(kind: type[_E], value: object) -> _E | None:
    if not isinstance(value, str):
        return None
    try:
        return kind(value)
    except ValueError:
        return None


def _budget(value: object) -> int | None:
    number = _number(value)
    if number is None or number != int(number) or not 1 <= number <= _MAX_BUDGET:
        return None
    return int(number)


def _callback_at(value: object, now: datetime) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    parsed = parsed.replace(tzinfo=IST) if parsed.tzinfo is None else parsed.astimezone(IST)
    if not now - timedelta(minutes=1) <= parsed <= now + _MAX_CALLBACK_AHEAD:
        return None
    return parsed


def _signals(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and _SIGNAL.match(v))


def _llm_slots(llm: Mapping[str, object], now: datetime) -> dict[str, object]:
    slots: dict[str, object] = {}
    budget = _budget(llm.get("budget_inr"))
    if budget is not None:
        slots["budget_inr"] = budget
    timeline = _enum(Timeline, llm.get("timeline"))
    if timeline is not None:
        slots["timeline"] = timeline
    callback_at = _callback_at(llm.get("callback_at"), now)
    if callback_at is not None:
        slots["callback_at"] = callback_at
    decides = llm.get("decision_maker")
    if isinstance(decides, bool):
        slots["decision_maker"] = decides
    need = llm.get("need")
    if isinstance(need, str) and need.strip() and len(need) <= _MAX_NEED:
        slots["need"] = need.strip()
    return slots


def merge_llm_analysis(rule: Analysis, llm_json: object, now: datetime) -> Analysis:
    """Merge an LLM reading into the rule reading (rules in the module docstring).

    ``llm_json`` is whatever the LLM client decoded; anything but a mapping
    leaves ``rule`` unchanged. ``now`` must be timezone-aware.
    """
    if not isinstance(llm_json, Mapping):
        return rule
    intent, objection, confidence = rule.intent, rule.objection, rule.confidence
    llm_intent = _enum(Intent, llm_json.get("intent"))
    if llm_intent is not None and rule.confidence < LLM_BELOW_CONFIDENCE:
        intent = llm_intent
        objection = (
            _enum(Objection, llm_json.get("objection")) if intent is Intent.OBJECTION else None
        )
        llm_confidence = _number(llm_json.get("confidence"))
        confidence = (
            _DEFAULT_LLM_CONFIDENCE
            if llm_confidence is None or not 0.0 <= llm_confidence <= 1.0
            else min(llm_confidence, _MAX_LLM_CONFIDENCE)
        )
    llm_sentiment = _number(llm_json.get("sentiment"))
    sentiment = (
        llm_sentiment if llm_sentiment is not None and -1.0 <= llm_sentiment <= 1.0
        else rule.sentiment
    )
    signals = list(rule.buying_signals)
    for label in _signals(llm_json.get("buying_signals")):
        if label not in signals and len(signals) < _MAX_SIGNALS:
            signals.append(label)
    slots = dict(rule.slots)
    for key, value in _llm_slots(llm_json, now).items():
        if key == "callback_at" and intent is not Intent.CALLBACK_REQUEST:
            continue
        slots.setdefault(key, value)
    return Analysis(
        intent=intent,
        objection=objection,
        sentiment=sentiment,
        buying_signals=tuple(signals),
        slots=slots,
        confidence=confidence,
    )

"""The LLM reading: schema, prompt, and the per-field merge rules."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dialogue import analyze, load_playbook
from dialogue.analysis.llm_refine import (
    ANALYSIS_SCHEMA,
    LLM_BELOW_CONFIDENCE,
    RESPONSE_FORMAT,
    build_analysis_messages,
    merge_llm_analysis,
)
from dialogue.model import Analysis, Intent, Objection, Stage, Timeline
from dialogue.state import CallState, new_call_state, refine_slots

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 24, 15, 30, tzinfo=IST)


def llm(**overrides: object) -> dict[str, Any]:
    """A complete, valid LLM reply (all nulls) with some fields set."""
    reply: dict[str, Any] = {
        "intent": "other", "objection": None, "sentiment": 0.0, "buying_signals": [],
        "budget_inr": None, "timeline": None, "callback_at": None, "decision_maker": None,
        "need": None, "confidence": 0.8,
    }
    reply.update(overrides)
    return reply


def test_schema_is_strict_and_matches_the_vocabulary() -> None:
    props = ANALYSIS_SCHEMA["properties"]
    assert ANALYSIS_SCHEMA["additionalProperties"] is False
    assert sorted(ANALYSIS_SCHEMA["required"]) == sorted(props)  # strict mode: all required
    assert props["intent"]["enum"] == [i.value for i in Intent]
    assert set(props["objection"]["enum"]) == {o.value for o in Objection} | {None}
    assert set(props["timeline"]["enum"]) == {t.value for t in Timeline} | {None}
    assert RESPONSE_FORMAT["type"] == "json_schema"
    assert RESPONSE_FORMAT["json_schema"]["strict"] is True
    assert RESPONSE_FORMAT["json_schema"]["schema"] is ANALYSIS_SCHEMA
    json.dumps(RESPONSE_FORMAT)  # serialisable as a request body


def test_messages_carry_time_stage_history_and_turn() -> None:
    messages = build_analysis_messages(
        "kal shaam ko", stage=Stage.CLOSING, now=NOW,
        history=[("bot", "When should I call you back?")],
    )
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "2026-11-24T15:30+05:30 (Tuesday)" in user
    assert "CLOSING" in user
    assert "bot: When should I call you back?" in user
    assert user.endswith("Caller turn to label: kal shaam ko")
    assert "budget_inr" in messages[0]["content"]


def test_rule_values_win_and_llm_fills_absent_slots() -> None:
    rule = analyze("mera budget 5 lakh hai", Stage.QUALIFICATION)
    merged = merge_llm_analysis(
        rule, llm(budget_inr=450000, timeline="next_month", decision_maker=True,
                  need="solar for a 3 bhk"), NOW,
    )
    assert merged.slots["budget_inr"] == 500000  # the rule's explicit amount
    assert merged.slots["timeline"] is Timeline.NEXT_MONTH
    assert merged.slots["decision_maker"] is True
    assert merged.slots["need"] == "solar for a 3 bhk"


def test_confident_rule_intent_is_kept() -> None:
    rule = analyze("dont call me again")
    merged = merge_llm_analysis(rule, llm(intent="not_interested", confidence=0.99), NOW)
    assert merged.intent is Intent.DO_NOT_CALL
    assert merged.confidence == rule.confidence


def test_unsure_rule_intent_is_replaced_with_objection() -> None:
    rule = analyze("the mango trees are flowering early", Stage.DISCOVERY)
    assert rule.confidence < LLM_BELOW_CONFIDENCE
    merged = merge_llm_analysis(
        rule, llm(intent="objection", objection="timing", confidence=0.95), NOW
    )
    assert (merged.intent, merged.objection) == (Intent.OBJECTION, Objection.TIMING)
    assert merged.confidence == 0.9  # capped


def test_llm_objection_dropped_when_intent_is_not_objection() -> None:
    rule = Analysis(intent=Intent.OTHER, confidence=0.3)
    merged = merge_llm_analysis(rule, llm(intent="busy", objection="price"), NOW)
    assert (merged.intent, merged.objection) == (Intent.BUSY, None)


def test_callback_at_only_for_callback_requests_and_never_in_the_past() -> None:
    rule = Analysis(intent=Intent.CALLBACK_REQUEST, confidence=0.9)
    merged = merge_llm_analysis(rule, llm(callback_at="2026-11-25T18:00:00+05:30"), NOW)
    assert merged.slots["callback_at"] == datetime(2026, 11, 25, 18, 0, tzinfo=IST)
    naive = merge_llm_analysis(rule, llm(callback_at="2026-11-25T18:00"), NOW)
    assert naive.slots["callback_at"] == datetime(2026, 11, 25, 18, 0, tzinfo=IST)
    past = merge_llm_analysis(rule, llm(callback_at="2026-11-23T18:00:00+05:30"), NOW)
    assert "callback_at" not in past.slots
    far = merge_llm_analysis(rule, llm(callback_at="2028-01-01T10:00:00+05:30"), NOW)
    assert "callback_at" not in far.slots
    other = Analysis(intent=Intent.AFFIRM, confidence=0.9)
    assert "callback_at" not in merge_llm_analysis(
        other, llm(callback_at="2026-11-25T18:00:00+05:30"), NOW
    ).slots


@pytest.mark.parametrize(
    "bad",
    [
        None, "not json", [1, 2], 42,
        llm(intent="maybe", objection="ugly", sentiment=7, buying_signals="lots",
            budget_inr=True, timeline="someday", callback_at="tomorrow-ish",
            decision_maker="yes", need="", confidence="high"),
        llm(budget_inr=12.5, sentiment=float("nan"), buying_signals=[1, "Has Budget!", None]),
        llm(budget_inr=-5, need="x" * 500, callback_at=12345, sentiment="0.5", confidence=1.5),
        {"unexpected": "keys only"},
    ],
)
def test_bad_llm_values_are_dropped_never_raise(bad: object) -> None:
    rule = Analysis(intent=Intent.OTHER, sentiment=-0.2, buying_signals=("asked_price",),
                    slots={"timeline": Timeline.THIS_MONTH}, confidence=0.3)
    merged = merge_llm_analysis(rule, bad, NOW)
    assert merged.intent is Intent.OTHER
    assert merged.sentiment == -0.2
    assert merged.buying_signals == ("asked_price",)
    assert merged.slots == {"timeline": Timeline.THIS_MONTH}


def test_signals_are_merged_as_a_union_and_sentiment_from_llm() -> None:
    rule = analyze("kitna hai", Stage.PRESENTATION)
    merged = merge_llm_analysis(
        rule, llm(sentiment=0.4, buying_signals=["asked_price", "compares_vendors"]), NOW
    )
    assert merged.buying_signals == (*rule.buying_signals, "compares_vendors")
    assert merged.sentiment == 0.4


# -- into the call's state, after the decision (dialogue.state.refine_slots) ----------


def _state(stage: Stage, **fields: Any) -> CallState:
    state = new_call_state(load_playbook(), {"name": "Rahul"}, NOW)
    return replace(state, stage=stage, **fields)


def test_refine_slots_adds_what_the_state_lacks_and_never_replaces_a_value() -> None:
    rule = analyze("maybe the price of a scooter", Stage.QUALIFICATION, NOW)
    refined = merge_llm_analysis(rule, llm(budget_inr=80000, timeline="this_month",
                                          decision_maker=True), NOW)
    state = _state(Stage.QUALIFICATION, slots={"decision_maker": False})
    after = refine_slots(state, refined)
    assert dict(after.slots) == {"decision_maker": False, "budget_inr": 80000,
                                 "timeline": Timeline.THIS_MONTH}
    assert after.stage is Stage.QUALIFICATION
    assert refine_slots(after, refined) is after  # nothing new: the same state


def test_refine_slots_takes_a_callback_time_only_while_one_is_awaited() -> None:
    rule = analyze("uh, after office", Stage.FOLLOW_UP_SCHEDULED, NOW)
    at = "2026-11-25T18:30:00+05:30"
    refined = merge_llm_analysis(rule, llm(intent="callback_request", callback_at=at), NOW)
    waiting = refine_slots(_state(Stage.FOLLOW_UP_SCHEDULED), refined)
    assert waiting.callback_at == datetime(2026, 11, 25, 18, 30, tzinfo=IST)
    assert waiting.slots["callback_at"] == waiting.callback_at
    confirmed = datetime(2026, 11, 25, 18, 0, tzinfo=IST)  # said aloud already
    kept = refine_slots(_state(Stage.FOLLOW_UP_SCHEDULED, callback_at=confirmed), refined)
    assert kept.callback_at == confirmed
    elsewhere = refine_slots(_state(Stage.DISCOVERY), refined)
    assert elsewhere.callback_at is None
    assert "callback_at" not in elsewhere.slots

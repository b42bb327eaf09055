"""The vocabulary shared by analysis and the state machine.

These names and values are the product's contract (they appear in Redis outcomes
and CRM exports): change them only with a schema version bump.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypedDict


class Stage(StrEnum):
    INTRO = "INTRO"
    DISCOVERY = "DISCOVERY"
    QUALIFICATION = "QUALIFICATION"
    PRESENTATION = "PRESENTATION"
    TRIAL_CLOSE = "TRIAL_CLOSE"
    CLOSING = "CLOSING"
    OBJECTION_HANDLING = "OBJECTION_HANDLING"
    FOLLOW_UP_SCHEDULED = "FOLLOW_UP_SCHEDULED"
    DEAL_CLOSED = "DEAL_CLOSED"
    DEAD_END = "DEAD_END"
    ENDED = "ENDED"


class Intent(StrEnum):
    AFFIRM = "affirm"
    DENY = "deny"
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"
    ASK_PRICE = "ask_price"
    ASK_DETAILS = "ask_details"
    CALLBACK_REQUEST = "callback_request"
    BUSY = "busy"
    OBJECTION = "objection"
    DO_NOT_CALL = "do_not_call"
    WRONG_PERSON = "wrong_person"
    GREETING = "greeting"
    QUESTION = "question"
    BACKCHANNEL = "backchannel"
    OTHER = "other"


class Objection(StrEnum):
    PRICE = "price"
    TIMING = "timing"
    COMPETITOR = "competitor"
    AUTHORITY = "authority"
    TRUST = "trust"
    NO_NEED = "no_need"


class Timeline(StrEnum):
    IMMEDIATE = "immediate"
    THIS_WEEK = "this_week"
    THIS_MONTH = "this_month"
    NEXT_MONTH = "next_month"
    THIS_QUARTER = "this_quarter"
    NEXT_QUARTER = "next_quarter"
    THIS_YEAR = "this_year"
    NO_PLAN = "no_plan"


class Slots(TypedDict, total=False):
    """What the caller stated. A key is absent when it was not stated."""

    budget_inr: int
    timeline: Timeline
    callback_at: datetime  # timezone-aware, Asia/Kolkata
    decision_maker: bool
    need: str


@dataclass(frozen=True, slots=True)
class Analysis:
    """The rule-based reading of one caller turn (see ``dialogue.analyze``)."""

    intent: Intent
    objection: Objection | None = None
    sentiment: float = 0.0  # [-1, 1]
    buying_signals: tuple[str, ...] = ()
    slots: Mapping[str, object] = field(default_factory=dict)  # keys/values as in Slots
    confidence: float = 0.0  # [0, 1]

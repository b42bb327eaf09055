"""What a call leaves in Redis: the record types (serialized by ``codec.py``).

Money is integer micro-dollars (no float drift in campaign totals). Phone
numbers are stored masked (``server.redact.mask_phone``: ``******1234``): a
snapshot refuses a ``caller`` field that shows more than its last 4 digits.
Times are timezone-aware datetimes.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from dialogue.cost import Usage
from dialogue.model import Slots, Stage
from server.redact import mask_phone

__all__ = [
    "LATENCY_MARKS",
    "Delivery",
    "LeadContext",
    "Outcome",
    "Role",
    "SessionSnapshot",
    "TranscriptEntry",
    "TurnLatency",
    "mask_phone",
]

#: The per-turn stage timestamps of DESIGN.md §6, in pipeline order.
LATENCY_MARKS: tuple[str, ...] = (
    "speech_end", "turn_final", "decided", "llm_first_token", "first_sentence",
    "tts_request", "tts_first_audio", "first_media_sent", "first_mark_played",
)


class Role(StrEnum):
    CALLER = "caller"
    BOT = "bot"


class Delivery(StrEnum):
    """How much of a bot line the caller heard (bot entries only)."""

    FULL = "full"
    CUT = "cut"  # barge-in: ``heard_text`` holds what the marks say was played


@dataclass(frozen=True, slots=True)
class LeadContext:
    """Who we are calling: the call's custom parameters, enriched from ``lead:{id}``.

    ``params`` keeps every custom parameter as received (values are strings; a
    bare key has value ``""``). The named fields come from the CRM's hash when
    one was found (``enriched``), else are ``None``.
    """

    params: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    company: str | None = None
    product_interest: str | None = None
    language: str | None = None
    enriched: bool = False

    @property
    def lead_id(self) -> str | None:
        return self.params.get("lead_id") or None

    @property
    def campaign_id(self) -> str | None:
        return self.params.get("campaign_id") or None


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """The latest state of one live call (``session:{call_sid}``); each write replaces it."""

    call_sid: str
    stream_sid: str
    caller: str  # masked, see mask_phone
    started_at: datetime
    lead: LeadContext = field(default_factory=LeadContext)
    playbook_id: str = ""
    stage: Stage = Stage.INTRO
    slots: Slots = field(default_factory=lambda: Slots())
    objections: Mapping[str, int] = field(default_factory=dict)  # Objection value → count
    do_not_call: bool = False
    last_mark: str | None = None
    usage: Usage = field(default_factory=Usage)
    turns: int = 0

    def __post_init__(self) -> None:
        if sum(c.isdigit() for c in self.caller) > 4:
            raise ValueError("SessionSnapshot.caller must be masked (use mask_phone)")


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One utterance. ``audio_time`` is seconds since the call's audio began."""

    speaker: Role
    text: str
    audio_time: float
    wall_time: datetime
    delivery: Delivery | None = None  # bot only
    heard_text: str | None = None  # bot only, when cut


@dataclass(frozen=True, slots=True)
class TurnLatency:
    """The stage timestamps (trio clock seconds) of one turn; missing stages are absent."""

    turn: int
    marks: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended: one entry on ``calls:outcomes`` and into campaign stats."""

    call_sid: str
    stream_sid: str
    stage: Stage
    ended_at: datetime
    end_reason: str
    campaign_id: str | None = None
    lead_id: str | None = None
    slots: Slots = field(default_factory=lambda: Slots())
    do_not_call: bool = False
    duration_s: float = 0.0
    turns: int = 0
    cost_micro_usd: int = 0
    close_code: int | None = None  # the call's WebSocket close code, when known

    @property
    def callback_at(self) -> datetime | None:
        return self.slots.get("callback_at")

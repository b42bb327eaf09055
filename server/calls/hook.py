"""What a call's handler and the call's durable record exchange.

The call server (``server.calls.lifecycle``) runs one ``CallHandler`` per call
(echo now, the AI pipeline next: ``server.handlers``) and tells one
``CallRecord`` (the session store's, ``server.calls.recording``, or
``NoCallRecord``) what happens:

* ``started(session)`` — ``start`` arrived; the ids are known. The record begins
  loading the lead (``lead:{lead_id}`` in Redis, bounded by the store's 0.3 s
  deadline); a handler gets it with ``await session.lead()`` — the custom
  parameters alone when there is no lead data, the store is off or slow.
* ``turn(TurnReport)`` — the handler finished a turn: what the caller said,
  what the bot said and what of it was heard (barge-in), the stage before and
  after, the analysis, the stage timestamps (DESIGN.md §6 names, trio clock)
  and the vendor usage of the turn. Echo's turns carry timestamps only.
* ``progress(DialogueReport)`` — the conversation's state so far (stage,
  slots with the callback time, do-not-call flag, objections, the call's total
  usage and cost). The latest one is what the outcome and campaign stats say.
* ``ended(CallSummary)`` — the call is over, by any path; called once.

Every method is synchronous and never blocks (``lead`` waits, bounded); a
record must never slow the audio down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

import trio

from dialogue.cost import Usage
from dialogue.model import Analysis, Stage
from server.config import ServerConfig
from server.metrics import ServerMetrics
from server.store.records import LeadContext
from server.telephony.dialect import Dialect
from server.telephony.events import Start, StreamEvent

__all__ = [
    "CallHandler",
    "CallRecord",
    "CallRecordFactory",
    "CallSession",
    "CallSummary",
    "DialogueReport",
    "HandlerFactory",
    "ListenOnlyHandler",
    "NoCallRecord",
    "TurnReport",
]


@dataclass(frozen=True, slots=True)
class TurnReport:
    """One finished turn.

    ``caller_text`` is what the STT heard (a key press reads ``"dtmf:9"``);
    ``bot_text`` the whole reply; ``heard_text`` what of it the caller heard
    when a barge-in cut it (``None``: all of it). ``caller_at``/``bot_at`` are
    seconds of call audio (0 = the caller's first sample) at which each began.
    ``marks`` are the stage timestamps (trio clock), ``usage`` the vendor
    usage of this turn alone.
    """

    caller_text: str = ""
    bot_text: str = ""
    heard_text: str | None = None
    stage_before: Stage | None = None
    stage_after: Stage | None = None
    analysis: Analysis | None = None
    marks: Mapping[str, float] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    caller_at: float = 0.0
    bot_at: float = 0.0


@dataclass(frozen=True, slots=True)
class DialogueReport:
    """The conversation's result so far; the newest replaces the previous one.

    ``slots`` uses ``dialogue.model.Slots`` keys (``callback_at`` is an aware
    datetime). ``usage`` and ``cost_micro_usd`` are the call's totals.
    """

    stage: Stage
    slots: Mapping[str, object] = field(default_factory=dict)
    do_not_call: bool = False
    objections: Mapping[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    cost_micro_usd: int = 0
    playbook_id: str = ""


@dataclass(frozen=True, slots=True)
class CallSummary:
    """How a call ended and what it moved."""

    call_id: str
    reason: str
    duration: float
    frames_in: int
    frames_out: int
    bad_frames: int
    close_code: int | None = None
    #: the peer broke a WebSocket cap (fragments, message size): its address is
    #: penalized for a moment (``server.ws.listen.HandshakeGate``)
    peer_at_fault: bool = False


class CallHandler(Protocol):
    """What a call does with its events (echo, the AI pipeline...)."""

    async def on_event(self, event: StreamEvent) -> None:
        """Handle one event; must return promptly (start tasks for waiting work)."""


class CallRecord(Protocol):
    """What a call's durable record (e.g. the session store) is told (module docstring)."""

    def started(self, session: CallSession) -> None: ...

    async def lead(self) -> LeadContext: ...

    def turn(self, report: TurnReport) -> None: ...

    def progress(self, report: DialogueReport) -> None: ...

    def ended(self, summary: CallSummary) -> None: ...


class NoCallRecord:
    """A ``CallRecord`` that keeps nothing (no store configured)."""

    def __init__(self) -> None:
        self._params: Mapping[str, str] = {}

    def started(self, session: CallSession) -> None:
        self._params = dict(session.custom_parameters)

    async def lead(self) -> LeadContext:
        return LeadContext(params=self._params)

    def turn(self, report: TurnReport) -> None:
        return None

    def progress(self, report: DialogueReport) -> None:
        return None

    def ended(self, summary: CallSummary) -> None:
        return None


#: Opens one call's record; entered before the call runs and exited after it ended.
CallRecordFactory = Callable[[], AbstractAsyncContextManager[CallRecord]]


@dataclass(slots=True)
class CallSession:
    """A live call as handlers see it.

    ``custom_parameters`` merges the upgrade URL's query parameters (minus the
    sample rate) with ``start.custom_parameters``, the latter winning on a clash,
    with ids checked and phone-like values masked; it is filled when ``start``
    arrives, as are ``start`` itself (as sent), ``call_sid`` (the record id)
    and ``stream_sid`` (checked).
    """

    call_id: str
    dialect: Dialect
    sample_rate: int
    config: ServerConfig
    metrics: ServerMetrics
    nursery: trio.Nursery
    send: Callable[[str], Awaitable[None]]
    query_parameters: Mapping[str, str] = field(default_factory=dict)
    start: Start | None = None
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    record: CallRecord = field(default_factory=NoCallRecord)
    call_sid: str = ""
    stream_sid: str = ""
    #: set by the lifecycle: ends the call (see ``hang_up``)
    on_hang_up: Callable[[str], None] | None = None

    def hang_up(self, reason: str) -> None:
        """End the call from our side with end reason ``reason`` (``completed``:
        the closing line was said; ``no_response``: the caller stayed silent).
        The socket is closed with 1000 once the handler's tasks are gone."""
        if self.on_hang_up is not None:
            self.on_hang_up(reason)

    async def lead(self) -> LeadContext:
        """The lead this call is about (custom parameters, enriched from the CRM's
        ``lead:{lead_id}`` when the store has it); waits at most the store's lead
        deadline. Only meaningful once ``start`` arrived."""
        return await self.record.lead()


HandlerFactory = Callable[[CallSession], CallHandler]


class ListenOnlyHandler:
    """Accepts the stream and says nothing (tests of the server's own mechanics)."""

    def __init__(self, session: CallSession) -> None:
        self.session = session

    async def on_event(self, event: StreamEvent) -> None:
        return None

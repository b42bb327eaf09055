"""The call server's bridge to the session store: one ``StoreCallState`` per call.

``store_call_state(service)`` is the ``server.calls.lifecycle.CallStateFactory`` that
``voicebot serve`` hands to the server. Per call:

* **enter** (before the call runs): opens a nursery, nothing else — no Redis
  before the first frame.
* **started** (``start`` arrived, ``call_sid`` known; synchronous): starts the
  recording task in that nursery. The receive loop goes straight on, so the
  lead lookup and the recorder's setup happen beside the audio, never in
  front of it. The task looks the lead up (``load_lead``: the store's own
  0.3 s deadline, plus ``CallStateConfig.lead_deadline`` as a guard here;
  missing or slow lead data just means the custom parameters alone), opens a
  ``CallRecorder`` and records the first snapshot.
* **turn** (the handler finished a turn; synchronous): a new snapshot (turn
  count) and the turn's latency record go to the recorder's buffer. Turns that
  finish while the lookup is still running are kept and written with the
  first snapshot.
* **ended** (every end path of ``server.calls.lifecycle``: stop, closed, time_limit,
  shutdown, error): the outcome is built from the summary (end reason,
  duration on the trio clock) and the task leaves the recorder, whose exit
  writes it — to Redis, else the process's retrier, else the spill file.
* **exit**: waits for the task, so the outcome is handed off before the call's
  slot is released (a drain therefore finishes the outcomes before the store
  service closes).

The recording task runs shielded. Its only unbounded wait is for ``ended``,
which ``server.calls.lifecycle`` signals in a ``finally`` before this context exits (and
the exit signals it too, should it not have been); everything else is bounded
(lead deadline, the recorder's ``exit_deadline``, one spill append). Shielding
is what makes "exactly one outcome with the call's end reason" hold when the
server cancels a call at shutdown: without it, the cancellation could reach
the task before the end reason is known, or before the recorder is open.

What echo mode records (it has no dialogue): stage ``INTRO`` (the snapshot's
default: the call never got past the opening), no playbook, no transcript text
(nothing was recognised: nothing is invented), turns = utterances echoed, and
per turn the ``speech_end`` → ``first_media_sent`` timestamps.

A call that ends before ``start`` (connected, then closed, or no ``start``
within the deadline) has no ids and writes nothing; that is logged. A
``start`` whose ``call_sid`` is missing or invalid is recorded under a
generated id (``server.calls.lifecycle``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import trio

from server.calls.lifecycle import CallSession, CallState, CallStateFactory, CallSummary
from server.logs import log_event
from server.store import (
    CallRecorder,
    LeadContext,
    Outcome,
    SessionSnapshot,
    StoreService,
    TurnLatency,
    mask_phone,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallStateConfig:
    """Named deadlines of the store wiring (seconds)."""

    # The store bounds load_lead itself (0.3 s); this guards the whole lookup.
    lead_deadline: float = 0.5


@dataclass(frozen=True, slots=True)
class _CallIds:
    call_sid: str
    stream_sid: str
    caller: str  # masked
    params: Mapping[str, str]
    started_at: datetime


class StoreCallState:
    """One call's ``CallState`` backed by the session store (module docstring)."""

    def __init__(
        self, service: StoreService, nursery: trio.Nursery, config: CallStateConfig
    ) -> None:
        self._service = service
        self._nursery = nursery
        self._config = config
        self._ids: _CallIds | None = None
        self._lead: LeadContext | None = None
        self._recorder: CallRecorder | None = None
        self._turns = 0
        self._unwritten_latency: list[TurnLatency] = []
        self._summary: CallSummary | None = None
        self._ended = trio.Event()

    # -- server.calls.lifecycle.CallState ----------------------------------------------

    def started(self, session: CallSession) -> None:
        start = session.start
        if start is None or self._ids is not None:
            return
        # The session's ids are checked (server.redact) and unique among live calls.
        self._ids = _CallIds(
            call_sid=session.call_sid, stream_sid=session.stream_sid,
            caller=mask_phone(start.from_), params=dict(session.custom_parameters),
            started_at=self._service.clock(),
        )
        self._nursery.start_soon(self._record, self._ids)

    def turn(self, marks: Mapping[str, float]) -> None:
        self._turns += 1
        latency = TurnLatency(turn=self._turns, marks=dict(marks))
        if self._recorder is None:
            self._unwritten_latency.append(latency)  # written with the first snapshot
            return
        self._recorder.record_nowait(self._snapshot(), latency=[latency])

    def ended(self, summary: CallSummary) -> None:
        if self._summary is not None:
            return
        self._summary = summary
        if self._ids is None:
            log_event(log, logging.INFO, "call ended before start: no outcome recorded",
                      reason=summary.reason)
        self._ended.set()

    # -- the recording task ---------------------------------------------------

    async def _record(self, ids: _CallIds) -> None:
        with trio.CancelScope(shield=True):  # see the module docstring
            lead = LeadContext(params=ids.params)
            with trio.move_on_after(self._config.lead_deadline):
                lead = await self._service.store.load_lead(ids.params, call_sid=ids.call_sid)
            self._lead = lead
            async with self._service.open_call_recorder(ids.call_sid, ids.stream_sid) as rec:
                rec.record_nowait(self._snapshot(), latency=self._unwritten_latency)
                self._unwritten_latency = []
                self._recorder = rec
                await self._ended.wait()
                self._recorder = None
                rec.finish_nowait(self._outcome(ids))
            log_event(log, logging.INFO, "call outcome handed off",
                      destination=rec.outcome_destination or "-")

    def _snapshot(self) -> SessionSnapshot:
        ids = self._ids
        assert ids is not None  # only called once the task runs, i.e. after start
        return SessionSnapshot(
            call_sid=ids.call_sid, stream_sid=ids.stream_sid, caller=ids.caller,
            started_at=ids.started_at, lead=self._lead or LeadContext(params=ids.params),
            turns=self._turns,
        )

    def _outcome(self, ids: _CallIds) -> Outcome:
        summary = self._summary
        ended_at = self._service.clock()
        if summary is None:  # left without ``ended`` (a bug upstream): still one outcome
            reason, duration = "error", (ended_at - ids.started_at).total_seconds()
            close_code = None
        else:
            reason, duration = summary.reason, summary.duration
            close_code = summary.close_code
        snapshot = self._snapshot()
        return Outcome(
            call_sid=ids.call_sid, stream_sid=ids.stream_sid, stage=snapshot.stage,
            ended_at=ended_at, end_reason=reason,
            campaign_id=snapshot.lead.campaign_id, lead_id=snapshot.lead.lead_id,
            slots=snapshot.slots, do_not_call=snapshot.do_not_call,
            duration_s=max(duration, 0.0), turns=self._turns, close_code=close_code,
        )


@asynccontextmanager
async def open_store_call_state(
    service: StoreService, config: CallStateConfig | None = None
) -> AsyncIterator[StoreCallState]:
    """One call's state for the duration of the block (module docstring).

    The block's own exception (or cancellation) propagates unchanged, after
    the outcome was handed off.
    """
    body_exc: BaseException | None = None
    async with trio.open_nursery() as nursery:
        state = StoreCallState(service, nursery, config or CallStateConfig())
        try:
            yield state
        except BaseException as exc:
            # Raised again outside the nursery, so the caller sees it as it was
            # (not wrapped in an ExceptionGroup).
            body_exc = exc
        finally:
            # server.calls.lifecycle always calls ended(); should it not have, never hang here.
            state._ended.set()
    if body_exc is not None:
        raise body_exc


def store_call_state(
    service: StoreService, config: CallStateConfig | None = None
) -> CallStateFactory:
    """The per-call factory ``server.calls.server`` takes (``call_state=``)."""

    def open_one() -> AbstractAsyncContextManager[CallState]:
        return open_store_call_state(service, config)

    return open_one

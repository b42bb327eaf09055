"""The call server's bridge to the session store: one ``StoreCallRecord`` per call.

``store_call_record(service)`` is the ``server.calls.hook.CallRecordFactory``
that ``voicebot serve`` hands to the server. Per call:

* **enter** (before the call runs): opens a nursery, nothing else — no Redis
  before the first frame.
* **started** (``start`` arrived, ``call_sid`` known; synchronous): starts the
  recording task in that nursery. The receive loop goes straight on, so the
  lead lookup and the recorder's setup happen beside the audio, never in
  front of it. The task looks the lead up (``load_lead``: the store's own
  0.3 s deadline, plus ``CallRecordConfig.lead_deadline`` as a guard here;
  missing or slow lead data just means the custom parameters alone), opens a
  ``CallRecorder`` and records the first snapshot. ``lead()`` (the handler's
  ``session.lead()``) waits for that lookup, so it is bounded the same way.
* **turn** (``TurnReport``; synchronous): a new snapshot, the turn's transcript
  entries (the caller's words; the bot's reply, marked ``cut`` with the heard
  prefix after a barge-in) and its latency record go to the recorder's buffer.
  Turns that finish while the lookup is still running are kept and written
  with the first snapshot.
* **progress** (``DialogueReport``; synchronous): the dialogue's stage, slots,
  objections, do-not-call flag, usage and playbook go into the snapshot, and the
  newest one into the outcome (stage, slots, callback time, flag, cost).
* **ended** (every end path of ``server.calls.lifecycle``): the outcome is
  built from the summary (end reason, close code, duration on the trio clock)
  and the newest progress, and the task leaves the recorder, whose exit writes
  it — to Redis, else the spill file (``server.store.recorder``).
* **exit**: waits for the task, so the outcome is handed off before the call's
  slot is released (a drain therefore finishes the outcomes before the store
  service closes).

Every failure of Redis for the call counts in ``component_errors_total{redis}``
(the session's metrics): a lead lookup that failed or outran its deadline, an
outage of the recorder's state writes, an outcome that did not reach Redis.

The recording task runs shielded. Its only unbounded wait is for ``ended``,
which ``server.calls.lifecycle`` signals in a ``finally`` before this context
exits (and the exit signals it too, should it not have been); everything else is bounded
(lead deadline, the recorder's ``exit_deadline``, one spill append). Shielding
is what makes "exactly one outcome with the call's end reason" hold when the
server cancels a call at shutdown: without it, the cancellation could reach
the task before the end reason is known, or before the recorder is open.

What echo mode records (it has no dialogue, so reports no progress): stage
``INTRO`` (the snapshot's default), no playbook, no transcript text (nothing
was recognised: nothing is invented), turns = utterances echoed, and per turn
the ``speech_end`` → ``first_media_sent`` timestamps.

The lead lookup itself is ``look_up_lead``; ``lead_lookup(service)`` is the
same lookup for ``/exotel/url``'s announce-time greeting
(``server.handlers.pipeline.announce``), so the greeting rendered before the
socket opens is the one the call will say.

A call that ends before ``start`` (connected, then closed, or no ``start``
within the deadline) has no ids and writes nothing; that is logged. A
``start`` whose ``call_sid`` is missing or invalid is recorded under a
generated id (``server.calls.lifecycle``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast

import trio

from dialogue.model import Slots
from server.calls.hook import (
    CallRecord,
    CallRecordFactory,
    CallSession,
    CallSummary,
    DialogueReport,
    TurnReport,
)
from server.logs import log_event
from server.metrics import ServerMetrics
from server.store import (
    CallRecorder,
    LeadContext,
    Outcome,
    SessionSnapshot,
    StoreService,
    TranscriptEntry,
    TurnLatency,
    mask_phone,
)
from server.store.records import LATENCY_MARKS, Delivery, Role

log = logging.getLogger(__name__)


def slots_of(values: Mapping[str, object]) -> Slots:
    """The known ``Slots`` keys of a dialogue's slot mapping."""
    return cast(Slots, {key: value for key, value in values.items()
                        if key in Slots.__annotations__})


@dataclass(frozen=True, slots=True)
class CallRecordConfig:
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


async def look_up_lead(
    service: StoreService, params: Mapping[str, str], *, call_sid: str,
    config: CallRecordConfig, on_failure: Callable[[], None],
) -> LeadContext:
    """The lead ``params`` name (``lead:{lead_id}``), as a call looks it up:
    ``load_lead`` within the store's own deadline, guarded by ``config.
    lead_deadline``. A lookup that failed or outran either deadline calls
    ``on_failure`` (once) and gives the custom parameters alone; the store
    logs it with ``call_sid``. Also what ``/exotel/url``'s announce-time
    greeting uses (``server.handlers.pipeline.announce``), so both see the
    same lead."""
    lead = LeadContext(params=dict(params))
    with trio.move_on_after(config.lead_deadline) as guard:
        lead = await service.store.load_lead(params, call_sid=call_sid, on_failure=on_failure)
    if guard.cancelled_caught:
        on_failure()
    return lead


def lead_lookup(
    service: StoreService, config: CallRecordConfig | None = None,
) -> Callable[[Mapping[str, str], str], Awaitable[LeadContext | None]]:
    """``look_up_lead`` as the announce-time greeting takes it
    (``server.handlers.pipeline.announce.LeadLookup``): ``(params, call_sid)``
    → the lead, or ``None`` when the lookup failed."""
    config = config or CallRecordConfig()

    async def look_up(params: Mapping[str, str], call_sid: str) -> LeadContext | None:
        failed = False

        def fail() -> None:
            nonlocal failed
            failed = True

        lead = await look_up_lead(service, params, call_sid=call_sid, config=config,
                                  on_failure=fail)
        return None if failed else lead

    return look_up


class StoreCallRecord:
    """One call's ``CallRecord`` backed by the session store (module docstring)."""

    def __init__(
        self, service: StoreService, nursery: trio.Nursery, config: CallRecordConfig
    ) -> None:
        self._service = service
        self._nursery = nursery
        self._config = config
        self._ids: _CallIds | None = None
        self._lead: LeadContext | None = None
        self._lead_known = trio.Event()
        self._recorder: CallRecorder | None = None
        self._turns = 0
        self._dialogue: DialogueReport | None = None
        self._unwritten_transcript: list[TranscriptEntry] = []
        self._unwritten_latency: list[TurnLatency] = []
        self._summary: CallSummary | None = None
        self._ended = trio.Event()
        self._metrics: ServerMetrics | None = None

    # -- server.calls.hook.CallRecord ---------------------------------------------

    def started(self, session: CallSession) -> None:
        start = session.start
        if start is None or self._ids is not None:
            return
        self._metrics = session.metrics
        # The session's ids are checked (server.redact) and unique among live calls.
        self._ids = _CallIds(
            call_sid=session.call_sid, stream_sid=session.stream_sid,
            caller=mask_phone(start.from_), params=dict(session.custom_parameters),
            started_at=self._service.clock(),
        )
        self._nursery.start_soon(self._record, self._ids)

    async def lead(self) -> LeadContext:
        if self._ids is None:
            return LeadContext()
        await self._lead_known.wait()  # bounded: _record sets it within lead_deadline
        return self._lead or LeadContext(params=self._ids.params)

    def turn(self, report: TurnReport) -> None:
        self._turns += 1
        # A mark the store has no name for would make the whole write refuse
        # (the codec is strict); it is dropped here, said once per turn.
        unknown = sorted(set(report.marks) - set(LATENCY_MARKS))
        if unknown:
            log_event(log, logging.WARNING, "turn marks not recorded: unknown names",
                      marks=",".join(unknown), turn=self._turns)
        latency = TurnLatency(turn=self._turns, marks={
            name: at for name, at in report.marks.items() if name in LATENCY_MARKS})
        transcript = self._transcript(report)
        if self._recorder is None:  # written with the first snapshot
            self._unwritten_transcript += transcript
            self._unwritten_latency.append(latency)
            return
        self._recorder.record_nowait(self._snapshot(), transcript=transcript, latency=[latency])

    def progress(self, report: DialogueReport) -> None:
        self._dialogue = report
        if self._recorder is not None:
            self._recorder.record_nowait(self._snapshot())

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
            lead = await look_up_lead(self._service, ids.params, call_sid=ids.call_sid,
                                      config=self._config, on_failure=self._redis_failed)
            self._lead = lead
            self._lead_known.set()
            async with self._service.open_call_recorder(
                    ids.call_sid, ids.stream_sid, on_failure=self._redis_failed) as rec:
                rec.record_nowait(self._snapshot(), transcript=self._unwritten_transcript,
                                  latency=self._unwritten_latency)
                self._unwritten_transcript, self._unwritten_latency = [], []
                self._recorder = rec
                await self._ended.wait()
                self._recorder = None
                rec.finish_nowait(self._outcome(ids))
            log_event(log, logging.INFO, "call outcome handed off",
                      destination=rec.outcome_destination or "-")

    def _redis_failed(self) -> None:
        if self._metrics is not None:
            self._metrics.component_errors.labels(component="redis").inc()

    def _transcript(self, report: TurnReport) -> list[TranscriptEntry]:
        now = self._service.clock()
        entries = []
        if report.caller_text:
            entries.append(TranscriptEntry(
                speaker=Role.CALLER, text=report.caller_text, audio_time=report.caller_at,
                wall_time=now))
        if report.bot_text:
            cut = report.heard_text is not None
            entries.append(TranscriptEntry(
                speaker=Role.BOT, text=report.bot_text, audio_time=report.bot_at,
                wall_time=now, delivery=Delivery.CUT if cut else Delivery.FULL,
                heard_text=report.heard_text))
        return entries

    def _snapshot(self) -> SessionSnapshot:
        ids = self._ids
        assert ids is not None  # only called once the task runs, i.e. after start
        snapshot = SessionSnapshot(
            call_sid=ids.call_sid, stream_sid=ids.stream_sid, caller=ids.caller,
            started_at=ids.started_at, lead=self._lead or LeadContext(params=ids.params),
            turns=self._turns,
        )
        dialogue = self._dialogue
        if dialogue is None:
            return snapshot
        return replace(
            snapshot, playbook_id=dialogue.playbook_id, stage=dialogue.stage,
            slots=slots_of(dialogue.slots), objections=dict(dialogue.objections),
            do_not_call=dialogue.do_not_call, usage=dialogue.usage)

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
            cost_micro_usd=self._dialogue.cost_micro_usd if self._dialogue else 0,
        )


@asynccontextmanager
async def open_store_call_record(
    service: StoreService, config: CallRecordConfig | None = None
) -> AsyncIterator[StoreCallRecord]:
    """One call's state for the duration of the block (module docstring).

    The block's own exception (or cancellation) propagates unchanged, after
    the outcome was handed off.
    """
    body_exc: BaseException | None = None
    async with trio.open_nursery() as nursery:
        state = StoreCallRecord(service, nursery, config or CallRecordConfig())
        try:
            yield state
        except BaseException as exc:
            # Raised again outside the nursery, so the caller sees it as it was
            # (not wrapped in an ExceptionGroup).
            body_exc = exc
        finally:
            # server.calls.lifecycle always calls ended(); should it not have, never hang here.
            state._ended.set()
            state._lead_known.set()
    if body_exc is not None:
        raise body_exc


def store_call_record(
    service: StoreService, config: CallRecordConfig | None = None
) -> CallRecordFactory:
    """The per-call factory ``server.calls.server`` takes (``call_record=``)."""

    def open_one() -> AbstractAsyncContextManager[CallRecord]:
        opened: AbstractAsyncContextManager[CallRecord] = open_store_call_record(service, config)
        return opened

    return open_one

"""Per-call recording: ``open_call_recorder`` keeps Redis off the call's critical path.

The call hands data over with ``record_nowait`` / ``finish_nowait`` — plain
synchronous methods that never block and never raise into the call. A
background task in the recorder's nursery drains the call's ``TurnBuffer`` in
one pipelined round trip per batch (snapshot + transcript + latency + TTLs).
While Redis is down or slow, data waits in the bounded buffer and the task
retries with backoff; while the call is idle the task refreshes the TTLs.

Exit always writes the outcome — normal end, exception, or cancellation of
the call — shielded, under its own short ``exit_deadline``: first the pending
batch (one attempt), then the outcome. If Redis cannot take the outcome in
time (or ``StoreHealth`` already says it is down: then without trying), the
outcome goes to the spill file at once, fsynced, and the process's
``OutcomeRetrier`` replays the file when Redis answers: an ended call's outcome
is on disk before the recorder returns, even if the process is killed the
next moment. Only when the disk refuses does it wait in the retrier's memory. The
call's unwritten turn state goes to the retrier too (best effort, bounded). When the
call never set an outcome (abrupt end: socket dropped, no ``stop``, process
shutting down), one is built from the newest snapshot.

``on_failure`` (optional) is told each time Redis fails the call: once per
outage of its state writes (however many retries it takes), and once when the
outcome does not reach Redis (spilled or held).

One caveat, by design: a turn write that times out may still land after we
gave up on it; the retry then appends its transcript entries a second time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import trio

from dialogue.model import Slots, Stage
from server.store.buffer import BufferLimits, OutcomeRetrier, RetryDelays, TurnBuffer
from server.store.exceptions import RecordFormatError, SpillError, StoreUnavailable
from server.store.health import StoreHealth
from server.store.interface import SessionStore
from server.store.records import Outcome, SessionSnapshot, TranscriptEntry, TurnLatency
from server.store.spill import SpillFile

log = logging.getLogger("voicebot.store")


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    """Named deadlines (seconds) and limits of a call recorder."""

    write_deadline: float = 2.0  # one turn write, including the wait for a worker thread
    exit_deadline: float = 1.5  # flush + outcome at call end, before handing off
    ttl_refresh_interval: float = 600.0  # an idle call still refreshes its TTLs this often
    backoff: RetryDelays = field(default_factory=RetryDelays)
    limits: BufferLimits = field(default_factory=BufferLimits)


def outcome_from_snapshot(
    snapshot: SessionSnapshot | None,
    *,
    call_sid: str,
    stream_sid: str,
    end_reason: str,
    ended_at: datetime,
) -> Outcome:
    """The outcome of a call that ended without stating one."""
    if snapshot is None:
        return Outcome(call_sid=call_sid, stream_sid=stream_sid, stage=Stage.ENDED,
                       ended_at=ended_at, end_reason=end_reason)
    return Outcome(
        call_sid=call_sid,
        stream_sid=snapshot.stream_sid or stream_sid,
        stage=snapshot.stage,
        ended_at=ended_at,
        end_reason=end_reason,
        campaign_id=snapshot.lead.campaign_id,
        lead_id=snapshot.lead.lead_id,
        slots=snapshot.slots,
        do_not_call=snapshot.do_not_call,
        duration_s=max((ended_at - snapshot.started_at).total_seconds(), 0.0),
        turns=snapshot.turns,
    )


def _end_reason(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    if isinstance(exc, trio.Cancelled):
        return "cancelled"
    return f"error:{type(exc).__name__}"


class CallRecorder:
    """The call's handle on its state writer; see the module docstring."""

    def __init__(
        self,
        store: SessionStore,
        call_sid: str,
        stream_sid: str,
        *,
        retrier: OutcomeRetrier | None,
        spill: SpillFile,
        config: RecorderConfig,
        clock: Callable[[], datetime],
        health: StoreHealth | None = None,
        live_owner: str | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.on_failure = on_failure
        self.health = health
        self.live_owner = live_owner
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.retrier = retrier
        self.spill = spill
        self.config = config
        self.clock = clock
        self.buffer = TurnBuffer(call_sid, config.limits)
        self._wake = trio.Event()
        self._drain_scope = trio.CancelScope()
        self._drain_done = trio.Event()
        self._last_snapshot: SessionSnapshot | None = None
        self._outcome: Outcome | None = None
        self.in_outage = False
        self.turn_writes = 0
        #: where the outcome went: "redis", "retrier", "spill", or (both failed) "log";
        #: "unwritable" if the outcome itself could not be encoded
        #: (None while the call runs)
        self.outcome_destination: str | None = None

    # ------------------------------------------------------------ the call's side

    def record_nowait(
        self,
        snapshot: SessionSnapshot | None = None,
        transcript: Iterable[TranscriptEntry] = (),
        latency: Iterable[TurnLatency] = (),
    ) -> None:
        """Queue state for writing. Never blocks, never raises for Redis' sake.

        The records' dicts are copied here (microseconds): a worker thread
        encodes them later, so the call may keep mutating its own dicts.
        """
        if snapshot is not None:
            snapshot = replace(
                snapshot, slots=Slots(**snapshot.slots), objections=dict(snapshot.objections),
                lead=replace(snapshot.lead, params=dict(snapshot.lead.params)),
            )
            self._last_snapshot = snapshot
        latency = [replace(r, marks=dict(r.marks)) for r in latency]
        self.buffer.push(snapshot, transcript, latency)
        self._wake.set()

    def finish_nowait(self, outcome: Outcome) -> None:
        """Set the outcome the recorder writes when the call's block exits."""
        self._outcome = replace(outcome, slots=Slots(**outcome.slots))

    # ------------------------------------------------------------ background

    async def _drain(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        attempt = 0
        try:
            with self._drain_scope:
                while True:
                    if not self.buffer.pending:
                        self._wake = trio.Event()
                        with trio.move_on_after(self.config.ttl_refresh_interval) as idle:
                            await self._wake.wait()
                        if idle.cancelled_caught:
                            self.buffer.request_refresh()
                        continue
                    deadline = trio.current_time() + self.config.write_deadline
                    if await self._write_pending(deadline):
                        attempt = 0
                    else:
                        await trio.sleep(self.config.backoff.delay(attempt))
                        attempt += 1
        finally:
            self._drain_done.set()

    async def _write_pending(self, deadline: float) -> bool:
        """One round trip with everything pending; on failure it goes back to the buffer.

        Shielded so that tearing the call down never abandons a batch half-way;
        bounded by ``deadline`` (trio clock) instead.
        """
        batch = self.buffer.take()
        if batch is None:
            return True
        if self.live_owner is not None:
            batch = replace(batch, stream_sid=self.stream_sid, live_owner=self.live_owner)
        with trio.CancelScope(shield=True, deadline=deadline) as scope:
            try:
                await self.store.write_turn(batch)
            except StoreUnavailable as exc:
                self.buffer.put_back(batch)
                self._note_outage(str(exc))
                return False
            except RecordFormatError as exc:  # a bug upstream; retrying cannot help
                log.error("call %s: state batch dropped, not encodable: %s", self.call_sid, exc)
                return True
        if scope.cancelled_caught:
            self.buffer.put_back(batch)
            self._note_outage("write timed out")
            return False
        if self.in_outage:
            log.info("call %s: redis back, pending state written", self.call_sid)
            self.in_outage = False
        self.turn_writes += 1
        return True

    def _note_outage(self, reason: str) -> None:
        if not self.in_outage:
            log.warning("call %s: state write failed, buffering (%s)", self.call_sid, reason)
            self.in_outage = True
            self._failed()

    def _failed(self) -> None:
        if self.on_failure is not None:
            self.on_failure()

    # ------------------------------------------------------------ end of call

    async def _close(self, exc: BaseException | None) -> None:
        """Flush and write the outcome; shielded, never raises StoreUnavailable."""
        with trio.CancelScope(shield=True):
            self._drain_scope.cancel()
            await self._drain_done.wait()  # an in-flight write finishes (bounded)
            outcome = self._outcome or outcome_from_snapshot(
                self._last_snapshot, call_sid=self.call_sid, stream_sid=self.stream_sid,
                end_reason=_end_reason(exc), ended_at=self.clock(),
            )
            deadline = trio.current_time() + self.config.exit_deadline
            known_down = self.health is not None and not self.health.up
            with trio.move_on_at(deadline) as attempt:
                if known_down:  # spill at once: nothing waits in memory for Redis
                    attempt.cancel()
                if self.buffer.pending:
                    await self._write_pending(deadline)
                try:
                    await self.store.write_outcome(outcome)
                except StoreUnavailable as err:
                    log.warning("call %s: outcome not written yet (%s)", self.call_sid, err)
                except RecordFormatError as err:  # a bug upstream; retrying cannot help
                    log.critical("call %s: OUTCOME UNWRITABLE (%s): %s", self.call_sid, err,
                                 outcome)
                    self.outcome_destination = "unwritable"
                else:
                    self.outcome_destination = "redis"
            leftover = self.buffer.take()
            if leftover is not None and not (
                self.retrier is not None and self.retrier.submit_turns_nowait(leftover)
            ) and (leftover.transcript or leftover.latency):
                log.warning(
                    "call %s: unwritten state dropped at call end (%d transcript, %d latency)",
                    self.call_sid, len(leftover.transcript), len(leftover.latency),
                )
            if self.outcome_destination is None:
                self._failed()
                await self._hand_off(outcome)

    async def _hand_off(self, outcome: Outcome) -> None:
        """Redis did not take the outcome: make it durable at once (the spill
        file, fsynced; the retrier replays it when Redis answers), so a process
        killed the next moment loses nothing. Only if the disk refuses does it
        wait in the retrier's memory; failing that, the log is the last record."""
        try:
            await trio.to_thread.run_sync(self.spill.append, [outcome])
        except SpillError as exc:
            if self.retrier is not None and self.retrier.submit_nowait(outcome):
                log.error("call %s: spill failed (%s); outcome kept in memory for retries",
                          self.call_sid, exc)
                self.outcome_destination = "retrier"
                return
            # Nothing else can hold it: the log line is the last record, with all a human
            # needs to re-enter it (outcomes carry no phone numbers).
            log.critical("call %s: OUTCOME NOT STORED, spill failed (%s): %s",
                         self.call_sid, exc, outcome)
            self.outcome_destination = "log"
            return
        self.outcome_destination = "spill"
        if self.retrier is not None:
            self.retrier.replay_spill_soon()


@asynccontextmanager
async def open_call_recorder(
    store: SessionStore,
    call_sid: str,
    stream_sid: str,
    *,
    spill: SpillFile,
    retrier: OutcomeRetrier | None = None,
    config: RecorderConfig | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    health: StoreHealth | None = None,
    live_owner: str | None = None,
    on_failure: Callable[[], None] | None = None,
) -> AsyncIterator[CallRecorder]:
    """Record one call for the duration of the block (see the module docstring).

    The block's own exception (or cancellation) propagates unchanged, after the
    outcome was written or handed off.
    """
    recorder = CallRecorder(
        store, call_sid, stream_sid, retrier=retrier, spill=spill,
        config=config or RecorderConfig(), clock=clock, health=health, live_owner=live_owner,
        on_failure=on_failure,
    )
    body_exc: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder._drain)
        try:
            yield recorder
        except BaseException as exc:
            # Raised again below, outside the nursery, so the caller sees it
            # as it was (not wrapped in an ExceptionGroup).
            body_exc = exc
        finally:
            await recorder._close(body_exc)
            nursery.cancel_scope.cancel()
    if body_exc is not None:
        raise body_exc

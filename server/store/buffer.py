"""Holding writes while Redis is away: a bounded per-call buffer and the outcome retrier.

``TurnBuffer`` (pure, no trio) is what a call's recorder fills from the call
and drains in one batch per round trip. Snapshots coalesce (only the newest
matters); transcript entries and latency records queue in order, bounded:
on overflow the *oldest* are dropped, counted, and logged once per outage.

``OutcomeRetrier`` (one per process, ``open_outcome_retrier``) owns outcomes a
call could not write before it ended. An attempt that fails moves every
queued outcome to the spill file at once (so a process killed during an
outage loses none); it retries with capped exponential backoff, replays the
spill file at start and after every successful write following an outage,
and at shutdown spills whatever is still unwritten; it never drops one. It
also takes, best effort and bounded, the last unwritten turn batch of such calls.

With ``replay_elsewhere`` (a worker of ``voicebot serve --workers N``) the
retrier never replays the spill file: several processes replaying one file
would race for its claimed parts. Each time a replay would be due it calls
``replay_elsewhere()`` instead (the worker tells its parent, the one replayer),
and ``replayed`` is never set (so this process runs no lost-call sweeps).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from server.store.exceptions import SpillError, StoreUnavailable
from server.store.interface import SessionStore, TurnBatch
from server.store.records import Outcome, SessionSnapshot, TranscriptEntry, TurnLatency
from server.store.spill import SpillFile, replay_spill

log = logging.getLogger("voicebot.store")


@dataclass(frozen=True, slots=True)
class RetryDelays:
    """Retry delays: ``initial * factor**attempt``, capped at ``maximum`` (seconds)."""

    initial: float = 0.05
    factor: float = 2.0
    maximum: float = 2.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** min(attempt, 64))


@dataclass(frozen=True, slots=True)
class BufferLimits:
    max_transcript: int = 512
    max_latency: int = 128


class TurnBuffer:
    """Pending per-call writes (a call's whole pending state fits one ``TurnBatch``)."""

    def __init__(self, call_sid: str, limits: BufferLimits | None = None) -> None:
        self.call_sid = call_sid
        self.limits = limits or BufferLimits()
        self._snapshot: SessionSnapshot | None = None
        self._transcript: deque[TranscriptEntry] = deque()
        self._latency: deque[TurnLatency] = deque()
        self._refresh = False
        self.dropped_transcript = 0
        self.dropped_latency = 0

    def push(
        self,
        snapshot: SessionSnapshot | None = None,
        transcript: Iterable[TranscriptEntry] = (),
        latency: Iterable[TurnLatency] = (),
    ) -> None:
        if snapshot is not None:
            self._snapshot = snapshot
        self._transcript.extend(transcript)
        self._latency.extend(latency)
        self._trim()

    def request_refresh(self) -> None:
        """Ask for a write even with no new data (keeps the TTLs alive)."""
        self._refresh = True

    @property
    def pending(self) -> bool:
        return bool(self._refresh or self._snapshot or self._transcript or self._latency)

    @property
    def latest_snapshot(self) -> SessionSnapshot | None:
        return self._snapshot

    def take(self) -> TurnBatch | None:
        """Everything pending as one batch (``None`` if nothing is)."""
        if not self.pending:
            return None
        batch = TurnBatch(
            self.call_sid, self._snapshot, tuple(self._transcript), tuple(self._latency)
        )
        self._snapshot = None
        self._transcript.clear()
        self._latency.clear()
        self._refresh = False
        return batch

    def put_back(self, batch: TurnBatch) -> None:
        """Return a batch that failed to write, ahead of anything newer."""
        if self._snapshot is None:
            self._snapshot = batch.snapshot
        self._transcript.extendleft(reversed(batch.transcript))
        self._latency.extendleft(reversed(batch.latency))
        self._refresh = True
        self._trim()

    def _trim(self) -> None:
        over = len(self._transcript) - self.limits.max_transcript
        for _ in range(over):
            self._transcript.popleft()
        over_latency = len(self._latency) - self.limits.max_latency
        for _ in range(over_latency):
            self._latency.popleft()
        if over > 0 or over_latency > 0:
            if not (self.dropped_transcript or self.dropped_latency):
                log.warning("call %s: write buffer full, dropping oldest transcript/latency "
                            "records until Redis is back", self.call_sid)
            self.dropped_transcript += max(over, 0)
            self.dropped_latency += max(over_latency, 0)


class OutcomeRetrier:
    """Writes what ended calls could not: their outcomes (until each one is
    written) and, best effort, their last unwritten turn batch (bounded:
    ``max_turn_batches``, oldest dropped and counted; never spilled)."""

    def __init__(self, store: SessionStore, spill: SpillFile, backoff: RetryDelays,
                 max_turn_batches: int = 1000, *,
                 replay_elsewhere: Callable[[], None] | None = None) -> None:
        self.store = store
        self.spill = spill
        self.backoff = backoff
        self.max_turn_batches = max_turn_batches
        self._replay_elsewhere = replay_elsewhere
        self._queue: deque[Outcome] = deque()
        self._turns: deque[TurnBatch] = deque()
        self._wakeup = trio.Event()
        self._replay_due = replay_elsewhere is None
        self._failing = False
        self._closed = False
        #: set once the spill file (what earlier runs left) has been replayed in full
        self.replayed = trio.Event()
        self.written = 0
        self.dropped_turn_batches = 0

    @property
    def pending(self) -> int:
        """Outcomes not yet written."""
        return len(self._queue)

    @property
    def pending_turn_batches(self) -> int:
        return len(self._turns)

    def submit_nowait(self, outcome: Outcome) -> bool:
        """Queue an outcome; ``False`` once shut down (the caller spills it)."""
        if self._closed:
            return False
        self._queue.append(outcome)
        self._wakeup.set()
        return True

    def replay_spill_soon(self) -> None:
        """Someone spilled outcomes: replay the file once Redis takes writes
        (or have it replayed elsewhere, see the module docstring)."""
        if self._replay_elsewhere is not None:
            self._replay_elsewhere()
            return
        self._replay_due = True
        self._wakeup.set()

    def submit_turns_nowait(self, batch: TurnBatch) -> bool:
        """Queue an ended call's unwritten state; ``False`` once shut down."""
        if self._closed:
            return False
        if len(self._turns) >= self.max_turn_batches:
            self._turns.popleft()
            self.dropped_turn_batches += 1
        self._turns.append(batch)
        self._wakeup.set()
        return True

    async def _attempt(self) -> bool:
        """One pass: outcomes first, then turn batches, then the spill file.
        ``True`` when everything is written."""
        try:
            while self._queue:
                await self.store.write_outcome(self._queue[0])
                self._queue.popleft()
                self.written += 1
            while self._turns:
                await self.store.write_turn(self._turns[0])
                self._turns.popleft()
        except StoreUnavailable as exc:
            if not self._failing:
                log.warning("retrier: redis still unavailable (%d outcomes waiting): %s",
                            len(self._queue), exc)
                self._failing = True
            self._replay_due = self._replay_elsewhere is None
            if await self._spill_queue() and self._replay_elsewhere is not None:
                self._replay_elsewhere()
            return False
        self._failing = False
        if self._replay_due:
            try:
                result = await replay_spill(self.spill, self.store.write_outcome)
            except (OSError, SpillError) as exc:  # the disk, the descriptor table: retry later
                log.error("retrier: spill replay failed, will retry: %s", exc)
                return False
            self._replay_due = result.remaining > 0
            if not self._replay_due:
                self.replayed.set()
            return not self._replay_due
        return True

    async def _spill_queue(self) -> bool:
        """Move the queued outcomes to the spill file (kept in memory if it
        fails); ``True`` when some were spilled."""
        pending = list(self._queue)
        if not pending:
            return False
        try:
            await trio.to_thread.run_sync(self.spill.append, pending)
        except SpillError as exc:
            log.error("retrier: cannot spill %d outcome(s), keeping them in memory: %s",
                      len(pending), exc)
            return False
        for _ in pending:
            self._queue.popleft()
        return True

    async def _serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        attempt = 0
        while True:
            if await self._attempt():
                attempt = 0
                self._wakeup = trio.Event()
                if not self._queue and not self._turns:
                    await self._wakeup.wait()
            else:
                await trio.sleep(self.backoff.delay(attempt))
                attempt += 1

    async def spill_pending(self) -> None:
        """Stop accepting and write unwritten outcomes to the spill file."""
        self._closed = True
        pending = list(self._queue)
        self._queue.clear()
        if self._turns:
            log.warning("retrier: %d ended calls' state batches not written at shutdown",
                        len(self._turns))
            self._turns.clear()
        await trio.to_thread.run_sync(self.spill.append, pending)


@asynccontextmanager
async def open_outcome_retrier(
    store: SessionStore, spill: SpillFile, backoff: RetryDelays | None = None, *,
    replay_elsewhere: Callable[[], None] | None = None,
) -> AsyncIterator[OutcomeRetrier]:
    """Run the process-wide retrier; it replays the spill file as soon as it
    starts (unless ``replay_elsewhere``: see the module docstring).

    On exit (normal, cancelled or failing) unwritten outcomes go to the spill
    file, shielded.
    """
    retrier = OutcomeRetrier(store, spill, backoff or RetryDelays(),
                             replay_elsewhere=replay_elsewhere)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(retrier._serve)
            try:
                yield retrier
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await retrier.spill_pending()

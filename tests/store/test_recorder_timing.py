"""The recorder's schedule (retry backoff, TTL refresh, exit deadlines) in virtual time.

Real Redis means real worker threads, which cannot run on trio's virtual
clock; so here, and only here, the recorder (and retrier) get a scripted ``SessionStore``
(the protocol it is written against) that fails or stalls on cue. Everything
about Redis itself is tested against real servers in the other files. The spill
file's writes still run in threads; ``threads_take_no_virtual_time`` keeps them
from moving the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import trio
import trio.testing

from server.store.buffer import RetryDelays, open_outcome_retrier
from server.store.exceptions import StoreUnavailable
from server.store.interface import OutcomeReceipt, StoreStatistics, TurnBatch
from server.store.recorder import RecorderConfig, open_call_recorder
from server.store.records import LeadContext, Outcome
from server.store.spill import SpillFile
from tests.store.strategies import entry, outcome, snapshot


class ScriptedStore:
    """Records when each write happened; fails the first ``fail_turns`` turn writes;
    stalls forever on writes when ``stall`` is set."""

    def __init__(self, fail_turns: int = 0, stall: bool = False) -> None:
        self.fail_turns = fail_turns
        self.stall = stall
        self.turn_attempts: list[float] = []
        self.batches: list[TurnBatch] = []
        self.outcomes: list[Outcome] = []

    async def write_turn(self, batch: TurnBatch) -> None:
        self.turn_attempts.append(trio.current_time())
        if self.stall:
            await trio.sleep_forever()
        if len(self.turn_attempts) <= self.fail_turns:
            raise StoreUnavailable("scripted outage", operation="write_turn")
        self.batches.append(batch)

    async def write_outcome(self, outcome: Outcome) -> OutcomeReceipt:
        if self.stall:
            await trio.sleep_forever()
        self.outcomes.append(outcome)
        return OutcomeReceipt("1-0", duplicate=False)

    async def load_lead(self, params: Mapping[str, str], *, call_sid: str) -> LeadContext:
        return LeadContext(params=dict(params))

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(0, 0, len(self.outcomes), 0, 0, 0)


@pytest.fixture
def spill(tmp_path: Path) -> SpillFile:
    return SpillFile(tmp_path / "spill.jsonl")


async def test_failed_writes_retry_on_the_backoff_schedule(
    autojump_clock: trio.testing.MockClock, threads_take_no_virtual_time: None,
    spill: SpillFile,
) -> None:
    store = ScriptedStore(fail_turns=3)
    async with open_call_recorder(store, "V1", "st-V1", spill=spill) as rec:
        rec.record_nowait(snapshot("V1"), [entry(0)])
        await trio.sleep(1)
        rec.finish_nowait(outcome("V1"))
    # RetryDelays(): 0.05, 0.1, 0.2 s after each failure.
    assert store.turn_attempts == pytest.approx([0.0, 0.05, 0.15, 0.35])
    assert [e.text for b in store.batches for e in b.transcript] == ["utterance 0"]
    assert store.outcomes == [outcome("V1")]


async def test_idle_call_refreshes_ttls_on_schedule(
    autojump_clock: trio.testing.MockClock, threads_take_no_virtual_time: None,
    spill: SpillFile,
) -> None:
    store = ScriptedStore()
    config = RecorderConfig(ttl_refresh_interval=600.0)
    async with open_call_recorder(store, "V2", "st-V2", spill=spill, config=config) as rec:
        rec.record_nowait(snapshot("V2"))
        await trio.sleep(1850)
    assert store.turn_attempts == pytest.approx([0.0, 600.0, 1200.0, 1800.0])
    refreshes = store.batches[1:]
    assert all(b.snapshot is None and not b.transcript for b in refreshes)


async def test_exit_is_bounded_when_redis_stalls(
    autojump_clock: trio.testing.MockClock, threads_take_no_virtual_time: None,
    spill: SpillFile,
) -> None:
    store = ScriptedStore(stall=True)
    config = RecorderConfig(write_deadline=2.0, exit_deadline=1.5)
    async with open_call_recorder(store, "V3", "st-V3", spill=spill, config=config) as rec:
        rec.record_nowait(snapshot("V3"), [entry(0)])
        await trio.testing.wait_all_tasks_blocked()
        assert store.turn_attempts == [0.0]
        ended = trio.current_time()
    # The in-flight write gets its own deadline (2.0 s), then flush + outcome 1.5 s.
    assert trio.current_time() - ended == pytest.approx(3.5)
    assert rec.outcome_destination == "spill"
    assert spill.path.read_text().count('"call_sid": "V3"') == 1


async def test_retrier_holds_a_bounded_number_of_turn_batches(spill: SpillFile) -> None:
    # Real time: the retrier replays the spill file through worker threads.
    store = ScriptedStore(fail_turns=10**6)
    async with open_outcome_retrier(store, spill, RetryDelays(0.001, 2.0, 0.002)) as retrier:
        retrier.max_turn_batches = 2
        for i in range(3):
            assert retrier.submit_turns_nowait(TurnBatch(f"B{i}"))
        assert (retrier.pending_turn_batches, retrier.dropped_turn_batches) == (2, 1)
        with trio.fail_after(5):
            while len(store.turn_attempts) < 3:  # noqa: ASYNC110 - counting retries
                await trio.sleep(0.001)
        assert retrier.pending_turn_batches == 2  # still failing: kept, in order
    assert not retrier.submit_turns_nowait(TurnBatch("late"))
    assert not retrier.submit_nowait(outcome("late"))

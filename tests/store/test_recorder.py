"""The per-call recorder and the outcome retrier against real redis-servers.

Waits here are real (worker threads talk to a real server), so nothing is
ordered by sleeping: tests poll for the state they expect under ``fail_after``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import trio

from dialogue.model import Stage
from server.store.buffer import BufferLimits, RetryDelays, open_outcome_retrier
from server.store.connection import StoreConfig, connect
from server.store.recorder import RecorderConfig, open_call_recorder
from server.store.records import TurnLatency
from server.store.redis_store import RedisBackend, RedisSessionStore
from server.store.spill import SpillFile
from tests.store.conftest import KillableRedis
from tests.store.strategies import T0, entry, outcome, snapshot

FAST = RecorderConfig(write_deadline=1.0, exit_deadline=0.3,
                      backoff=RetryDelays(initial=0.01, factor=2.0, maximum=0.05))


def ended_at() -> object:
    return T0 + timedelta(seconds=42)


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll real state (a server, worker threads) until it holds; 5 s at most."""
    with trio.fail_after(5):
        while not predicate():  # noqa: ASYNC110 - the state lives outside trio
            await trio.sleep(0.01)


@pytest.fixture
def store(backend: RedisBackend) -> RedisSessionStore:
    return RedisSessionStore(backend)


@pytest.fixture
def spill(tmp_path: Path) -> SpillFile:
    return SpillFile(tmp_path / "state" / "outcomes-spill.jsonl")


@pytest.fixture
def killable_store(killable_redis: KillableRedis, store_config: StoreConfig
                   ) -> Iterator[RedisSessionStore]:
    client = connect(killable_redis.url, store_config)
    yield RedisSessionStore(RedisBackend(client, store_config))
    client.close()


def stream_call_sids(backend: RedisBackend) -> list[str]:
    return [o.call_sid for _, o in backend.read_outcomes(count=1000)]  # type: ignore[union-attr]


async def test_turns_and_outcome_are_written(store: RedisSessionStore, spill: SpillFile) -> None:
    backend = store.backend
    async with open_call_recorder(store, "R1", "st-R1", spill=spill, config=FAST) as rec:
        for turn in range(3):
            rec.record_nowait(snapshot("R1", turns=turn), [entry(turn)],
                              [TurnLatency(turn, {"speech_end": float(turn)})])
        rec.finish_nowait(outcome("R1"))
    view = backend.read_session("R1")
    assert [e.text for e in view.transcript] == ["utterance 0", "utterance 1", "utterance 2"]
    assert [r.turn for r in view.latency] == [0, 1, 2]
    assert view.snapshot == snapshot("R1", turns=2)
    assert backend.read_outcomes(count=5)[-1][1] == outcome("R1")
    assert rec.outcome_destination == "redis"


async def test_cancelled_call_still_writes_an_outcome(store: RedisSessionStore,
                                                      spill: SpillFile) -> None:
    with trio.CancelScope() as call_scope:
        async with open_call_recorder(store, "R2", "st-R2", spill=spill, config=FAST,
                                      clock=ended_at) as rec:  # type: ignore[arg-type]
            rec.record_nowait(snapshot("R2", stage=Stage.PRESENTATION, turns=3))
            call_scope.cancel()  # the socket dropped: the call's nursery is torn down
            await trio.sleep_forever()
    assert call_scope.cancelled_caught
    [(_, written)] = store.backend.read_outcomes(count=5)
    assert not isinstance(written, Exception)
    assert (written.call_sid, written.stage, written.end_reason) == \
        ("R2", Stage.PRESENTATION, "cancelled")
    assert (written.campaign_id, written.lead_id, written.turns) == ("camp1", "lead1", 3)
    assert written.duration_s == 42.0


async def test_failing_call_propagates_its_error_unwrapped(store: RedisSessionStore,
                                                           spill: SpillFile) -> None:
    with pytest.raises(KeyError, match="boom"):
        async with open_call_recorder(store, "R3", "st-R3", spill=spill, config=FAST):
            raise KeyError("boom")
    [(_, written)] = store.backend.read_outcomes(count=5)
    assert not isinstance(written, Exception)
    assert (written.stage, written.end_reason) == (Stage.ENDED, "error:KeyError")


async def test_redis_killed_mid_call_then_restarted(
    killable_redis: KillableRedis, killable_store: RedisSessionStore, spill: SpillFile
) -> None:
    backend = killable_store.backend
    async with open_call_recorder(killable_store, "K1", "st-K1", spill=spill,
                                  config=FAST) as rec:
        rec.record_nowait(snapshot("K1", turns=0), [entry(0)])
        await wait_for(lambda: rec.turn_writes >= 1)

        killable_redis.kill()
        for turn in range(1, 6):  # the call goes on; nothing here waits for Redis
            rec.record_nowait(snapshot("K1", turns=turn), [entry(turn)])
            await trio.lowlevel.checkpoint()
        await wait_for(lambda: rec.in_outage)

        killable_redis.start()  # empty again: nothing was persisted
        await wait_for(lambda: not rec.in_outage)
        rec.record_nowait(snapshot("K1", turns=6), [entry(6)])
        rec.finish_nowait(outcome("K1"))
    view = backend.read_session("K1")
    assert [e.text for e in view.transcript] == [f"utterance {i}" for i in range(1, 7)]
    assert view.snapshot == snapshot("K1", turns=6)
    assert stream_call_sids(backend) == ["K1"]
    assert rec.outcome_destination == "redis"


async def test_failures_are_reported_once_per_outage_and_for_an_outcome_not_in_redis(
    killable_redis: KillableRedis, killable_store: RedisSessionStore, spill: SpillFile
) -> None:
    failures: list[int] = []
    async with open_call_recorder(killable_store, "F1", "st-F1", spill=spill, config=FAST,
                                  on_failure=lambda: failures.append(1)) as rec:
        rec.record_nowait(snapshot("F1", turns=0), [entry(0)])
        await wait_for(lambda: rec.turn_writes >= 1)
        assert failures == []
        killable_redis.kill()
        for turn in range(1, 4):
            rec.record_nowait(snapshot("F1", turns=turn), [entry(turn)])
            await trio.sleep(0.1)  # retried with backoff meanwhile: still one outage
        await wait_for(lambda: rec.in_outage)
        assert len(failures) == 1
        killable_redis.start()
        await wait_for(lambda: not rec.in_outage)
        killable_redis.kill()
        rec.record_nowait(snapshot("F1", turns=4), [entry(4)])
        await wait_for(lambda: rec.in_outage)
        assert len(failures) == 2
        rec.finish_nowait(outcome("F1"))
    assert rec.outcome_destination == "spill"
    assert len(failures) == 3  # the outcome did not reach Redis either


async def test_buffer_drops_oldest_turn_data_but_never_the_outcome(
    killable_redis: KillableRedis, killable_store: RedisSessionStore, spill: SpillFile
) -> None:
    config = RecorderConfig(write_deadline=1.0, exit_deadline=0.3, backoff=FAST.backoff,
                            limits=BufferLimits(max_transcript=5, max_latency=2))
    killable_redis.kill()
    async with open_call_recorder(killable_store, "K2", "st-K2", spill=spill,
                                  config=config) as rec:
        for i in range(12):
            rec.record_nowait(snapshot("K2", turns=i), [entry(i)],
                              [TurnLatency(i, {"speech_end": 0.0})])
        await wait_for(lambda: rec.in_outage)
        assert (rec.buffer.dropped_transcript, rec.buffer.dropped_latency) == (7, 10)
        killable_redis.start()
        await wait_for(lambda: not rec.in_outage)
        rec.finish_nowait(outcome("K2"))
    view = killable_store.backend.read_session("K2")
    assert [e.text for e in view.transcript] == [f"utterance {i}" for i in range(7, 12)]
    assert [r.turn for r in view.latency] == [10, 11]
    assert stream_call_sids(killable_store.backend) == ["K2"]


async def test_outcome_unwritable_at_call_end_is_retried_until_written(
    killable_redis: KillableRedis, killable_store: RedisSessionStore, spill: SpillFile
) -> None:
    async with open_outcome_retrier(killable_store, spill, FAST.backoff) as retrier:
        killable_redis.kill()
        async with open_call_recorder(killable_store, "K3", "st-K3", spill=spill,
                                      retrier=retrier, config=FAST) as rec:
            rec.record_nowait(snapshot("K3", turns=2), [entry(0), entry(1)])
            rec.finish_nowait(outcome("K3"))
        assert rec.outcome_destination == "spill"  # durable before the call's block ended
        assert spill.path.exists()
        assert (retrier.pending, retrier.pending_turn_batches) == (0, 1)
        killable_redis.start()
        await wait_for(lambda: retrier.pending_turn_batches == 0
                       and not spill.path.exists())
    assert stream_call_sids(killable_store.backend) == ["K3"]
    view = killable_store.backend.read_session("K3")
    assert view.snapshot == snapshot("K3", turns=2)
    assert [e.text for e in view.transcript] == ["utterance 0", "utterance 1"]
    assert not spill.path.exists()


async def test_shutdown_spills_and_next_start_replays_exactly_once(
    killable_redis: KillableRedis, killable_store: RedisSessionStore, spill: SpillFile
) -> None:
    killable_redis.kill()
    async with open_outcome_retrier(killable_store, spill, FAST.backoff) as retrier:
        for sid in ("S1", "S2"):
            async with open_call_recorder(killable_store, sid, f"st-{sid}", spill=spill,
                                          retrier=retrier, config=FAST) as rec:
                rec.finish_nowait(outcome(sid))
    # A replay attempt during the outage may have claimed S1's file when the
    # retrier was shut down: its outcomes wait on disk in <spill>.replaying-<pid>,
    # which the next replay picks up too (a line may even be on disk twice: the
    # outcome write dedupes). Gather them back into one file.
    files = sorted(spill.path.parent.glob(spill.path.name + "*"))
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert {json.loads(line)["call_sid"] for line in lines} == {"S1", "S2"}
    for f in files:
        f.unlink()
    # One outcome also spilled twice (e.g. by a process that died mid-replay).
    spill.path.write_text("\n".join([*lines, lines[0]]) + "\n")

    killable_redis.start()
    async with open_outcome_retrier(killable_store, spill, FAST.backoff):
        await wait_for(lambda: list(spill.path.parent.iterdir()) == [])
    assert sorted(stream_call_sids(killable_store.backend)) == ["S1", "S2"]
    assert killable_store.backend.campaign_stats("camp1")["calls"] == 2


async def test_a_retrier_that_replays_elsewhere_leaves_the_spill_file_and_says_so(
    killable_redis: KillableRedis, killable_store: RedisSessionStore, spill: SpillFile
) -> None:
    """A worker of ``voicebot serve --workers N``: only its parent replays."""
    spill.append([outcome("E0")])  # an earlier run's
    notices: list[str] = []
    async with open_outcome_retrier(killable_store, spill, FAST.backoff,
                                    replay_elsewhere=lambda: notices.append("spilled")
                                    ) as retrier:
        killable_redis.kill()
        async with open_call_recorder(killable_store, "E1", "st-E1", spill=spill,
                                      retrier=retrier, config=FAST) as rec:
            rec.finish_nowait(outcome("E1"))
        assert rec.outcome_destination == "spill"
        assert notices == ["spilled"]
        killable_redis.start()
        assert retrier.submit_nowait(outcome("E2"))
        await wait_for(lambda: retrier.written == 1)  # an attempt with Redis back
        assert not retrier.replayed.is_set()
    assert [json.loads(line)["call_sid"] for line in spill.path.read_text().splitlines()] == [
        "E0", "E1"]
    assert stream_call_sids(killable_store.backend) == ["E2"]


async def test_recorder_without_retrier_spills_when_redis_is_down(
    killable_redis: KillableRedis, killable_store: RedisSessionStore, spill: SpillFile
) -> None:
    killable_redis.kill()
    async with open_call_recorder(killable_store, "S3", "st-S3", spill=spill,
                                  config=FAST) as rec:
        rec.record_nowait(snapshot("S3", stage=Stage.CLOSING))
    assert rec.outcome_destination == "spill"
    [line] = spill.path.read_text().splitlines()
    assert json.loads(line)["stage"] == "CLOSING"


async def test_idle_call_keeps_its_ttl_alive(store: RedisSessionStore, spill: SpillFile,
                                             redis_client: redis.Redis) -> None:
    config = RecorderConfig(ttl_refresh_interval=0.05, backoff=FAST.backoff)
    key = store.backend.keys.session("R4")
    async with open_call_recorder(store, "R4", "st-R4", spill=spill, config=config) as rec:
        rec.record_nowait(snapshot("R4"))
        await wait_for(lambda: rec.turn_writes >= 1)
        redis_client.expire(key, 100)
        await wait_for(lambda: redis_client.ttl(key) > 3000)
        rec.finish_nowait(outcome("R4"))


async def test_exit_never_waits_long_for_a_dead_redis(
    killable_redis: KillableRedis, killable_store: RedisSessionStore, spill: SpillFile
) -> None:
    killable_redis.kill()
    start = trio.current_time()
    async with open_call_recorder(killable_store, "S4", "st-S4", spill=spill,
                                  config=FAST) as rec:
        for i in range(5):
            rec.record_nowait(snapshot("S4", turns=i), [entry(i)])
    assert trio.current_time() - start < FAST.exit_deadline + 1.0
    assert rec.outcome_destination == "spill"


async def test_nothing_raises_into_the_call_even_when_spill_fails(
    killable_redis: KillableRedis, killable_store: RedisSessionStore, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    killable_redis.kill()
    async with open_call_recorder(killable_store, "S5", "st-S5",
                                  spill=SpillFile(blocker / "spill.jsonl"), config=FAST) as rec:
        rec.finish_nowait(outcome("S5"))
    assert rec.outcome_destination == "log"
    [critical] = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert "OUTCOME NOT STORED" in critical.getMessage()
    assert "call_sid='S5'" in critical.getMessage()


async def test_the_call_may_mutate_its_records_after_handing_them_over(
    store: RedisSessionStore, spill: SpillFile
) -> None:
    async with open_call_recorder(store, "R5", "st-R5", spill=spill, config=FAST) as rec:
        snap = snapshot("R5")
        snap.slots["need"] = "crm"
        marks = {"speech_end": 1.0}
        rec.record_nowait(snap, latency=[TurnLatency(0, marks)])
        snap.slots["need"] = "changed later"
        marks["decided"] = 2.0
        rec.finish_nowait(outcome("R5"))
    view = store.backend.read_session("R5")
    assert view.snapshot is not None
    assert view.snapshot.slots == {"need": "crm"}
    assert view.latency == (TurnLatency(0, {"speech_end": 1.0}),)

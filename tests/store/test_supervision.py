"""Redis supervision: a dead embedded server is noticed, reported and restarted;
outcomes are never held only in memory while Redis is down; calls a crashed
process left behind get exactly one ``lost`` outcome. Real servers, real clock.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from server.store.connection import StoreConfig
from server.store.interface import TurnBatch
from server.store.lost import sweep_lost_calls
from server.store.redis_store import RedisBackend, live_field
from server.store.service import open_store_service
from server.store.spill import SpillFile
from server.store.supervisor import SupervisorConfig
from tests.store.strategies import outcome, snapshot, wait_dead

FAST = SupervisorConfig(check_interval=0.1, ping_deadline=0.5, failures_to_down=2)
NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


async def wait_for(condition: object, seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - polling a process
            await trio.sleep(0.02)


async def test_a_killed_embedded_server_is_noticed_reported_and_restarted_from_its_aof(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    spill = SpillFile(tmp_path / "spill.jsonl")
    seen: list[bool] = []
    async with open_store_service(spill=spill, embedded_data_dir=tmp_path / "redis",
                                  supervisor=FAST) as service:
        service.health.listen(seen.append)
        backend = service.store.backend
        await trio.to_thread.run_sync(backend.write_outcome, outcome("K1"))
        pid = int(backend.client.info("server")["process_id"])
        await trio.sleep(1.1)  # appendfsync everysec: K1 is on disk
        os.kill(pid, signal.SIGKILL)
        await wait_dead(pid)  # reaped by the supervisor: no zombie left
        await wait_for(lambda: service.health.outages == 1, 5.0)
        await wait_for(lambda: service.health.up)
        new_pid = int(backend.client.info("server")["process_id"])
        rows = await trio.to_thread.run_sync(lambda: backend.read_outcomes(count=10))
    assert new_pid != pid
    assert [o.call_sid for _, o in rows] == ["K1"]  # type: ignore[union-attr]
    assert seen[:3] == [True, False, True]
    assert service.health.restarts == 1
    await wait_dead(new_pid)


async def test_while_redis_is_down_an_ended_calls_outcome_is_on_disk_at_once(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    dead = f"unix://{tmp_path}/nobody.sock"
    async with open_store_service(dead, config=store_config, spill=spill,
                                  supervisor=FAST) as service:
        await wait_for(lambda: not service.health.up, 5.0)
        async with service.open_call_recorder("D1", "st-D1") as recorder:
            recorder.record_nowait(snapshot("D1"))
            recorder.finish_nowait(outcome("D1"))
        assert recorder.outcome_destination == "spill"
        # Still inside the service: nothing waits in memory for a shutdown spill.
        lines = [json.loads(line) for line in spill.path.read_text().splitlines()]
        assert [x["call_sid"] for x in lines] == ["D1"]
        assert service.retrier.pending == 0


async def test_a_failed_retrier_attempt_spills_its_queue_at_once(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    dead = f"unix://{tmp_path}/nobody.sock"
    async with open_store_service(dead, config=store_config, spill=spill,
                                  supervisor=SupervisorConfig(check_interval=60)) as service:
        assert service.retrier.submit_nowait(outcome("R1"))
        await wait_for(lambda: spill.path.exists())
        assert service.retrier.pending == 0
        assert [json.loads(x)["call_sid"] for x in spill.path.read_text().splitlines()] == ["R1"]


def test_calls_left_by_a_dead_instance_get_one_lost_outcome(backend: RedisBackend) -> None:
    keys, client = backend.keys, backend.client
    for sid in ("L1", "L2", "L3"):
        backend.write_turn(replace(_batch(sid), live_owner="dead-1" if sid != "L3" else "me"))
    backend.write_turn(replace(_batch("L4"), live_owner="alive-2"))
    backend.heartbeat("alive-2", 30)
    client.delete(keys.session("L2"))  # expired snapshot: still an outcome
    assert sweep_lost_calls(backend, "me", NOW) == 2
    assert sweep_lost_calls(backend, "me", NOW) == 0  # a second sweep adds nothing
    rows = backend.read_outcomes(count=10)
    got = {o.call_sid: o for _, o in rows}  # type: ignore[union-attr]
    assert set(got) == {"L1", "L2"}
    assert all(o.end_reason == "lost" for o in got.values())  # type: ignore[union-attr]
    assert got["L1"].turns == snapshot("L1").turns  # type: ignore[union-attr]
    assert got["L2"].stream_sid == "st-L2"  # type: ignore[union-attr]
    left = {field for field, _ in backend.live_calls()}
    assert left == {live_field("L3", "st-L3"), live_field("L4", "st-L4")}  # mine, and alive
    # A real outcome arriving after the sweep is a duplicate, not a second entry.
    again = backend.write_outcome(outcome("L1"))
    assert again.duplicate


def test_an_outcome_write_removes_the_live_registration(backend: RedisBackend) -> None:
    backend.write_turn(replace(_batch("W1"), live_owner="me"))
    assert backend.live_calls() == [(live_field("W1", "st-W1"), "me")]
    backend.write_outcome(outcome("W1"))
    assert backend.live_calls() == []


def _batch(call_sid: str) -> TurnBatch:
    return TurnBatch(call_sid, snapshot(call_sid), stream_sid=f"st-{call_sid}")


async def test_a_hung_embedded_server_is_killed_and_restarted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    spill = SpillFile(tmp_path / "spill.jsonl")
    config = SupervisorConfig(check_interval=0.1, ping_deadline=0.3, hung_after=3)
    async with open_store_service(spill=spill, embedded_data_dir=tmp_path / "redis",
                                  supervisor=config) as service:
        backend = service.store.backend
        pid = int(backend.client.info("server")["process_id"])
        os.kill(pid, signal.SIGSTOP)  # alive, but answering nothing
        await wait_for(lambda: not service.health.up, 5.0)
        await wait_for(lambda: service.health.up and service.health.restarts == 1, 15.0)
        new_pid = int(backend.client.info("server")["process_id"])
    assert new_pid != pid
    await wait_dead(pid)


async def test_the_spill_file_is_replayed_before_any_call_is_called_lost(
    store_config: StoreConfig, redis_url: str, tmp_path: Path
) -> None:
    """A predecessor crashed after spilling its call's real outcome: that outcome,
    not a 'lost' one, is what the stream keeps."""
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append([outcome("P1")])
    from server.store.connection import connect

    backend = RedisBackend(connect(redis_url, store_config), store_config)
    backend.write_turn(replace(_batch("P1"), live_owner="crashed-1"))
    eager = SupervisorConfig(check_interval=0.05, sweep_interval=0.05, lost_grace=0.0)
    async with open_store_service(redis_url, config=store_config, spill=spill,
                                  supervisor=eager) as service:
        await wait_for(lambda: service.retrier.replayed.is_set())
        await wait_for(lambda: backend.live_calls() == [])
    [(_, written)] = backend.read_outcomes(count=10)
    assert written.end_reason == outcome("P1").end_reason  # type: ignore[union-attr]
    backend.close()


async def test_orphans_wait_out_the_grace_before_they_are_lost(
    store_config: StoreConfig, redis_url: str,
) -> None:
    from server.store.connection import connect
    from server.store.lost import LostCallSweeper
    from server.store.redis_store import RedisSessionStore

    backend = RedisBackend(connect(redis_url, store_config), store_config)
    backend.write_turn(replace(_batch("G1"), live_owner="gone"))
    sweeper = LostCallSweeper(RedisSessionStore(backend), "me", lambda: NOW, grace=0.5)
    assert await sweeper.sweep() == 0  # first seen now
    await trio.sleep(0.2)
    assert await sweeper.sweep() == 0  # not yet
    await trio.sleep(0.4)
    assert await sweeper.sweep() == 1
    assert backend.read_outcomes(count=5)[0][1].end_reason == "lost"  # type: ignore[union-attr]
    backend.close()

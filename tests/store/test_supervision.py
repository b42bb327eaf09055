"""Redis supervision: a dead embedded server is noticed, reported and restarted;
outcomes are never held only in memory while Redis is down; calls a crashed
process left behind get exactly one ``lost`` outcome. Real servers, real clock.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing

from server.store.buffer import RetryDelays
from server.store.connection import StoreConfig
from server.store.embedded import EmbeddedRedis, open_embedded_redis
from server.store.exceptions import StoreUnavailable
from server.store.health import StoreHealth
from server.store.interface import TurnBatch
from server.store.lost import LostCallSweeper, sweep_lost_calls
from server.store.redis_store import RedisBackend, RedisSessionStore, live_field
from server.store.service import open_store_service
from server.store.spill import SpillFile
from server.store.supervisor import SupervisorConfig, supervise_redis
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


class _FlakyServer:
    """An embedded redis-server stand-in whose restarts fail ``failing`` times
    (as ``Popen`` does when the binary is gone) before one succeeds."""

    url = "unix:///nowhere.sock"
    socket_path = Path("/nowhere.sock")

    def __init__(self) -> None:
        self.up = True
        self.failing = 0
        self.attempts: list[float] = []  # trio time of each respawn
        self.last_pid = 100

    @property
    def pid(self) -> int:
        return self.last_pid

    def alive(self) -> bool:
        return self.up

    def respawn(self) -> None:
        self.attempts.append(trio.current_time())
        if self.failing:
            self.failing -= 1
            raise FileNotFoundError(2, "No such file or directory", "redis-server")
        self.up = True
        self.last_pid += 1

    def wait_ready(self) -> None:
        return None

    def kill(self) -> None:
        self.up = False


class _Heartbeat:
    """A ``LostCallSweeper`` stand-in: the ping answers while the server is up."""

    def __init__(self, server: _FlakyServer) -> None:
        self.server = server
        self.beats = 0

    async def heartbeat(self) -> None:
        if not self.server.up:
            raise StoreUnavailable("down", operation="heartbeat")
        self.beats += 1

    async def sweep(self) -> int:
        return 0


async def _until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(600):  # virtual seconds
        while not condition():  # noqa: ASYNC110 - polling on virtual time
            await trio.sleep(0.01)


async def test_failed_restarts_back_off_exponentially_up_to_the_cap_then_recover(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _FlakyServer()
    embedded = EmbeddedRedis(server)  # type: ignore[arg-type]
    sweeper = _Heartbeat(server)
    health = StoreHealth()
    seen: list[bool] = []
    health.listen(seen.append)
    config = SupervisorConfig()  # the production intervals: 1 s checks, 0.5 s … 30 s backoff
    async with trio.open_nursery() as nursery:
        await nursery.start(supervise_redis, sweeper, health, embedded, config,  # type: ignore[arg-type]
                            trio.Event())
        await trio.sleep(5.5)
        assert health.up
        server.failing = 8  # the binary is gone for eight attempts
        server.kill()
        died = trio.current_time()
        await _until(lambda: health.outages == 1 and health.up)
        assert len(server.attempts) == 9
        assert server.attempts[0] - died <= config.check_interval  # noticed at the next check
        gaps = [b - a for a, b in zip(server.attempts, server.attempts[1:], strict=False)]
        assert gaps == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0])
        assert (health.outages, health.restarts) == (1, 1)
        beats = sweeper.beats
        await trio.sleep(3.0)
        assert sweeper.beats >= beats + 2  # supervised again: pinged every second
        # Recovered: the backoff starts over, the next death is restarted at once.
        server.kill()
        died = trio.current_time()
        await _until(lambda: health.outages == 2 and health.up)
        assert len(server.attempts) == 10
        assert server.attempts[-1] - died <= config.check_interval
        assert (health.outages, health.restarts) == (2, 2)
        assert seen == [True, False, True, False, True]  # down throughout each backoff
        nursery.cancel_scope.cancel()


async def test_a_restart_without_the_binary_backs_off_and_recovers_once_it_is_back(
    store_config: StoreConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real redis-server, whose binary is unavailable for two restarts."""
    from server.store.connection import connect

    config = SupervisorConfig(check_interval=0.05, ping_deadline=0.5,
                              restart_backoff=RetryDelays(initial=0.2, factor=2.0, maximum=1.0))
    health = StoreHealth()
    async with open_embedded_redis(tmp_path / "redis") as embedded:
        backend = RedisBackend(connect(embedded.url, store_config), store_config)
        sweeper = LostCallSweeper(RedisSessionStore(backend), "me", lambda: NOW)
        backend.write_outcome(outcome("B1"))
        server = embedded.server
        real_args = server._args
        missing = str(tmp_path / "no-redis-server")
        attempts: list[float] = []

        def args() -> list[str]:
            attempts.append(trio.current_time())
            return [missing, *real_args()[1:]] if len(attempts) <= 2 else real_args()

        monkeypatch.setattr(server, "_args", args)
        async with trio.open_nursery() as nursery:
            await nursery.start(supervise_redis, sweeper, health, embedded, config, trio.Event())
            await trio.sleep(1.1)  # appendfsync everysec: B1 is on disk
            pid = embedded.pid
            os.kill(pid, signal.SIGKILL)
            await wait_for(lambda: not health.up, 5.0)
            await wait_for(lambda: health.up, 10.0)
            nursery.cancel_scope.cancel()
        assert len(attempts) == 3
        assert attempts[1] - attempts[0] >= 0.2  # backed off: 0.2 s, then 0.4 s
        assert attempts[2] - attempts[1] >= 0.4
        assert (health.outages, health.restarts) == (1, 1)
        assert embedded.pid != pid
        rows = await trio.to_thread.run_sync(lambda: backend.read_outcomes(count=10))
        assert [o.call_sid for _, o in rows] == ["B1"]  # type: ignore[union-attr]
        backend.close()
    await wait_dead(pid)

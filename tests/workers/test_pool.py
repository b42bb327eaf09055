"""The pool's rules with stand-in worker processes (real processes that speak
the link, or fail to): a start-up that fails stops the parent with an error,
a worker that stops reporting is killed and started again."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio

from server.config import ServerConfig
from server.workers.exceptions import WorkerStartError
from server.workers.link import Announce, encode_announce
from server.workers.metrics import PoolMetrics
from server.workers.pool import ANNOUNCE_QUEUE, PoolTimings, WorkerPool
from server.workers.process import WorkerLaunch
from server.workers.serve import serve_workers

CONFIG = ServerConfig(port=0, control_port=0, store=False, echo=True, workers=2)
WAIT = 30.0

#: Reports ready once, then hangs (never reports again).
REPORTS_ONCE = """
import os, socket, time
from server.workers.link import StatusReport, WorkerIdentity, encode_message
identity = WorkerIdentity.from_environ(os.environ)
socket.socket(fileno=identity.link_fd).sendall(encode_message(StatusReport(True, 0, ())))
time.sleep(120)
"""


#: Reports ready once, then writes whatever its parent sends to $ANNOUNCED<index>.
KEEPS_ANNOUNCES = """
import os, socket
from server.workers.link import StatusReport, WorkerIdentity, encode_message
identity = WorkerIdentity.from_environ(os.environ)
link = socket.socket(fileno=identity.link_fd)
link.sendall(encode_message(StatusReport(True, 0, ())))
with open(os.environ["ANNOUNCED"] + str(identity.index), "ab", buffering=0) as out:
    while data := link.recv(4096):
        out.write(data)
"""


async def test_an_announced_call_is_passed_on_to_every_worker(tmp_path: Path) -> None:
    announced = tmp_path / "announced-"
    pool = WorkerPool(2, WorkerLaunch([sys.executable, "-c", KEEPS_ANNOUNCES],
                                      {**os.environ, "ANNOUNCED": str(announced)}),
                      PoolMetrics())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.serve)
        with trio.fail_after(WAIT):
            await pool.all_started.wait()
        pool.announce_nowait({"call_sid": "CA1", "lead_id": "L7"}, 8000)
        expected = encode_announce(Announce({"call_sid": "CA1", "lead_id": "L7"}, 8000))
        files = [Path(f"{announced}{index}") for index in (0, 1)]
        with trio.fail_after(WAIT):
            while not all(f.exists() and f.read_bytes() == expected  # noqa: ASYNC110
                          for f in files):
                await trio.sleep(0.02)
        assert pool.metrics.registry.get_sample_value(
            "voicebot_announces_dropped_total", {"worker": "0"}) is None
        # A burst faster than a worker takes it: its idle sending task takes one,
        # its queue ANNOUNCE_QUEUE more, the rest are dropped (counted), and the
        # parent never waits.
        for _ in range(100):
            pool.announce_nowait({"call_sid": "CA2"}, 8000)
        for worker in ("0", "1"):
            assert pool.metrics.registry.get_sample_value(
                "voicebot_announces_dropped_total", {"worker": worker}) \
                == 100 - 1 - ANNOUNCE_QUEUE
        with trio.fail_after(WAIT):
            await pool.drain(grace=0.0)


async def test_workers_that_exit_during_start_up_fail_the_parent() -> None:
    with trio.fail_after(WAIT), pytest.raises(WorkerStartError) as failed:
        await serve_workers(CONFIG, command=[sys.executable, "-c", "raise SystemExit(3)"])
    assert failed.value.status == 3
    assert "before it was ready" in str(failed.value)


async def test_a_worker_that_is_never_ready_is_killed_and_fails_the_parent() -> None:
    timings = PoolTimings(start_deadline=0.5, check_interval=0.05)
    with trio.fail_after(WAIT), pytest.raises(WorkerStartError) as failed:
        await serve_workers(CONFIG, command=[sys.executable, "-c", "import time; time.sleep(60)"],
                            timings=timings)
    assert failed.value.status == -9  # SIGKILL


async def test_a_worker_that_stops_reporting_is_killed_and_started_again() -> None:
    metrics = PoolMetrics()
    timings = PoolTimings(stale_after=0.3, hung_after=1.0, check_interval=0.05)
    pool = WorkerPool(1, WorkerLaunch([sys.executable, "-c", REPORTS_ONCE], dict(os.environ)),
                      metrics, timings=timings)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.serve)
        with trio.fail_after(WAIT):
            await pool.all_started.wait()
        assert pool.ready()
        first = pool.pids()[0]
        with trio.fail_after(WAIT):
            while pool.ready():  # noqa: ASYNC110 - the pool's view of another process
                await trio.sleep(0.02)
        assert pool.not_ready_reason() in {"worker 0 not reporting", "worker 0 down",
                                           "worker 0 starting"}
        with trio.fail_after(WAIT):
            while pool.pids().get(0, first) == first:  # noqa: ASYNC110
                await trio.sleep(0.02)
        assert metrics.registry.get_sample_value(
            "voicebot_worker_restarts_total", {"worker": "0"}) >= 1
        with trio.fail_after(WAIT):
            await pool.drain(grace=0.0)
        assert pool.not_ready_reason() == "draining"
        assert pool.pids() == {}

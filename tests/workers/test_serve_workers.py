"""``voicebot serve --workers 2`` as real processes on real sockets: calls spread
over both workers, one control port for all, a killed worker comes back, a
SIGTERM drains them together, one embedded Redis and one spill replayer, and
nothing is left running after the parent is gone, even when it is SIGKILLed.

Processes start on the real clock (a few seconds each); every wait is bounded
by a generous deadline, and nothing asserts a duration.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import ConnectionClosed

from dialogue.model import Stage
from server.store.connection import StoreConfig, connect
from server.store.embedded import find_running_embedded
from server.store.exceptions import StoreUnavailable
from server.store.records import Outcome
from server.store.redis_store import RedisBackend
from server.store.spill import SpillFile
from tests.server.test_crash_recovery import HANDED_OFF, REDIS_PID, Serve
from tests.server.test_handshake import upgrade_answer
from tests.server.test_store_wiring import (  # noqa: F401 - backend is a fixture
    WAIT,
    _outcomes,
    backend,
    begin_call,
    dial,
    hang_up,
    read_until_closed,
    speak_and_wait_for_echo,
)

pytestmark = pytest.mark.slow

STARTING = re.compile(rb'msg="starting workers" workers=\d+ port=(\d+) control_port=(\d+)')
WORKER_STARTED = re.compile(rb'msg="worker started" worker=(\d+) pid=(\d+)')
SPILL_REPLAY = re.compile(rb"^.*msg=\"spill replay: .*$", re.MULTILINE)
REDIS_RESTARTED = re.compile(rb"embedded redis-server restarted, pid (\d+)")
#: Two workers compile and start side by side on a shared machine.
START_WAIT = 120.0
#: Concurrent calls that land on one worker alone with probability 2**-15.
SPREAD_CALLS = 16

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _start(serve: Serve, nursery: trio.Nursery) -> tuple[int, int]:
    """Start ``serve`` and wait until every worker is ready; (port, control port)."""
    await serve.start(nursery)
    match = await serve.wait_for(STARTING)
    port, control = int(match.group(1)), int(match.group(2))
    await _wait_ready(serve, control)
    return port, control


async def _wait_ready(serve: Serve, control: int) -> None:
    async with httpx.AsyncClient() as client:
        with trio.fail_after(START_WAIT):
            while True:
                assert serve.process is not None
                if serve.process.returncode is not None:
                    raise AssertionError(f"voicebot serve exited:\n{serve.log.decode()}")
                try:
                    if (await client.get(f"http://127.0.0.1:{control}/readyz")).status_code \
                            == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.2)


async def _get(control: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{control}{path}")


async def _samples(control: int) -> Samples:
    text = (await _get(control, "/metrics")).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _per_worker(samples: Samples, name: str, **labels: str) -> dict[str, float]:
    """``worker`` label → value, for the samples of ``name`` with ``labels``."""
    out: dict[str, float] = {}
    for (sample, sample_labels), value in samples.items():
        found = dict(sample_labels)
        if sample == name and "worker" in found and labels.items() <= found.items():
            out[found["worker"]] = out.get(found["worker"], 0.0) + value
    return out


def _worker_pids(serve: Serve) -> dict[int, int]:
    """Worker index → pid of its newest process, from the parent's log."""
    return {int(m.group(1)): int(m.group(2)) for m in WORKER_STARTED.finditer(serve.log)}


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _eventually(check: Callable[[], Awaitable[bool]], deadline: float = WAIT) -> None:
    """Poll ``check`` until it holds: it reads another process's state, which
    sends us no event to wait on."""
    with trio.fail_after(deadline):
        while not await check():  # noqa: ASYNC110 - see the docstring
            await trio.sleep(0.1)


async def _wait_until_gone(pids: list[int]) -> None:
    async def gone() -> bool:
        return not any(_running(pid) for pid in pids)

    await _eventually(gone, WAIT * 2)


async def _answer(port: int) -> tuple[int, bytes]:
    """``upgrade_answer``, tried again when the connection was reset: a worker
    that has drained closes its listener, and a connection the kernel had
    queued for it at that instant is reset (the others go to the workers that
    still listen)."""
    for _ in range(4):
        try:
            return await upgrade_answer(port)
        except (trio.BrokenResourceError, OSError):
            await trio.sleep(0.05)
    return await upgrade_answer(port)


async def _calls_on_each_worker(port: int, control: int, tag: str) -> dict[str, float]:
    """Hold ``SPREAD_CALLS`` calls open at once; the live calls per worker, as
    the control port shows them. Then hang them all up."""
    async with AsyncExitStack() as stack:
        calls = []
        for k in range(SPREAD_CALLS):
            ws = await stack.enter_async_context(dial(port))
            await begin_call(ws, f"CA-{tag}-{k}")
            calls.append((ws, f"CA-{tag}-{k}"))
        live: dict[str, float] = {}

        async def all_live() -> bool:
            live.update(_per_worker(await _samples(control), "voicebot_active_calls"))
            return sum(live.values()) == SPREAD_CALLS

        await _eventually(all_live)
        for ws, call_sid in calls:
            await hang_up(ws, call_sid)
    return live


async def test_two_workers_share_the_port_and_the_control_port_and_a_killed_one_comes_back(
    tmp_path: Path,
) -> None:
    serve = Serve(tmp_path, "--workers", "2", "--no-store")
    async with trio.open_nursery() as nursery:
        try:
            port, control = await _start(serve, nursery)
            pids = _worker_pids(serve)
            assert sorted(pids) == [0, 1]
            assert (await _get(control, "/readyz")).text == "ready\n"

            live = await _calls_on_each_worker(port, control, "spread")
            assert sorted(live) == ["0", "1"]
            assert all(calls > 0 for calls in live.values()), live  # the kernel used both
            async def all_ended() -> bool:
                ended = _per_worker(await _samples(control), "voicebot_calls_total",
                                    reason="stop")
                return sum(ended.values()) == SPREAD_CALLS

            await _eventually(all_ended)

            os.kill(pids[0], signal.SIGKILL)
            async def restarted() -> bool:
                return _worker_pids(serve)[0] != pids[0]

            await _eventually(restarted)
            assert b"worker exited unexpectedly" in serve.log
            await _wait_ready(serve, control)
            samples = await _samples(control)
            assert _per_worker(samples, "voicebot_worker_restarts_total") == {"0": 1.0, "1": 0.0}
            assert _per_worker(samples, "voicebot_worker_up") == {"0": 1.0, "1": 1.0}
            live = await _calls_on_each_worker(port, control, "after")
            assert all(live.get(worker, 0) > 0 for worker in ("0", "1")), live

            assert serve.process is not None
            serve.process.send_signal(signal.SIGTERM)
            with trio.fail_after(WAIT):
                assert await serve.process.wait() == 0
        finally:
            if serve.process is not None and serve.process.returncode is None:
                await serve.kill()
    await _wait_until_gone([pids[0], pids[1], _worker_pids(serve)[0]])


async def test_sigterm_drains_all_workers_together_with_a_full_house(
    redis_url: str, store_config: StoreConfig, backend: RedisBackend,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {"REDIS_URL": redis_url, "VOICEBOT_REDIS_KEY_PREFIX": store_config.prefix,
           "VOICEBOT_SPILL_PATH": str(tmp_path / "spill.jsonl")}
    serve = Serve(tmp_path, "--workers", "2", "--max-calls", "2", "--grace", "3", env=env)
    async with trio.open_nursery() as nursery:
        try:
            port, control = await _start(serve, nursery)
            pids = list(_worker_pids(serve).values())
            async with dial(port) as first, dial(port) as second:
                for ws, call_sid in ((first, "CA-ends"), (second, "CA-cut")):
                    await begin_call(ws, call_sid)
                    assert await speak_and_wait_for_echo(ws, call_sid) > 0
                # The limit is the total: whichever worker is asked, the house is full.
                for _ in range(4):
                    assert await upgrade_answer(port) == (503, b"too many calls\n")

                assert serve.process is not None
                serve.process.send_signal(signal.SIGTERM)
                async def draining() -> bool:
                    return (await _answer(port))[1] == b"shutting down\n"

                await _eventually(draining)
                for _ in range(4):
                    assert await _answer(port) == (503, b"shutting down\n")
                readiness = await _get(control, "/readyz")
                assert (readiness.status_code, readiness.text) == (503, "draining\n")

                await hang_up(first, "CA-ends")  # within the grace period: a normal end
                with pytest.raises(ConnectionClosed) as cut:
                    await read_until_closed(second)  # the grace period runs out
                assert cut.value.reason is not None
                assert cut.value.reason.code == 1001
            with trio.fail_after(WAIT):
                assert await serve.process.wait() == 0
        finally:
            if serve.process is not None and serve.process.returncode is None:
                await serve.kill()
    await _wait_until_gone(pids)
    outcomes = {(o.call_sid, o.end_reason) for o in _outcomes(backend)}
    assert outcomes == {("CA-ends", "stop"), ("CA-cut", "shutdown")}, serve.log.decode()[-4000:]


def _spilled(call_sid: str) -> Outcome:
    return Outcome(call_sid=call_sid, stream_sid=f"st-{call_sid}", stage=Stage.INTRO,
                   ended_at=datetime.now(UTC), end_reason="stop")


async def test_one_embedded_redis_one_spill_replayer_and_no_orphan_after_a_parent_sigkill(
    tmp_path: Path,
) -> None:
    SpillFile(tmp_path / "outcomes-spill.jsonl").append([_spilled("CA-earlier-run")])
    serve = Serve(tmp_path, "--workers", "2")
    redis_pid = 0
    async with trio.open_nursery() as nursery:
        try:
            port, _ = await _start(serve, nursery)
            redis_pid = int((await serve.wait_for(REDIS_PID)).group(1))
            pids = list(_worker_pids(serve).values())
            url = find_running_embedded(tmp_path / "redis")
            assert url is not None
            store = RedisBackend(connect(url, StoreConfig()), StoreConfig())
            try:
                # A worker cannot reach Redis (stopped) when its call ends: it
                # spills the outcome and tells the parent, which replays it.
                async with dial(port) as ws:
                    await begin_call(ws, "CA-spilled")
                    os.kill(redis_pid, signal.SIGSTOP)
                    await hang_up(ws, "CA-spilled")
                handed = await serve.wait_for(HANDED_OFF)
                async def both_written() -> bool:
                    try:
                        return len(_outcomes(store)) >= 2
                    except StoreUnavailable:  # still stopped, or restarting
                        return False

                await _eventually(both_written, WAIT * 4)  # the parent restarts the hung server
                await trio.sleep(1.0)  # a duplicate, were there one, would land by now
                outcomes = _outcomes(store)
            finally:
                store.client.close()
            assert serve.process is not None
            await serve.kill()  # SIGKILL: no drain, no goodbye
        finally:
            if redis_pid and _running(redis_pid):
                os.kill(redis_pid, signal.SIGKILL)
            if serve.process is not None and serve.process.returncode is None:
                await serve.kill()
    restarted = [int(m.group(1)) for m in REDIS_RESTARTED.finditer(serve.log)]
    assert restarted, serve.log.decode()[-4000:]  # the stopped one was replaced
    await _wait_until_gone([*pids, redis_pid, *restarted])
    assert sorted(o.call_sid for o in outcomes) == ["CA-earlier-run", "CA-spilled"], \
        serve.log.decode()[-4000:]
    assert handed.group(1) == b"spill"
    replays = SPILL_REPLAY.findall(serve.log)
    assert len(replays) >= 2, serve.log.decode()[-4000:]  # at start, and after the spill
    assert not [line for line in replays if b" worker=" in line]  # only the parent replays


@pytest.mark.parametrize("option", ["--port", "--control-port"])
def test_a_port_in_use_stops_the_parent_before_any_worker(tmp_path: Path, option: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = {"--port": "0", "--control-port": "0", option: str(taken.getsockname()[1])}
        done = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--echo", "--no-store", "--workers", "2",
             *[part for item in ports.items() for part in item]],
            env={**os.environ, "VOICEBOT_STATE_DIR": str(tmp_path)}, capture_output=True,
            timeout=60, check=False)
    assert done.returncode == 1
    assert b"voicebot serve: cannot listen: " in done.stderr
    assert b"Traceback" not in done.stderr
    assert b"worker started" not in done.stderr

"""``voicebot serve`` as a child process, with its embedded Redis: crash, restart,
and the outcome of a call that had ended is there exactly once.

The embedded redis-server is SIGKILLed; a call then ends (its outcome cannot go
to Redis); the server is SIGKILLed too (no shutdown spill, no drain); a new
``voicebot serve`` on the same state directory must bring that outcome into
``calls:outcomes`` — from the spill file, or from Redis if the supervisor had
restarted it in time — once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import redis
import trio

from server.store.embedded import find_running_embedded
from tests.server.test_store_wiring import (
    WAIT,
    begin_call,
    dial,
    hang_up,
    speak_and_wait_for_echo,
)

PORT = re.compile(rb"msg=listening port=(\d+)")
REDIS_PID = re.compile(rb"embedded redis-server pid (\d+)")
HANDED_OFF = re.compile(rb'msg="call outcome handed off" destination=(\w+)')


class Serve:
    """One ``voicebot serve --echo`` child and its log; ``options`` come after
    the defaults (so they win), ``env`` is added to the environment."""

    def __init__(self, state: Path, *options: str, env: Mapping[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        environ |= {"VOICEBOT_STATE_DIR": str(state), **(env or {})}
        self.command = [sys.executable, "-m", "server", "serve", "--echo", "--port", "0",
                        "--control-port", "0", "--grace", "0.2", *options]
        self.env = environ
        self.log = bytearray()
        self.process: trio.Process | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        self.process = await trio.lowlevel.open_process(
            self.command, env=self.env, stderr=subprocess.PIPE)
        nursery.start_soon(self._read_log)

    async def _read_log(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.receive_some():
            self.log.extend(chunk)

    async def wait_for(self, pattern: re.Pattern[bytes], after: int = 0) -> re.Match[bytes]:
        with trio.fail_after(WAIT * 2):
            while (match := pattern.search(self.log, after)) is None:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(f"voicebot serve exited:\n{self.log.decode()}")
                await trio.sleep(0.02)
        return match

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


async def test_an_ended_calls_outcome_survives_redis_death_then_a_server_kill(
    tmp_path: Path,
) -> None:
    first, second = Serve(tmp_path), Serve(tmp_path)
    async with trio.open_nursery() as nursery:
        try:
            await first.start(nursery)
            port = int((await first.wait_for(PORT)).group(1))
            redis_pid = int((await first.wait_for(REDIS_PID)).group(1))
            async with dial(port) as ws:
                await begin_call(ws, "CA-crash")
                assert await speak_and_wait_for_echo(ws, "CA-crash") > 0
                os.kill(redis_pid, signal.SIGKILL)
                await hang_up(ws, "CA-crash")
            handed = await first.wait_for(HANDED_OFF)
            await first.kill()  # no drain, no shutdown spill

            await second.start(nursery)
            await second.wait_for(PORT)
            url = find_running_embedded(tmp_path / "redis")
            assert url is not None
            client = redis.Redis.from_url(url)
            try:
                with trio.fail_after(WAIT):
                    while not (rows := client.xrange("calls:outcomes")):  # noqa: ASYNC110
                        await trio.sleep(0.05)
                await trio.sleep(1.0)  # a duplicate, were there one, would land by now
                rows = client.xrange("calls:outcomes")
            finally:
                client.close()
            second.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            with trio.fail_after(WAIT):
                assert await second.process.wait() == 0  # type: ignore[union-attr]
        finally:
            for serve in (first, second):
                if serve.process is not None and serve.process.returncode is None:
                    await serve.kill()
    entries = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rows]
    assert [(e["call_sid"], e["end_reason"]) for e in entries] == [("CA-crash", "stop")], (
        handed.group(0), first.log.decode()[-3000:])
    assert handed.group(1) in (b"spill", b"redis")  # never only in memory

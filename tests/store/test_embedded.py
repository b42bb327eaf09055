"""The embedded redis-server: starts, answers, stops with us, leaves no orphan."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import trio

from server.store.embedded import EmbeddedRedisServer, open_embedded_redis
from server.store.exceptions import EmbeddedRedisError
from tests.store.strategies import alive, read_line, stop_child, wait_dead

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys, trio
from server.store.embedded import open_embedded_redis

async def main():
    async with open_embedded_redis() as server:
        print(server.pid, server.socket_path, flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


async def test_starts_on_a_private_socket_and_stops_cleanly() -> None:
    async with open_embedded_redis() as server:
        assert alive(server.pid)
        run_dir = server.socket_path.parent
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        client = redis.Redis(unix_socket_path=str(server.socket_path))
        assert client.ping()
        assert client.config_get("port") == {"port": "0"}  # no TCP listener
        client.close()
    await wait_dead(server.pid)
    assert not run_dir.exists()


async def test_cancellation_still_stops_the_server() -> None:
    with trio.move_on_after(0.5) as scope:
        async with open_embedded_redis() as server:
            await trio.sleep_forever()
    assert scope.cancelled_caught
    await wait_dead(server.pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
async def test_no_orphan_when_the_parent_process_dies(sig: signal.Signals) -> None:
    child = await trio.lowlevel.open_process([sys.executable, "-c", CHILD], cwd=REPO,
                                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    line = b""
    try:
        with trio.fail_after(20):
            line = await read_line(child.stdout)
        pid_text, socket_path = line.decode().split()
        redis_pid = int(pid_text)
        assert alive(redis_pid)
        child.send_signal(sig)
        assert await child.wait() == -sig
        await wait_dead(redis_pid)
    finally:
        await stop_child(child)
        if line:  # a killed process cannot remove its private directory; we do
            shutil.rmtree(Path(socket_path).parent, ignore_errors=True)


def test_data_dir_persists_across_restarts_and_is_exclusive(tmp_path: Path) -> None:
    data = tmp_path / "redis-data"
    first = EmbeddedRedisServer(data)
    first.start()
    try:
        client = redis.Redis(unix_socket_path=str(first.socket_path))
        client.xadd("calls:outcomes", {"call_sid": "A"})
        client.close()
        second = EmbeddedRedisServer(data)
        with pytest.raises(EmbeddedRedisError, match="in use"):
            second.start()
        second.stop()
    finally:
        first.stop()
    assert any(p.name.startswith("appendonly") for p in data.iterdir())
    again = EmbeddedRedisServer(data)
    again.start()
    try:
        client = redis.Redis(unix_socket_path=str(again.socket_path))
        assert client.xlen("calls:outcomes") == 1
        client.close()
    finally:
        again.stop()


def test_a_broken_binary_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'bad config' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("VOICEBOT_REDIS_SERVER", str(fake))
    server = EmbeddedRedisServer()
    started = time.monotonic()
    with pytest.raises(EmbeddedRedisError, match="exited with status 3"):
        server.start()
    server.stop()
    assert time.monotonic() - started < 3
    assert not server.run_dir.exists()
    assert os.environ["VOICEBOT_REDIS_SERVER"] == str(fake)

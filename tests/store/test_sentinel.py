"""``redis+sentinel://`` URLs against a real master and a real sentinel process."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from server.exceptions import ConfigError
from server.store.connection import StoreConfig, connect
from server.store.embedded import redis_server_binary
from server.store.exceptions import StoreUnavailable
from server.store.interface import TurnBatch
from server.store.redis_store import RedisBackend
from tests.store.strategies import outcome, snapshot


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    binary = redis_server_binary()
    master_port, sentinel_port = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor calls 127.0.0.1 {master_port} 1\n")
    master = subprocess.Popen(
        [binary, "--port", str(master_port), "--bind", "127.0.0.1", "--save", "",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sentinel = subprocess.Popen([binary, str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(master_port)
        wait_port(sentinel_port)
        yield f"redis+sentinel://127.0.0.1:{sentinel_port}/calls/0"
    finally:
        for process in (sentinel, master):
            process.terminate()
            process.wait()


def test_writes_go_to_the_master_the_sentinel_names(sentinel_url: str,
                                                    store_config: StoreConfig) -> None:
    client = connect(sentinel_url, store_config)
    try:
        backend = RedisBackend(client, store_config)
        backend.write_turn(TurnBatch("SN1", snapshot("SN1")))
        assert not backend.write_outcome(outcome("SN1")).duplicate
        assert backend.read_session("SN1").snapshot == snapshot("SN1")
        assert client.info("server")["redis_mode"] == "standalone"
    finally:
        client.close()


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:26379",
                                 "redis+sentinel://host:notaport/calls",
                                 "redis+sentinel:///calls"])
def test_bad_sentinel_urls_are_config_errors(url: str, store_config: StoreConfig) -> None:
    with pytest.raises(ConfigError):
        connect(url, store_config)


def test_unknown_service_is_store_unavailable(sentinel_url: str,
                                              store_config: StoreConfig) -> None:
    client = connect(sentinel_url.replace("/calls/", "/other/"), store_config)
    with pytest.raises(StoreUnavailable, match="No master found for 'other'") as info:
        RedisBackend(client, store_config).ping()
    client.close()
    assert isinstance(info.value.__cause__, redis.ConnectionError)

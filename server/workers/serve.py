"""``voicebot serve --workers N``: the parent process, which serves no call itself.

In order, it

1. binds the WebSocket port with ``SO_REUSEPORT`` and keeps it (never
   listening: ``server.ws.reuseport``), so ``--port 0`` picks one port for
   every worker and a taken port fails before anything starts;
2. opens the call store (unless ``--no-store``): ``REDIS_URL``, or the one
   embedded redis-server, supervised here and handed to the workers as their
   ``REDIS_URL``. Its outcome retrier is the only one that replays the spill
   file (workers only append to it and tell us) and its supervisor the only
   lost-call sweeper on this host;
3. serves the control port: ``/readyz`` 200 only while every worker is ready
   (and the embedded Redis answers), ``/metrics`` every worker's registry with
   a ``worker`` label (``server.workers.metrics``), ``/exotel/url`` with each
   call it answers passed on to every worker (``WorkerPool.announce_nowait``:
   whichever one the socket lands on has the greeting rendered);
4. starts the workers (``server.workers.pool``) with its own settings in their
   environment (``server.config.config_environment``) and keeps them running;
5. on the first SIGTERM/SIGINT drains them together (each gets SIGTERM at
   once: upgrades 503, live calls get ``--grace``, then are cancelled); a
   second signal is passed on (calls cancelled at once). Then the store
   closes, after the last worker wrote its outcomes.

If the workers cannot be started at all, it stops those that did and raises
``WorkerStartError`` (``voicebot serve`` exits 1).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import trio

from server.calls.server import serve_signals
from server.config import ServerConfig, config_environment
from server.control.app import ControlApp
from server.control.http import serve_control
from server.logs import log_event
from server.store import StoreService
from server.workers.metrics import PoolMetrics
from server.workers.pool import PoolTimings, WorkerPool
from server.workers.process import WorkerLaunch
from server.workers.slots import make_slot_file
from server.ws.reuseport import bind_shared_sockets, shared_port

log = logging.getLogger(__name__)

#: How a worker is started: this package's ``voicebot serve``, by this interpreter.
WORKER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "server", "serve")


@dataclass(frozen=True, slots=True)
class RunningWorkers:
    """What ``serve_workers`` reports once its ports are bound (the workers
    may still be starting: ``pool.all_started``)."""

    pool: WorkerPool
    port: int
    control_port: int


def worker_environment(config: ServerConfig, port: int,
                       store: StoreService | None) -> dict[str, str]:
    """This process's environment with ``config`` in it (the chosen ``port``),
    and the embedded Redis' URL as ``REDIS_URL`` when we started one."""
    env = dict(os.environ)
    for var, text in config_environment(replace(config, port=port)).items():
        if text is None:
            env.pop(var, None)
        else:
            env[var] = text
    if store is not None and store.embedded:
        env["REDIS_URL"] = store.url  # a private unix socket: nothing to mask
    return env


@asynccontextmanager
async def _open_store(config: ServerConfig) -> AsyncIterator[StoreService | None]:
    if not config.store:
        log_event(log, logging.INFO, "call store off: nothing is recorded")
        yield None
        return
    from server.store import open_store_service

    async with open_store_service() as service:
        log_event(log, logging.INFO, "call store ready", redis=service.url,
                  embedded=service.embedded, instance=service.instance_id)
        yield service
    log_event(log, logging.INFO, "call store closed")


async def serve_workers(
    config: ServerConfig,
    *,
    command: Sequence[str] = WORKER_COMMAND,
    signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
    timings: PoolTimings | None = None,
    task_status: trio.TaskStatus[RunningWorkers] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``config.workers`` call servers until signalled (module docstring).

    Must run in the main thread (signals, and the workers' parent-death
    signal). Raises ``OSError`` when the port cannot be bound and
    ``server.workers.exceptions.WorkerStartError`` when the workers cannot be
    started.
    """
    with trio.open_signal_receiver(*signals) as received:
        sockets = bind_shared_sockets(config.host, config.port)
        try:
            port = shared_port(sockets)
            with tempfile.TemporaryDirectory(prefix="voicebot-workers-") as run_dir:
                slots = make_slot_file(Path(run_dir)) if config.max_calls else None
                async with _open_store(config) as store:
                    pool = WorkerPool(
                        config.workers, WorkerLaunch(command, worker_environment(config, port,
                                                                                 store)),
                        PoolMetrics(), call_slots=slots, timings=timings,
                        on_spilled=store.retrier.replay_spill_soon if store else lambda: None)
                    await _serve_pool(config, pool, port, store, received, task_status)
        finally:
            for sock in sockets:
                sock.close()
    if pool.failure is not None:
        raise pool.failure


async def _serve_pool(config: ServerConfig, pool: WorkerPool, port: int,
                      store: StoreService | None, received: AsyncIterator[int],
                      task_status: trio.TaskStatus[RunningWorkers]) -> None:
    """The control port and the pool, until a signal (or a failed start-up)
    has drained the workers."""
    store_up = (lambda: store.health.up) if store is not None and store.embedded else None
    app = ControlApp(config, pool.metrics, pool.ready, store_up,
                     not_ready_reason=pool.not_ready_reason,
                     on_announce=pool.announce_nowait if config.renders_at_announce else None)
    async with trio.open_nursery() as nursery:
        control_port: int = await nursery.start(serve_control, app, config)
        nursery.start_soon(pool.serve)
        log_event(log, logging.INFO, "starting workers", workers=config.workers, port=port,
                  control_port=control_port, max_calls_total=config.max_calls)
        task_status.started(RunningWorkers(pool, port, control_port))

        def pass_on(signum: int) -> None:
            log_event(log, logging.WARNING, "second signal, workers cancel their calls",
                      signal=signal.Signals(signum).name)
            pool.signal_all(signal.SIGTERM)

        stop = trio.Event()
        nursery.start_soon(partial(serve_signals, received, stop, pass_on, grace=config.grace))
        nursery.start_soon(_set_when, pool.failed, stop)
        await stop.wait()
        await pool.drain(0.0 if pool.failure else config.grace)
        log_event(log, logging.INFO, "workers drained")
        nursery.cancel_scope.cancel()


async def _set_when(event: trio.Event, stop: trio.Event) -> None:
    await event.wait()
    stop.set()

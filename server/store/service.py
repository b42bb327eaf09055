"""``open_store_service``: the one entry point the call server needs.

It picks the Redis server (``REDIS_URL``, else an embedded redis-server whose
AOF lives under the state dir), connects, starts the process-wide outcome
retrier (which first replays the spill file) and hands out per-call recorders::

    async with open_store_service() as state:
        ...
        lead = await state.store.load_lead(custom_parameters, call_sid=sid)
        async with state.open_call_recorder(sid, stream_sid) as recorder:
            recorder.record_nowait(snapshot, transcript=[...], latency=[...])
            recorder.finish_nowait(outcome)

While it runs, a supervisor (``server.store.supervisor``) watches Redis:
``service.health`` says whether it answers (``/readyz``, ``voicebot_redis_up``),
our embedded redis-server is restarted when it dies, this process's heartbeat
is kept, and calls that a crashed process left without an outcome get one
(``server.store.lost``).

A worker of ``voicebot serve --workers N`` opens it with ``replay_elsewhere``:
its parent, which started the embedded server (or shares ``REDIS_URL``), is
the one process that replays the spill file and sweeps lost calls; the worker
only appends to the file and says so (``server.store.buffer``).

Exit order matters and is handled here: the supervisor stops, the retrier
spills what it still holds, then the client closes, then the embedded server
(if ours) stops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import trio

from server.store.buffer import OutcomeRetrier, RetryDelays, open_outcome_retrier
from server.store.connection import StoreConfig, connect, mask_url
from server.store.embedded import EmbeddedConfig, EmbeddedRedis, open_embedded_redis
from server.store.exceptions import StoreUnavailable
from server.store.health import StoreHealth
from server.store.lost import LostCallSweeper, new_instance_id
from server.store.recorder import CallRecorder, RecorderConfig, open_call_recorder
from server.store.redis_store import RedisBackend, RedisSessionStore
from server.store.spill import SpillFile, default_state_dir
from server.store.supervisor import SupervisorConfig, supervise_redis

log = logging.getLogger("voicebot.store")

#: A Redis that does not answer within this at startup is reported, not waited for:
#: calls still run (buffer, retrier, spill), so startup does not fail on it.
STARTUP_PING_DEADLINE = 2.0


@dataclass(frozen=True, slots=True)
class StoreService:
    store: RedisSessionStore
    retrier: OutcomeRetrier
    spill: SpillFile
    url: str  # password masked
    embedded: bool
    recorder_config: RecorderConfig
    clock: Callable[[], datetime]
    health: StoreHealth
    instance_id: str

    def open_call_recorder(
        self, call_sid: str, stream_sid: str, *, on_failure: Callable[[], None] | None = None,
    ) -> AbstractAsyncContextManager[CallRecorder]:
        return open_call_recorder(
            self.store, call_sid, stream_sid, spill=self.spill, retrier=self.retrier,
            config=self.recorder_config, clock=self.clock, health=self.health,
            live_owner=self.instance_id, on_failure=on_failure,
        )


@asynccontextmanager
async def open_store_service(
    url: str | None = None,
    *,
    config: StoreConfig | None = None,
    recorder_config: RecorderConfig | None = None,
    spill: SpillFile | None = None,
    embedded_data_dir: Path | None = None,
    persist_embedded: bool = True,
    backoff: RetryDelays | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    supervisor: SupervisorConfig | None = None,
    replay_elsewhere: Callable[[], None] | None = None,
) -> AsyncIterator[StoreService]:
    """Connect (or start the embedded server), run the retrier and the
    supervisor, yield the service.

    ``url`` defaults to ``REDIS_URL``. The embedded server persists to
    ``embedded_data_dir`` (default ``<state dir>/redis``) unless
    ``persist_embedded`` is false. ``replay_elsewhere``: this process never
    replays the spill file (module docstring).
    """
    url = url or os.environ.get("REDIS_URL") or None
    config = config or StoreConfig.from_env()
    spill = spill or SpillFile()
    supervisor = supervisor or SupervisorConfig()
    if url is not None:
        async with _serve(url, None, config, recorder_config, spill, backoff, clock,
                          supervisor, replay_elsewhere) as svc:
            yield svc
        return
    data_dir = (embedded_data_dir or default_state_dir() / "redis") if persist_embedded else None
    async with open_embedded_redis(data_dir, config=EmbeddedConfig()) as embedded:
        log.info("no REDIS_URL: embedded redis-server pid %d on %s (data: %s)",
                 embedded.pid, embedded.socket_path, data_dir or "not persisted")
        async with _serve(
            embedded.url, embedded, config, recorder_config, spill, backoff, clock, supervisor,
            replay_elsewhere,
        ) as svc:
            yield svc


@asynccontextmanager
async def _serve(
    url: str,
    embedded: EmbeddedRedis | None,
    config: StoreConfig,
    recorder_config: RecorderConfig | None,
    spill: SpillFile,
    backoff: RetryDelays | None,
    clock: Callable[[], datetime],
    supervisor: SupervisorConfig,
    replay_elsewhere: Callable[[], None] | None,
) -> AsyncIterator[StoreService]:
    store = RedisSessionStore(RedisBackend(connect(url, config), config))
    health = StoreHealth()
    instance_id = new_instance_id()
    try:
        with trio.move_on_after(STARTUP_PING_DEADLINE) as ping_scope:
            try:
                await store.ping()
            except StoreUnavailable as exc:
                log.warning("redis at %s not answering (%s); calls will buffer", mask_url(url),
                            exc)
                health.mark(False, "not answering at start")
        if ping_scope.cancelled_caught:
            log.warning("redis at %s slow to answer; calls will buffer", mask_url(url))
            health.mark(False, "slow to answer at start")
        sweeper = LostCallSweeper(store, instance_id, clock, supervisor.lost_grace)
        body_exc: BaseException | None = None
        async with open_outcome_retrier(store, spill, backoff,
                                        replay_elsewhere=replay_elsewhere) as retrier, \
                trio.open_nursery() as nursery:
            await nursery.start(supervise_redis, sweeper, health, embedded, supervisor,
                                retrier.replayed)
            try:
                yield StoreService(
                    store=store, retrier=retrier, spill=spill, url=mask_url(url),
                    embedded=embedded is not None,
                    recorder_config=recorder_config or RecorderConfig(), clock=clock,
                    health=health, instance_id=instance_id,
                )
            except BaseException as exc:
                body_exc = exc  # raised again outside the nursery, unwrapped
            finally:
                nursery.cancel_scope.cancel()
        if body_exc is not None:
            raise body_exc
    finally:
        store.close()

"""Calls a crashed process left without an outcome get one, end reason ``lost``.

Each voicebot process has an instance id and keeps ``instance:{id}:alive``
(TTL ``heartbeat_ttl``, 30 s) fresh while Redis answers (``heartbeat``, once per
supervisor check). A call's first state write registers it in the hash
``calls:live`` (field ``{call_sid}:{stream_sid}``, value the owner's instance
id); the outcome write removes that field in the same atomic step
(``outcome_script``). So a field whose owner has no heartbeat belongs to a
process that died with the call live: ``sweep`` writes that call's outcome
from its last session snapshot with end reason ``lost`` (or a bare one when the
snapshot expired), through the same exactly-once outcome write, which also
removes the field. Two sweepers racing, or a sweep racing a late real outcome,
still leave one stream entry.

A process never sweeps its own calls, and gives a dead one's calls time: a
field must be found without a heartbeat for ``grace`` (60 s) across sweeps,
and a process sweeps only after it has replayed its own spill file (which holds
the outcomes a crashed predecessor on this host could not write). The one way
to get a wrong ``lost``: a process that cannot reach Redis for longer than the
heartbeat TTL plus the grace while another process can (a network partition),
or whose spill file is replayed later than that on another host; its real
outcome then arrives as a duplicate of the ``lost`` one and is not added.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import trio

from server.store.exceptions import RecordError
from server.store.recorder import outcome_from_snapshot
from server.store.redis_store import RedisBackend, RedisSessionStore

log = logging.getLogger("voicebot.store")

HEARTBEAT_TTL = 30


def new_instance_id() -> str:
    """``<host>-<pid>-<random>``: unique per process start."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-")[:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def orphaned_calls(backend: RedisBackend, instance_id: str) -> list[tuple[str, str]]:
    """``calls:live`` fields (and owners) whose owner has no heartbeat."""
    return [(field, owner) for field, owner in backend.live_calls()
            if owner != instance_id and not backend.instance_alive(owner)]


def write_lost(backend: RedisBackend, field: str, owner: str, now: datetime) -> bool:
    """The ``lost`` outcome of one orphaned call; ``True`` when it was new."""
    call_sid, _, stream_sid = field.partition(":")
    try:
        snapshot = backend.read_snapshot(call_sid)
    except RecordError as exc:
        log.warning("lost call %s: snapshot unreadable (%s); bare outcome", call_sid, exc)
        snapshot = None
    outcome = outcome_from_snapshot(snapshot, call_sid=call_sid, stream_sid=stream_sid,
                                    end_reason="lost", ended_at=now)
    receipt = backend.write_outcome(replace(outcome, stream_sid=stream_sid))
    if not receipt.duplicate:
        log.warning("call %s (stream %s) was live in dead instance %s: outcome 'lost' "
                    "written", call_sid, stream_sid, owner)
    return not receipt.duplicate


def sweep_lost_calls(backend: RedisBackend, instance_id: str, now: datetime) -> int:
    """Every orphaned call gets its ``lost`` outcome now (no grace); returns how
    many were new."""
    return sum(write_lost(backend, field, owner, now)
               for field, owner in orphaned_calls(backend, instance_id))


class LostCallSweeper:
    """This process's heartbeat and sweeps (with the grace), on the store's
    worker threads."""

    def __init__(self, store: RedisSessionStore, instance_id: str,
                 clock: Callable[[], datetime], grace: float = 60.0) -> None:
        self.store = store
        self.instance_id = instance_id
        self.clock = clock
        self.grace = grace
        self._first_seen: dict[str, float] = {}

    async def heartbeat(self) -> None:
        """Refresh ``instance:{id}:alive`` (also the supervisor's ping)."""
        backend = self.store.backend
        await self.store.run_sync(functools.partial(
            backend.heartbeat, self.instance_id, HEARTBEAT_TTL))

    async def sweep(self) -> int:
        """Write ``lost`` for calls orphaned for at least ``grace``; returns how many."""
        backend = self.store.backend
        orphans = await self.store.run_sync(functools.partial(
            orphaned_calls, backend, self.instance_id))
        now = trio.current_time()
        seen = {field: self._first_seen.get(field, now) for field, _ in orphans}
        self._first_seen = seen
        due = [(field, owner) for field, owner in orphans if now - seen[field] >= self.grace]
        written = 0
        for field, owner in due:
            written += await self.store.run_sync(functools.partial(
                write_lost, backend, field, owner, self.clock()))
            self._first_seen.pop(field, None)
        return written

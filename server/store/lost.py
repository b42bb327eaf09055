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

A process never sweeps its own calls. The one way to get a wrong ``lost``: a
process that stays alive but cannot reach Redis for longer than the heartbeat
TTL while another process can (a network partition); its real outcome then
arrives as a duplicate of the ``lost`` one and is not added.
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

from server.store.exceptions import RecordError
from server.store.recorder import outcome_from_snapshot
from server.store.redis_store import RedisBackend, RedisSessionStore

log = logging.getLogger("voicebot.store")

HEARTBEAT_TTL = 30


def new_instance_id() -> str:
    """``<host>-<pid>-<random>``: unique per process start."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-")[:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def sweep_lost_calls(backend: RedisBackend, instance_id: str, now: datetime) -> int:
    """One synchronous sweep (see the module docstring); returns outcomes written."""
    keys = backend.keys
    written = 0
    for field, owner in backend.live_calls():
        if owner == instance_id or backend.instance_alive(owner):
            continue
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
            written += 1
            log.warning("call %s (stream %s) was live in dead instance %s: outcome 'lost' "
                        "written", call_sid, stream_sid, owner)
    if written:
        log.info("lost-call sweep of %s: %d outcome(s) written", keys.live_calls, written)
    return written


class LostCallSweeper:
    """This process's heartbeat and sweeps, on the store's worker threads."""

    def __init__(self, store: RedisSessionStore, instance_id: str,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.instance_id = instance_id
        self.clock = clock

    async def heartbeat(self) -> None:
        """Refresh ``instance:{id}:alive`` (also the supervisor's ping)."""
        backend = self.store.backend
        await self.store.run_sync(functools.partial(
            backend.heartbeat, self.instance_id, HEARTBEAT_TTL))

    async def sweep(self) -> int:
        backend = self.store.backend
        return await self.store.run_sync(functools.partial(
            sweep_lost_calls, backend, self.instance_id, self.clock()))

"""The Redis implementation of the session store.

Keys (contracts, see issue 6; ``prefix`` is empty in production and only
isolates tests and benchmarks sharing one server)::

    session:{call_sid}              string  JSON snapshot            TTL session_ttl
    session:{call_sid}:transcript   list    JSON entries, in order   TTL session_ttl
    session:{call_sid}:latency      list    JSON per-turn records    TTL session_ttl
    outcome:{call_sid}:{stream_sid} string  stream id (idempotency)  TTL marker_ttl
    calls:outcomes                  stream  one entry per call
    campaign:{campaign_id}:stats    hash    calls, outcome:<STAGE>, duration_ms,
                                            cost_micro_usd, dnc
    lead:{lead_id}                  hash    written by the CRM: name, company,
                                            product_interest, language
    calls:live                      hash    {call_sid}:{stream_sid} → owner instance
                                            id, for calls not yet given an outcome
    instance:{id}:alive             string  a live process's heartbeat  TTL 30 s

``RedisBackend`` is the synchronous core (redis-py + hiredis): one method, one
round trip. The CLI and the benchmark use it directly. ``RedisSessionStore``
is the trio face: each call runs the backend in a worker thread under a
bounded ``CapacityLimiter`` (as many connections as threads), with
``abandon_on_cancel`` so a caller's deadline is never held hostage by a socket.
``bench/sessions.py`` measures the thread hop against the write itself.

Every redis-py error is translated into ``StoreUnavailable`` at this boundary
(``connection.map_redis_errors``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
import trio

from server.store.codec import (
    decode_latency,
    decode_snapshot,
    decode_transcript_entry,
    encode_latency,
    encode_snapshot,
    encode_transcript_entry,
    outcome_from_fields,
    outcome_to_fields,
)
from server.store.connection import StoreConfig, map_redis_errors
from server.store.exceptions import RecordError, RecordFormatError, StoreUnavailable
from server.store.interface import OutcomeReceipt, SessionView, StoreStatistics, TurnBatch
from server.store.outcome_script import WRITE_OUTCOME_LUA
from server.store.records import LeadContext, Outcome, SessionSnapshot

log = logging.getLogger("voicebot.store")
T = TypeVar("T")

LEAD_FIELDS = ("name", "company", "product_interest", "language")
LEAD_FIELD_MAX = 200


class Keys:
    """Key names; ``prefix`` is prepended to every one."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.outcomes = f"{prefix}calls:outcomes"

    def session(self, call_sid: str) -> str:
        return f"{self.prefix}session:{call_sid}"

    def transcript(self, call_sid: str) -> str:
        return f"{self.prefix}session:{call_sid}:transcript"

    def latency(self, call_sid: str) -> str:
        return f"{self.prefix}session:{call_sid}:latency"

    def outcome_marker(self, call_sid: str, stream_sid: str) -> str:
        """One marker per stream of a call: a second stream of the same call
        (a reconnect) writes its own outcome; a retried write of one does not."""
        return f"{self.prefix}outcome:{call_sid}:{stream_sid}"

    def campaign_stats(self, campaign_id: str) -> str:
        return f"{self.prefix}campaign:{campaign_id}:stats"

    def lead(self, lead_id: str) -> str:
        return f"{self.prefix}lead:{lead_id}"

    @property
    def live_calls(self) -> str:
        return f"{self.prefix}calls:live"

    def instance(self, instance_id: str) -> str:
        return f"{self.prefix}instance:{instance_id}:alive"


def live_field(call_sid: str, stream_sid: str) -> str:
    """A call's field in ``calls:live`` (``:`` never occurs in a checked id)."""
    return f"{call_sid}:{stream_sid}"


@contextmanager
def refuse_unencodable(kind: str, call_id: str) -> Iterator[None]:
    """A record the encoder refuses (e.g. a naive datetime) is a ``RecordFormatError``."""
    try:
        yield
    except ValueError as exc:
        raise RecordFormatError(f"cannot encode {kind}: {exc}", kind=kind, call_id=call_id) \
            from exc


class RedisBackend:
    """Synchronous store operations, one round trip each."""

    def __init__(self, client: redis.Redis, config: StoreConfig | None = None) -> None:
        self.client = client
        self.config = config or StoreConfig()
        self.keys = Keys(self.config.prefix)
        self._write_outcome = client.register_script(WRITE_OUTCOME_LUA)

    def close(self) -> None:
        self.client.close()

    def ping(self) -> None:
        with map_redis_errors("ping"):
            self.client.ping()

    def write_turn(self, batch: TurnBatch) -> None:
        keys, ttl, sid = self.keys, self.config.session_ttl, batch.call_sid
        with refuse_unencodable("turn", sid):
            snapshot = encode_snapshot(batch.snapshot) if batch.snapshot is not None else None
            transcript = [encode_transcript_entry(e) for e in batch.transcript]
            latency = [encode_latency(r) for r in batch.latency]
        pipe = self.client.pipeline(transaction=True)
        if snapshot is not None:
            pipe.set(keys.session(sid), snapshot, ex=ttl)
        else:
            pipe.expire(keys.session(sid), ttl)
        if transcript:
            pipe.rpush(keys.transcript(sid), *transcript)
        pipe.expire(keys.transcript(sid), ttl)
        if latency:
            pipe.rpush(keys.latency(sid), *latency)
        pipe.expire(keys.latency(sid), ttl)
        if batch.live_owner is not None:
            pipe.hset(keys.live_calls, live_field(sid, batch.stream_sid), batch.live_owner)
        with map_redis_errors("write_turn", sid):
            pipe.execute()

    def write_outcome(self, outcome: Outcome) -> OutcomeReceipt:
        keys, cfg = self.keys, self.config
        with refuse_unencodable("outcome", outcome.call_sid):
            fields = outcome_to_fields(outcome)
        campaign = outcome.campaign_id
        args: list[str | int] = [
            cfg.outcome_marker_ttl, cfg.outcome_stream_cap, "1" if campaign else "0",
            outcome.stage.value, round(outcome.duration_s * 1000), outcome.cost_micro_usd,
            1 if outcome.do_not_call else 0, cfg.trim_scan_limit,
            live_field(outcome.call_sid, outcome.stream_sid),
        ]
        for name, value in fields.items():
            args += [name, value]
        script_keys = [
            keys.outcome_marker(outcome.call_sid, outcome.stream_sid), keys.outcomes,
            keys.campaign_stats(campaign or "-"), keys.live_calls,
        ]
        with map_redis_errors("write_outcome", outcome.call_sid):
            entry_id, written, over = self._write_outcome(keys=script_keys, args=args)
        receipt = OutcomeReceipt(_str(entry_id), duplicate=not written, over_cap=bool(over))
        if receipt.over_cap:
            log.warning(
                "outcome stream %s is above its cap of %d: a consumer group has not "
                "acknowledged older entries, so they are kept",
                keys.outcomes, cfg.outcome_stream_cap,
            )
        return receipt

    def write_lead(self, lead_id: str, fields: Mapping[str, str]) -> None:
        """Write ``lead:{id}`` as a CRM would (demos, benchmarks; the server only reads it)."""
        with map_redis_errors("write_lead"):
            self.client.hset(self.keys.lead(lead_id), mapping=dict(fields.items()))

    def read_lead(self, lead_id: str) -> dict[str, str]:
        """The CRM's ``lead:{id}`` hash ({} when absent).

        Raises ``RecordFormatError`` when the key is not a hash or a known
        field is not short UTF-8 text.
        """
        with map_redis_errors("read_lead"):
            try:
                raw: Any = self.client.hgetall(self.keys.lead(lead_id))
            except redis.ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                raise RecordFormatError(f"lead:{lead_id} is not a hash", kind="lead") from exc
        lead: dict[str, str] = {}
        for name in LEAD_FIELDS:
            value = raw.get(name.encode())
            if value is None:
                continue
            try:
                text = value.decode()
            except UnicodeDecodeError as exc:
                raise RecordFormatError(f"lead field {name} is not UTF-8", kind="lead") from exc
            if not text.strip() or len(text) > LEAD_FIELD_MAX:
                raise RecordFormatError(f"lead field {name} is empty or too long", kind="lead")
            lead[name] = text.strip()
        return lead

    def read_session(self, call_sid: str) -> SessionView:
        """Snapshot, transcript and latency records of one call.

        Raises ``RecordError`` when a stored record cannot be decoded.
        """
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.get(keys.session(call_sid))
        pipe.lrange(keys.transcript(call_sid), 0, -1)
        pipe.lrange(keys.latency(call_sid), 0, -1)
        pipe.ttl(keys.session(call_sid))
        with map_redis_errors("read_session", call_sid):
            snap_raw, transcript, latency, ttl = pipe.execute()
        return SessionView(
            call_sid=call_sid,
            snapshot=decode_snapshot(snap_raw) if snap_raw is not None else None,
            transcript=tuple(decode_transcript_entry(x) for x in transcript),
            latency=tuple(decode_latency(x) for x in latency),
            ttl_seconds=ttl if ttl >= 0 else None,
        )

    def read_outcomes(
        self, *, count: int, after: str | None = None, block_ms: int | None = None
    ) -> list[tuple[str, Outcome | RecordError]]:
        """The newest ``count`` entries oldest first, or (``after`` given) up to
        ``count`` entries after that id, waiting up to ``block_ms`` for one.
        An entry that cannot be decoded is returned as its ``RecordError``."""
        with map_redis_errors("read_outcomes"):
            rows: list[Any]
            if after is None:
                newest: Any = self.client.xrevrange(self.keys.outcomes, count=count)
                rows = list(reversed(newest))
            else:
                reply: Any = self.client.xread(
                    {self.keys.outcomes: after}, count=count, block=block_ms
                )
                rows = reply[0][1] if reply else []
        return [(_str(entry_id), _decode_outcome(fields)) for entry_id, fields in rows]

    def read_snapshot(self, call_sid: str) -> SessionSnapshot | None:
        """The stored snapshot of one call (``None`` when absent or expired)."""
        with map_redis_errors("read_snapshot", call_sid):
            raw = self.client.get(self.keys.session(call_sid))
        return decode_snapshot(raw) if raw is not None else None

    def heartbeat(self, instance_id: str, ttl: int) -> None:
        """Keep ``instance:{id}:alive`` for ``ttl`` more seconds."""
        with map_redis_errors("heartbeat"):
            self.client.set(self.keys.instance(instance_id), "1", ex=ttl)

    def instance_alive(self, instance_id: str) -> bool:
        with map_redis_errors("instance_alive"):
            return bool(self.client.exists(self.keys.instance(instance_id)))

    def live_calls(self) -> list[tuple[str, str]]:
        """Every ``calls:live`` field and its owner."""
        with map_redis_errors("live_calls"):
            items: Any = list(self.client.hscan_iter(self.keys.live_calls, count=500))
        return [(_str(field), _str(owner)) for field, owner in items]

    def campaign_stats(self, campaign_id: str) -> dict[str, int]:
        with map_redis_errors("campaign_stats"):
            raw = self.client.hgetall(self.keys.campaign_stats(campaign_id))
        return {_str(k): int(v) for k, v in raw.items()}


def _decode_outcome(fields: Mapping[Any, Any]) -> Outcome | RecordError:
    try:
        return outcome_from_fields(fields)
    except RecordError as exc:
        return exc


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Counters:
    def __init__(self) -> None:
        self.turn_writes = self.turn_write_failures = 0
        self.outcomes_written = self.outcomes_duplicate = self.outcomes_over_cap = 0
        self.lead_lookups_ignored = 0


class RedisSessionStore:
    """``SessionStore`` for trio: the backend's calls in bounded worker threads."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.config = backend.config
        self._limiter = trio.CapacityLimiter(self.config.max_threads)
        self._counts = _Counters()

    async def run_sync(self, fn: Callable[[], T]) -> T:
        """``fn()`` on one of the store's worker threads (bounded, abandoned on cancel)."""
        return await trio.to_thread.run_sync(fn, limiter=self._limiter, abandon_on_cancel=True)

    async def ping(self) -> None:
        await self.run_sync(self.backend.ping)

    async def write_turn(self, batch: TurnBatch) -> None:
        try:
            await self.run_sync(functools.partial(self.backend.write_turn, batch))
        except StoreUnavailable:
            self._counts.turn_write_failures += 1
            raise
        self._counts.turn_writes += 1

    async def write_outcome(self, outcome: Outcome) -> OutcomeReceipt:
        receipt = await self.run_sync(functools.partial(self.backend.write_outcome, outcome))
        if receipt.duplicate:
            self._counts.outcomes_duplicate += 1
        else:
            self._counts.outcomes_written += 1
        self._counts.outcomes_over_cap += receipt.over_cap
        return receipt

    async def load_lead(self, params: Mapping[str, str], *, call_sid: str,
                        on_failure: Callable[[], None] | None = None) -> LeadContext:
        base = LeadContext(params=dict(params))
        lead_id = base.lead_id
        if lead_id is None:
            return base
        reason = "timed out"
        with trio.move_on_after(self.config.lead_lookup_deadline):
            try:
                fields = await self.run_sync(functools.partial(self.backend.read_lead, lead_id))
            except (StoreUnavailable, RecordFormatError) as exc:
                reason = str(exc)
            else:
                if not fields:
                    log.info("call %s: no lead:%s hash; using custom parameters", call_sid,
                             lead_id)
                    return base
                return LeadContext(params=base.params, enriched=True, **fields)
        self._counts.lead_lookups_ignored += 1
        log.warning("call %s: lead %s not enriched (%s)", call_sid, lead_id, reason)
        if on_failure is not None:
            on_failure()
        return base

    def statistics(self) -> StoreStatistics:
        c = self._counts
        return StoreStatistics(
            turn_writes=c.turn_writes,
            turn_write_failures=c.turn_write_failures,
            outcomes_written=c.outcomes_written,
            outcomes_duplicate=c.outcomes_duplicate,
            outcomes_over_cap=c.outcomes_over_cap,
            lead_lookups_ignored=c.lead_lookups_ignored,
        )

    def close(self) -> None:
        """Close the connection pool (threads still running finish or fail fast)."""
        self.backend.close()



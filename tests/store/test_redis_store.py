"""The Redis implementation against a real redis-server."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import redis
import trio

from dialogue.model import Stage
from server.exceptions import ConfigError
from server.store.codec import outcome_to_fields
from server.store.connection import StoreConfig, connect, mask_url
from server.store.exceptions import RecordFormatError, SchemaVersionError, StoreUnavailable
from server.store.interface import TurnBatch
from server.store.records import Role, TurnLatency
from server.store.redis_store import RedisBackend, RedisSessionStore
from tests.store.strategies import entry, outcome, snapshot


def test_turn_write_sets_and_refreshes_ttl(backend: RedisBackend, redis_client: redis.Redis
                                           ) -> None:
    keys = backend.keys
    backend.write_turn(TurnBatch("CA1", snapshot("CA1"), (entry(0),),
                                 (TurnLatency(0, {"speech_end": 1.0}),)))
    for key in (keys.session("CA1"), keys.transcript("CA1"), keys.latency("CA1")):
        assert 3590 <= redis_client.ttl(key) <= 3600
    for key in (keys.session("CA1"), keys.transcript("CA1"), keys.latency("CA1")):
        redis_client.expire(key, 5)
    backend.write_turn(TurnBatch("CA1"))  # TTL refresh only
    for key in (keys.session("CA1"), keys.transcript("CA1"), keys.latency("CA1")):
        assert redis_client.ttl(key) > 3000
    assert backend.read_session("CA1").snapshot == snapshot("CA1")


def test_transcript_keeps_order_across_batches(backend: RedisBackend) -> None:
    backend.write_turn(TurnBatch("CA2", snapshot("CA2"), (entry(0), entry(1, Role.BOT))))
    backend.write_turn(TurnBatch("CA2", snapshot("CA2", turns=2), (entry(2),),
                                 (TurnLatency(1, {"speech_end": 1.0, "decided": 1.2}),)))
    view = backend.read_session("CA2")
    assert [e.text for e in view.transcript] == ["utterance 0", "utterance 1", "utterance 2"]
    assert view.transcript[1].speaker is Role.BOT
    assert view.snapshot is not None
    assert view.snapshot.turns == 2
    assert view.latency == (TurnLatency(1, {"speech_end": 1.0, "decided": 1.2}),)
    assert view.ttl_seconds is not None
    assert view.ttl_seconds > 3500


def test_unknown_stored_version_is_reported(backend: RedisBackend, redis_client: redis.Redis
                                            ) -> None:
    redis_client.set(backend.keys.session("CA3"), json.dumps({"v": 99}))
    with pytest.raises(SchemaVersionError, match="99"):
        backend.read_session("CA3")


def test_outcome_is_written_exactly_once(backend: RedisBackend, redis_client: redis.Redis
                                         ) -> None:
    first = backend.write_outcome(outcome("CA4"))
    again = backend.write_outcome(outcome("CA4"))  # a retry after a lost reply
    assert not first.duplicate
    assert again.duplicate
    assert again.entry_id == first.entry_id
    entries = backend.read_outcomes(count=10)
    assert [(i, o) for i, o in entries] == [(first.entry_id, outcome("CA4"))]
    assert backend.campaign_stats("camp1") == {
        "calls": 1, "outcome:DEAL_CLOSED": 1, "duration_ms": 30000, "cost_micro_usd": 1500,
        "dnc": 0,
    }
    marker_ttl = redis_client.ttl(backend.keys.outcome_marker("CA4", "st-CA4"))
    assert marker_ttl > 29 * 24 * 3600


def test_outcome_without_campaign_touches_no_stats(backend: RedisBackend,
                                                   redis_client: redis.Redis) -> None:
    backend.write_outcome(outcome("CA5", campaign_id=None))
    assert list(redis_client.scan_iter(match=f"{backend.keys.prefix}campaign:*")) == []
    assert len(backend.read_outcomes(count=5)) == 1


def test_stream_cap_trims_when_no_consumer_group(redis_client: redis.Redis,
                                                 store_config: StoreConfig) -> None:
    backend = RedisBackend(redis_client, replace(store_config, outcome_stream_cap=10))
    for i in range(300):
        backend.write_outcome(outcome(f"C{i}", campaign_id=None))
    length = redis_client.xlen(backend.keys.outcomes)
    assert 10 <= length < 200  # approximate trimming (whole radix-tree nodes)
    assert backend.read_outcomes(count=1)[0][1] == outcome("C299", campaign_id=None)


def test_stream_cap_never_trims_what_a_group_has_not_acknowledged(
    redis_client: redis.Redis, store_config: StoreConfig
) -> None:
    backend = RedisBackend(redis_client, replace(store_config, outcome_stream_cap=5))
    stream = backend.keys.outcomes
    backend.write_outcome(outcome("G0", campaign_id=None))
    redis_client.xgroup_create(stream, "crm", id="0")
    for i in range(1, 4):
        backend.write_outcome(outcome(f"G{i}", campaign_id=None))
    # The CRM reads three entries and acknowledges only the first two.
    delivered = redis_client.xreadgroup("crm", "worker", {stream: ">"}, count=3)[0][1]
    redis_client.xack(stream, "crm", delivered[0][0], delivered[1][0])
    receipts = [backend.write_outcome(outcome(f"G{i}", campaign_id=None)) for i in range(4, 12)]
    assert any(r.over_cap for r in receipts)
    ids = [entry_id for entry_id, _ in backend.read_outcomes(count=100)]
    # G0, G1 (acknowledged) may go; G2 (pending) and everything after must stay.
    assert ids[0] == delivered[2][0].decode()
    assert len(ids) == 10
    # Once the group catches up, the cap applies again.
    rest = redis_client.xreadgroup("crm", "worker", {stream: ">"}, count=100)[0][1]
    redis_client.xack(stream, "crm", delivered[2][0], *[i for i, _ in rest])
    final = backend.write_outcome(outcome("G12", campaign_id=None))
    assert not final.over_cap
    assert redis_client.xlen(stream) == 5


async def test_campaign_stats_are_atomic_under_concurrency(backend: RedisBackend) -> None:
    store = RedisSessionStore(backend)
    n = 60

    async def one(i: int) -> None:
        stage = Stage.DEAL_CLOSED if i % 3 == 0 else Stage.DEAD_END
        await store.write_outcome(outcome(f"K{i}", campaign_id="big", stage=stage,
                                          duration_s=1.5, cost=7, dnc=i % 10 == 0))
        await store.write_outcome(outcome(f"K{i}", campaign_id="big"))  # retried: no effect

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    assert backend.campaign_stats("big") == {
        "calls": n, "outcome:DEAL_CLOSED": 20, "outcome:DEAD_END": 40,
        "duration_ms": 1500 * n, "cost_micro_usd": 7 * n, "dnc": 6,
    }
    stats = store.statistics()
    assert (stats.outcomes_written, stats.outcomes_duplicate) == (n, n)


async def test_concurrent_calls_do_not_interfere(backend: RedisBackend) -> None:
    store = RedisSessionStore(backend)

    async def call(sid: str) -> None:
        for turn in range(5):
            await store.write_turn(TurnBatch(sid, snapshot(sid, turns=turn),
                                             (entry(2 * turn), entry(2 * turn + 1, Role.BOT))))

    async with trio.open_nursery() as nursery:
        for c in range(20):
            nursery.start_soon(call, f"P{c}")
    for c in range(20):
        view = backend.read_session(f"P{c}")
        assert view.snapshot is not None
        assert (view.snapshot.call_sid, view.snapshot.turns) == (f"P{c}", 4)
        assert [e.text for e in view.transcript] == [f"utterance {i}" for i in range(10)]


async def test_lead_enrichment(backend: RedisBackend, redis_client: redis.Redis) -> None:
    store = RedisSessionStore(backend)
    redis_client.hset(backend.keys.lead("L1"), mapping={
        "name": "Asha", "company": "Acme", "product_interest": "CRM", "language": "hi",
        "phone": "+919876543210",  # not a lead field we read
    })
    lead = await store.load_lead({"lead_id": "L1", "campaign_id": "C"}, call_sid="CA")
    assert lead.enriched
    assert (lead.name, lead.company, lead.product_interest, lead.language) == \
        ("Asha", "Acme", "CRM", "hi")
    assert (lead.lead_id, lead.campaign_id) == ("L1", "C")

    missing = await store.load_lead({"lead_id": "nope"}, call_sid="CA")
    assert not missing.enriched
    assert missing.params == {"lead_id": "nope"}

    no_id = await store.load_lead({"campaign_id": "C"}, call_sid="CA")
    assert not no_id.enriched
    assert no_id.lead_id is None

    redis_client.set(backend.keys.lead("L2"), "not a hash")
    redis_client.hset(backend.keys.lead("L3"), "name", b"\xff\xfe")
    redis_client.hset(backend.keys.lead("L4"), "company", "x" * 500)
    for bad in ("L2", "L3", "L4"):
        lead = await store.load_lead({"lead_id": bad}, call_sid="CA")
        assert not lead.enriched
        assert lead.name is None
        assert lead.lead_id == bad
    assert store.statistics().lead_lookups_ignored == 3
    with pytest.raises(RecordFormatError, match="not a hash"):
        backend.read_lead("L2")


async def test_lead_lookup_never_blocks_past_its_deadline(store_config: StoreConfig) -> None:
    # A server that accepts connections but never answers: a listening socket.
    with trio.socket.socket() as listener:
        await listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config = replace(store_config, lead_lookup_deadline=0.2, socket_timeout=5.0)
        store = RedisSessionStore(RedisBackend(connect(f"redis://127.0.0.1:{port}/0", config),
                                               config))
        start = trio.current_time()
        lead = await store.load_lead({"lead_id": "L1"}, call_sid="CA")
        elapsed = trio.current_time() - start
    assert not lead.enriched
    assert 0.2 <= elapsed < 1.0


def test_redis_down_is_store_unavailable(store_config: StoreConfig) -> None:
    backend = RedisBackend(connect("unix:///nonexistent/redis.sock", store_config), store_config)
    with pytest.raises(StoreUnavailable) as info:
        backend.write_turn(TurnBatch("CA9", snapshot("CA9")))
    assert info.value.operation == "write_turn"
    assert info.value.call_id == "CA9"
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_stream_fields_are_flat_strings_for_crm_consumers(
    backend: RedisBackend, redis_client: redis.Redis
) -> None:
    backend.write_outcome(outcome("CA10"))
    [(_, fields)] = redis_client.xrange(backend.keys.outcomes)
    decoded = {k.decode(): v.decode() for k, v in fields.items()}
    assert decoded == outcome_to_fields(outcome("CA10"))


def test_url_passwords_are_masked() -> None:
    assert mask_url("redis://:s3cret@host:6379/0") == "redis://***@host:6379/0"
    assert mask_url("rediss://user:s3cret@host/0") == "rediss://user:***@host/0"
    assert mask_url("unix:///tmp/x.sock") == "unix:///tmp/x.sock"


def test_config_from_environment() -> None:
    config = StoreConfig.from_env({"VOICEBOT_SESSION_TTL": "600",
                                   "VOICEBOT_OUTCOME_STREAM_CAP": "5000"})
    assert (config.session_ttl, config.outcome_stream_cap, config.prefix) == (600, 5000, "")
    assert StoreConfig.from_env({}) == StoreConfig()
    with pytest.raises(ConfigError, match="VOICEBOT_SESSION_TTL must be a positive integer"):
        StoreConfig.from_env({"VOICEBOT_SESSION_TTL": "1h"})

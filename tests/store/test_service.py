"""``open_store_service``: the server's entry point, end to end on real servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
import trio

from server.store.connection import StoreConfig
from server.store.records import TurnLatency
from server.store.redis_store import RedisBackend
from server.store.service import open_store_service
from server.store.spill import SpillFile
from tests.store.strategies import alive, entry, outcome, snapshot, wait_dead


async def test_without_redis_url_runs_an_embedded_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append([outcome("E0")])  # left by a previous run
    async with open_store_service(spill=spill, persist_embedded=False) as state:
        assert state.embedded
        assert state.url.startswith("unix://")
        pid = int(state.store.backend.client.info("server")["process_id"])
        assert alive(pid)
        lead = await state.store.load_lead({"lead_id": "L9"}, call_sid="E1")
        async with state.open_call_recorder("E1", "st-E1") as rec:
            rec.record_nowait(snapshot("E1"), [entry(0)], [TurnLatency(0, {"speech_end": 0.0})])
            rec.finish_nowait(outcome("E1"))
        with trio.fail_after(5):
            while os.listdir(tmp_path):  # noqa: ASYNC110 - the retrier replays at start
                await trio.sleep(0.01)
        sids = [o.call_sid for _, o in state.store.backend.read_outcomes(count=10)]  # type: ignore[union-attr]
    assert not lead.enriched
    assert sorted(sids) == ["E0", "E1"]
    await wait_dead(pid)


async def test_embedded_server_persists_outcomes_in_the_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    spill = SpillFile(tmp_path / "spill.jsonl")
    data = tmp_path / "redis"
    async with (
        open_store_service(spill=spill, embedded_data_dir=data) as state,
        state.open_call_recorder("D1", "st-D1") as rec,
    ):
        rec.finish_nowait(outcome("D1"))
    async with open_store_service(spill=spill, embedded_data_dir=data) as state:
        rows = state.store.backend.read_outcomes(count=10)
    assert [o.call_sid for _, o in rows] == ["D1"]  # type: ignore[union-attr]


async def test_redis_url_is_used_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str, store_config: StoreConfig,
    redis_client: redis.Redis,
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    async with open_store_service(config=store_config,
                                  spill=SpillFile(tmp_path / "s.jsonl")) as state:
        assert not state.embedded
        async with state.open_call_recorder("U1", "st-U1") as rec:
            rec.finish_nowait(outcome("U1"))
    backend = RedisBackend(redis_client, store_config)
    [(_, written)] = backend.read_outcomes(count=5)
    assert written == outcome("U1")

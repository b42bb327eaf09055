"""The JSON-lines spill file: append, claim, replay (idempotent), bad lines kept."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from server.store.exceptions import SpillError, StoreUnavailable
from server.store.interface import OutcomeReceipt
from server.store.records import Outcome
from server.store.redis_store import RedisBackend, RedisSessionStore
from server.store.spill import SpillFile, default_spill_path, replay_spill
from tests.store.strategies import outcome


def test_default_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.delenv("VOICEBOT_SPILL_PATH", raising=False)
    monkeypatch.setenv("VOICEBOT_STATE_DIR", str(tmp_path / "st"))
    assert default_spill_path() == tmp_path / "st" / "outcomes-spill.jsonl"
    monkeypatch.setenv("VOICEBOT_SPILL_PATH", str(tmp_path / "x.jsonl"))
    assert default_spill_path() == tmp_path / "x.jsonl"


async def test_replay_writes_each_outcome_once_and_keeps_bad_lines(
    backend: RedisBackend, tmp_path: Path
) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append([outcome("P1"), outcome("P2")])
    with spill.path.open("a") as f:
        f.write("{not json\n")
        f.write(json.dumps({"v": "2", "call_sid": "future"}) + "\n")
    spill.append([outcome("P1")])  # duplicated line
    store = RedisSessionStore(backend)
    result = await replay_spill(spill, store.write_outcome)
    assert (result.written, result.duplicates, result.remaining, result.bad) == (2, 1, 0, 2)
    assert [o.call_sid for _, o in backend.read_outcomes(count=10)] == ["P1", "P2"]  # type: ignore[union-attr]
    assert not spill.path.exists()
    assert len((tmp_path / "spill.jsonl.bad").read_text().splitlines()) == 2
    assert [name for name in os.listdir(tmp_path) if ".replaying-" in name] == []


async def test_replay_keeps_what_could_not_be_written(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append([outcome("Q1"), outcome("Q2"), outcome("Q3")])
    seen: list[str] = []

    async def flaky(o: Outcome) -> OutcomeReceipt:
        if o.call_sid == "Q2":
            raise StoreUnavailable("down", operation="write_outcome")
        seen.append(o.call_sid)
        return OutcomeReceipt("1-0", duplicate=False)

    result = await replay_spill(spill, flaky)
    assert seen == ["Q1"]
    assert (result.written, result.remaining) == (1, 2)
    kept = [json.loads(line)["call_sid"] for line in spill.path.read_text().splitlines()]
    assert kept == ["Q2", "Q3"]


async def test_leftover_claimed_file_from_a_crash_is_replayed(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    spill.append([outcome("C1")])
    spill.path.rename(tmp_path / "spill.jsonl.replaying-99999")  # a process died mid-replay
    spill.append([outcome("C2")])
    seen: list[str] = []

    async def record(o: Outcome) -> OutcomeReceipt:
        seen.append(o.call_sid)
        return OutcomeReceipt("1-0", duplicate=False)

    await replay_spill(spill, record)
    assert sorted(seen) == ["C1", "C2"]
    assert os.listdir(tmp_path) == []


def test_appends_racing_a_claim_are_never_lost(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    stop = threading.Event()
    appended: list[str] = []

    def writer() -> None:
        i = 0
        while not stop.is_set() or i < 50:
            sid = f"W{i}"
            spill.append([outcome(sid)])
            appended.append(sid)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    claimed_sids: list[str] = []
    for _ in range(20):
        for path in spill.claim():
            outcomes, bad = spill.read_claimed(path)
            assert bad == []
            claimed_sids += [o.call_sid for o in outcomes]
            path.unlink()
    stop.set()
    thread.join()
    for path in spill.claim():
        claimed_sids += [o.call_sid for o in spill.read_claimed(path)[0]]
    assert claimed_sids == appended


def test_unwritable_spill_is_a_spill_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    spill = SpillFile(blocker / "sub" / "spill.jsonl")
    with pytest.raises(SpillError) as info:
        spill.append([outcome("E1")])
    assert info.value.path == str(blocker / "sub" / "spill.jsonl")

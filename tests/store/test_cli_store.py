"""``voicebot outcomes tail`` / ``session show`` / ``campaign stats`` on a real Redis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import redis
import trio

from server.cli import main
from server.store.interface import TurnBatch
from server.store.records import Delivery, Role, TranscriptEntry, TurnLatency
from server.store.redis_store import RedisBackend
from server.store.service import open_store_service
from server.store.spill import SpillFile
from tests.store.strategies import (
    KOLKATA_CALLBACK,
    T0,
    entry,
    outcome,
    read_line,
    snapshot,
    stop_child,
)

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], backend: RedisBackend, url: str,
        *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--redis-url", url, "--key-prefix", backend.keys.prefix])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_outcomes_tail(capsys: pytest.CaptureFixture[str], backend: RedisBackend,
                       redis_url: str) -> None:
    code, out, _ = run(capsys, backend, redis_url, "outcomes", "tail")
    assert (code, out) == (0, "no outcomes yet\n")
    for i in range(5):
        backend.write_outcome(outcome(f"T{i}", dnc=i == 4))
    code, out, _ = run(capsys, backend, redis_url, "outcomes", "tail", "--count", "2")
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == 2
    assert "T3  DEAL_CLOSED  campaign=camp1  lead=lead1  30.0s  4 turns  $0.0015" in lines[0]
    assert lines[1].endswith("DO-NOT-CALL")
    code, out, _ = run(capsys, backend, redis_url, "outcomes", "tail", "-n", "3", "--json")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["call_sid"] for r in records] == ["T2", "T3", "T4"]
    assert records[2]["do_not_call"] == "1"
    assert records[0]["v"] == "1"


def test_outcomes_tail_reports_unreadable_entries(
    capsys: pytest.CaptureFixture[str], backend: RedisBackend, redis_client: redis.Redis,
    redis_url: str,
) -> None:
    redis_client.xadd(backend.keys.outcomes, {"v": "3", "call_sid": "X"})
    code, out, _ = run(capsys, backend, redis_url, "outcomes", "tail")
    assert code == 0
    assert "unreadable: outcome record has unknown schema version 3" in out


def test_session_show(capsys: pytest.CaptureFixture[str], backend: RedisBackend,
                      redis_url: str) -> None:
    bot = TranscriptEntry(speaker=Role.BOT, text="Our plan costs five lakh rupees.",
                          audio_time=3.5, wall_time=T0, delivery=Delivery.CUT,
                          heard_text="Our plan")
    snap = snapshot("S1")
    snap.slots["callback_at"] = KOLKATA_CALLBACK
    backend.write_turn(TurnBatch("S1", snap, (entry(1), bot),
                                 (TurnLatency(1, {"speech_end": 10.0, "decided": 10.25}),)))
    code, out, _ = run(capsys, backend, redis_url, "session", "show", "S1")
    assert code == 0
    assert "caller       ******3210" in out
    assert "callback_at=2026-11-25T14:30:00+05:30" in out
    assert "bot: Our plan costs five lakh rupees.   (cut by barge-in; heard: 'Our plan')" in out
    assert "turn 1: decided=250" in out
    assert "9876543210" not in out
    code, out, _ = run(capsys, backend, redis_url, "session", "show", "S1", "--json")
    doc = json.loads(out)
    assert doc["snapshot"]["stage"] == "DISCOVERY"
    assert [e["speaker"] for e in doc["transcript"]] == ["caller", "bot"]
    assert doc["latency"][0]["marks"] == {"speech_end": 10.0, "decided": 10.25}
    code, _, err = run(capsys, backend, redis_url, "session", "show", "nope")
    assert code == 3
    assert "no session 'nope'" in err


def test_campaign_stats(capsys: pytest.CaptureFixture[str], backend: RedisBackend,
                        redis_url: str) -> None:
    backend.write_outcome(outcome("C1", campaign_id="spring"))
    backend.write_outcome(outcome("C2", campaign_id="spring", dnc=True, cost=2500))
    code, out, _ = run(capsys, backend, redis_url, "campaign", "stats", "spring")
    assert code == 0
    assert "calls          2" in out
    assert "DEAL_CLOSED    2  (100%)" in out
    assert "do not call    1" in out
    assert "total cost     $0.0040" in out
    code, out, _ = run(capsys, backend, redis_url, "campaign", "stats", "spring", "--json")
    assert json.loads(out) == {"campaign_id": "spring", "calls": 2, "outcome:DEAL_CLOSED": 2,
                               "duration_ms": 60000, "cost_micro_usd": 4000, "dnc": 1}


def test_no_redis_url_says_what_to_do(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("VOICEBOT_STATE_DIR", str(tmp_path))
    assert main(["campaign", "stats", "x"]) == 2
    assert "REDIS_URL is not set" in capsys.readouterr().err


async def test_without_redis_url_it_finds_a_running_embedded_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("VOICEBOT_STATE_DIR", str(tmp_path))
    async with open_store_service(spill=SpillFile(tmp_path / "spill.jsonl")) as state:
        async with state.open_call_recorder("N1", "st-N1") as rec:
            rec.finish_nowait(outcome("N1"))
        assert main(["outcomes", "tail", "--json"]) == 0
        captured = capsys.readouterr()
    assert json.loads(captured.out)["call_sid"] == "N1"
    assert "reading the embedded server of a running voicebot" in captured.err
    assert not (tmp_path / "redis" / "redis.url").exists()
    assert main(["outcomes", "tail"]) == 2


def test_unreachable_redis_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["outcomes", "tail", "--redis-url", "redis://:secret@127.0.0.1:1/0"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot read Redis at redis://***@127.0.0.1:1/0" in err
    assert "secret" not in err


async def test_outcomes_tail_follow_prints_new_entries(backend: RedisBackend,
                                                       redis_url: str) -> None:
    backend.write_outcome(outcome("F0"))
    child = await trio.lowlevel.open_process(
        [sys.executable, "-m", "server.cli", "outcomes", "tail", "-n", "1", "--follow", "--json",
         "--redis-url", redis_url, "--key-prefix", backend.keys.prefix],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    assert child.stdout is not None
    try:
        with trio.fail_after(20):
            first = await read_line(child.stdout)
            assert json.loads(first)["call_sid"] == "F0"
            backend.write_outcome(outcome("F1"))
            second = await read_line(child.stdout)
            assert json.loads(second)["call_sid"] == "F1"
        child.send_signal(signal.SIGINT)
        with trio.move_on_after(20):  # a child deaf to Ctrl-C fails the test, never hangs it
            await child.wait()
        assert child.returncode == 130
    finally:
        await stop_child(child)


def test_callback_constant_is_aware() -> None:
    assert isinstance(KOLKATA_CALLBACK, datetime)
    assert KOLKATA_CALLBACK.utcoffset() is not None


def test_stored_text_cannot_break_json_lines_or_drive_the_terminal(
    capsys: pytest.CaptureFixture[str], backend: RedisBackend, redis_url: str
) -> None:
    from dataclasses import replace

    backend.write_outcome(replace(outcome("U1"), end_reason="stop\u2028\x85x", close_code=1009))
    code, out, _ = run(capsys, backend, redis_url, "outcomes", "tail", "--json")
    assert code == 0
    [line] = out.splitlines()  # splitlines() also breaks at U+2028 and NEL
    assert json.loads(line)["end_reason"] == "stop\u2028\x85x"
    assert json.loads(line)["close_code"] == "1009"
    snap = replace(snapshot("U2"), lead=replace(snapshot("U2").lead,
                                                params={"note": "\x1b[31mred\x1b[0m"}))
    backend.write_turn(TurnBatch("U2", snap))
    code, out, _ = run(capsys, backend, redis_url, "session", "show", "U2")
    assert code == 0
    assert "\x1b" not in out
    assert "\\x1b[31mred" in out

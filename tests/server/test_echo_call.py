"""A whole echo-mode call on virtual time: the server's handler and the bench's
Exotel-like caller joined by an in-memory stream, both speaking real WebSocket."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    wrap_client_stream,
)

from dsp.g711 import ulaw_encode
from server.calls.server import CallServer
from server.config import ServerConfig
from server.exceptions import ConnectionClosed as ServerSideClosed
from server.handlers.echo import EchoHandler
from server.telephony.caller import converse, speech_like_script
from server.ws.connection import ServerWebSocket, WebSocketLimits
from server.ws.listen import read_request, serve_connection


@asynccontextmanager
async def connected_call(
    calls: CallServer, target: str = "/media?sample-rate=8000"
) -> AsyncIterator[WebSocketConnection]:
    """A client WebSocket whose server end runs ``calls.handle_request``."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:

        async def serve_one() -> None:
            await serve_connection(calls.handle_request, WebSocketLimits(), server_stream)

        nursery.start_soon(serve_one)
        ws = await wrap_client_stream(nursery, client_stream, "test", target)  # type: ignore[arg-type]
        yield ws
        await ws.aclose()


async def _drain_messages(ws: WebSocketConnection) -> None:
    """Read and drop messages until the connection closes (raises ConnectionClosed)."""
    while True:
        await ws.get_message()


async def _drain_server_side(ws: ServerWebSocket) -> None:
    while True:
        await ws.get_message()


def _sample(calls: CallServer, name: str, **labels: str) -> float:
    return calls.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_echo_call_plays_each_utterance_back_aligned_paced_and_marked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = CallServer(ServerConfig(), EchoHandler)
    # Two utterances of 1.2 s, each followed by 1.3 s of near-silence.
    script = speech_like_script(speech_s=1.2, silence_s=1.3, repeats=2)
    async with connected_call(calls) as ws:
        result = await converse(ws, script, seconds=5.0, tail_seconds=2.0)
    assert result.violations == {}
    # Both utterances came back (≈1.2 s + pre-roll + tail each), in 100 ms frames.
    assert 2 * 1.2 <= result.media_bytes / 16000 <= 2 * 1.8
    assert result.marks_received == 2
    assert result.marks_echoed == 2
    # The lead bound: the far end never holds more than 300 ms of unplayed audio.
    assert result.max_lead <= 0.300 + 1e-6
    # On virtual time the pacer is exact: no frame arrives after its play slot.
    assert max(result.lateness) <= 1e-6
    # ...and each frame leaves exactly when the lead would drop to 300 ms.
    assert max(abs(x) for x in result.schedule_lateness) <= 1e-6
    assert _sample(calls, "voicebot_calls_total", reason="stop") == 1
    assert _sample(calls, "voicebot_active_calls") == 0
    assert _sample(calls, "voicebot_frames_out_total") == result.frames_received


async def test_one_utterance_comes_back_once_with_its_length(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = CallServer(ServerConfig(), EchoHandler)
    script = speech_like_script(speech_s=1.0, silence_s=1.5, repeats=1)
    async with connected_call(calls) as ws:
        result = await converse(ws, script, seconds=2.5, tail_seconds=2.0)
    assert len(result.arrivals) >= 10
    assert result.media_received == len(result.arrivals)
    echoed = result.media_bytes
    # The echo starts within the pre-roll before speech and contains the burst.
    assert 1.0 * 16000 <= echoed <= 1.6 * 16000


async def test_malformed_frames_mid_call_are_counted_and_the_call_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = CallServer(ServerConfig(), EchoHandler)
    async with connected_call(calls) as ws:
        await ws.send_message(json.dumps({"event": "connected"}))
        await ws.send_message("{not json")
        await ws.send_message(json.dumps({"event": "media", "media": {"payload": "@@@"}}))
        await ws.send_message(b"\x00binary")
        await ws.send_message(json.dumps({"event": "whatever"}))
        await ws.send_message(json.dumps({"event": "stop", "stop": {"reason": "callended"}}))
        with trio.fail_after(5), pytest.raises(ConnectionClosed):
            await ws.get_message()  # the server hangs up after stop
    assert _sample(calls, "voicebot_calls_total", reason="stop") == 1
    assert _sample(calls, "voicebot_bad_frames_total") == 3
    assert _sample(calls, "voicebot_frames_in_total") == 6


async def test_abrupt_close_without_stop_is_recorded_as_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = CallServer(ServerConfig(), EchoHandler)
    async with connected_call(calls) as ws:
        await ws.send_message(json.dumps({"event": "connected"}))
        await trio.testing.wait_all_tasks_blocked()
        assert calls.active_calls == 1
    with trio.fail_after(5):
        await calls.wait_idle()
    assert _sample(calls, "voicebot_calls_total", reason="closed") == 1
    assert _sample(calls, "voicebot_calls_total", reason="stop") == 0


async def test_the_call_time_limit_ends_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = CallServer(ServerConfig(max_call_seconds=60.0, idle_seconds=90.0), EchoHandler)
    async with connected_call(calls) as ws:
        await ws.send_message(json.dumps({"event": "connected"}))
        await ws.send_message(json.dumps(
            {"event": "start", "start": {"stream_sid": "s1", "call_sid": "c1"}}))
        with trio.fail_after(120), pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()  # blocks until the server closes the socket
        assert closed.value.reason is not None
        assert closed.value.reason.code == 1000
    assert _sample(calls, "voicebot_calls_total", reason="time_limit") == 1
    assert 60.0 <= trio.current_time() < 62.0


async def test_twilio_dialect_echo_uses_mulaw_and_stream_sid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = CallServer(ServerConfig(), EchoHandler)
    script = speech_like_script(speech_s=1.0, silence_s=1.0, repeats=1)
    codes = ulaw_encode(script).tobytes()
    sid = "MZ" + "0" * 32
    received: list[dict[str, Any]] = []
    async with connected_call(calls, "/twilio") as ws:
        await ws.send_message(json.dumps({"event": "connected", "protocol": "Call"}))
        await ws.send_message(json.dumps({"event": "start", "streamSid": sid, "start": {
            "streamSid": sid, "callSid": "CA1", "accountSid": "AC1", "tracks": ["inbound"],
            "customParameters": {"lead": "7"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
        t0 = trio.current_time()
        for k in range(len(codes) // 160):  # 20 ms frames, as Twilio sends them
            await trio.sleep_until(t0 + k * 0.02)
            payload = base64.b64encode(codes[k * 160:(k + 1) * 160]).decode()
            await ws.send_message(json.dumps(
                {"event": "media", "streamSid": sid, "media": {"track": "inbound",
                                                               "payload": payload}}))
        with trio.move_on_after(3.0):
            while True:
                received.append(json.loads(await ws.get_message()))
    media = [m for m in received if m["event"] == "media"]
    marks = [m for m in received if m["event"] == "mark"]
    assert all(m["streamSid"] == sid for m in received)
    assert len(marks) == 1
    # μ-law: one byte per sample; about the utterance's second of audio came back.
    echoed = sum(len(base64.b64decode(m["media"]["payload"])) for m in media)
    assert 1.0 * 8000 <= echoed <= 1.6 * 8000


async def test_the_caller_simulator_counts_every_kind_of_protocol_violation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The load benchmark's verdict rests on this validator, so check it bites."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    script = speech_like_script(repeats=1)
    async with trio.open_nursery() as nursery:

        async def bad_server() -> None:
            request = await read_request(server_stream, WebSocketLimits())
            assert request is not None
            ws = await request.accept()
            await ws.get_message()  # connected
            sid = json.loads(await ws.get_message())["stream_sid"]
            odd = base64.b64encode(bytes(321)).decode()
            big = base64.b64encode(bytes(320 * 400)).decode()
            for frame in (
                {"event": "media", "stream_sid": sid, "media": {"payload": odd}},
                {"event": "media", "stream_sid": sid, "media": {"payload": big}},
                {"event": "media", "stream_sid": sid, "media": {"payload": "%%%"}},
                {"event": "media", "stream_sid": "other", "media": {"payload": ""}},
                {"event": "hangup", "stream_sid": sid},
            ):
                await ws.send_message(json.dumps(frame))
            await ws.send_message("not json")
            with pytest.raises(ServerSideClosed):  # the caller's media, then its hang-up
                await _drain_server_side(ws)

        nursery.start_soon(bad_server)
        ws = await wrap_client_stream(nursery, client_stream, "t", "/media")  # type: ignore[arg-type]
        result = await converse(ws, script, seconds=1.0, tail_seconds=0.5)
        await ws.aclose()
    assert result.violations == {
        "payload not a 320-byte multiple": 2, "payload over 100 KB": 1, "bad base64": 1,
        "wrong stream_sid": 1, "unknown event": 1, "not json": 1,
    }

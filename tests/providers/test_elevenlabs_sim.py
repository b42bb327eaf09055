"""The ElevenLabs simulator driven with the vendor's documented message sequences
(raw trio-websocket and httpx, no client code of ours), plus the HTTP fallback
client against it."""

from __future__ import annotations

import base64
import gc
import json
import warnings
from contextlib import aclosing
from typing import Any

import httpx
import numpy as np
import pytest
import trio
import trio.testing
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection

import dsp
from providers.config import ElevenLabsConfig, Secret
from providers.exceptions import AuthError, RateLimited
from providers.sim.elevenlabs_sim import ElevenLabsSim, open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.tts.elevenlabs_http import open_elevenlabs_http, stream_speech
from providers.usage import UsageCounter

KEY = "xi-test-key"
INIT = {"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.8},
        "generation_config": {"chunk_length_schedule": [120, 160, 250, 290]}}


def ws_url(sim: ElevenLabsSim, endpoint: str = "stream-input", fmt: str = "pcm_16000") -> str:
    return (f"ws://127.0.0.1:{sim.port}/v1/text-to-speech/en-us/{endpoint}"
            f"?model_id=eleven_flash_v2_5&output_format={fmt}")


async def read_until_close(ws: WebSocketConnection) -> tuple[list[dict[str, Any]], int]:
    """Frames until the server closes, and its close code. Also closes our TCP
    socket: trio-websocket 0.12 leaves it open after a server-initiated close."""
    frames: list[dict[str, Any]] = []
    code = -1
    try:
        while True:
            frames.append(json.loads(await ws.get_message()))
    except ConnectionClosed as exc:
        code = exc.reason.code if exc.reason is not None else -1
    await ws._stream.aclose()
    return frames, code


def audio_of(frames: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(f["audio"]) for f in frames if f.get("audio"))


def collect_rejected_sockets() -> None:
    """trio-websocket 0.12 never closes the client socket of a refused handshake
    (``ConnectionRejected``); collect it here, where that known leak is expected,
    instead of letting a later test trip over its ResourceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def test_stream_input_schedule_flush_and_eos(autojump_clock: Any) -> None:
    headers = [(b"xi-api-key", KEY.encode())]
    async with open_elevenlabs_sim(api_key=KEY) as sim, trio_websocket.open_websocket_url(
            ws_url(sim), extra_headers=headers) as ws:
        await ws.send_message(json.dumps(INIT))
        await ws.send_message(json.dumps({"text": "Hello there. "}))
        await trio.testing.wait_all_tasks_blocked()
        log = sim.connections[0]
        assert log.generations == []  # 13 characters wait for the 120-character schedule
        await ws.send_message(json.dumps({"text": "How are you today? ", "flush": True}))
        # The second generation waits for 160 characters: 170 trigger it.
        await ws.send_message(json.dumps({"text": "Long text " * 17}))
        await ws.send_message(json.dumps({"text": "The end. "}))
        await ws.send_message(json.dumps({"text": ""}))  # EOS
        frames, code = await read_until_close(ws)
    assert [text for _, text in log.generations] == [
        "Hello there. How are you today? ", "Long text " * 17, "The end. "]
    assert code == 1000
    assert frames[-1] == {"isFinal": True}
    assert all(f["isFinal"] is None for f in frames[:-1])
    assert frames[0]["alignment"]["chars"][:5] == list("Hello")
    pcm = np.frombuffer(audio_of(frames), "<i2")
    assert 6.0 < len(pcm) / 16000 < 20.0
    assert np.abs(pcm).max() > 3000


@pytest.mark.parametrize("first", [{"text": "Hello "}, {"text": ""}])
async def test_first_message_must_be_the_init_space(autojump_clock: Any,
                                                    first: dict[str, Any]) -> None:
    async with open_elevenlabs_sim() as sim, trio_websocket.open_websocket_url(
            ws_url(sim)) as ws:
        await ws.send_message(json.dumps(first))
        frames, code = await read_until_close(ws)
    assert code == 1008
    assert frames == [{"message": frames[0]["message"], "error": "invalid_message",
                       "code": 1008}]


async def test_bad_key_and_binary_frames_are_1008(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim(api_key=KEY) as sim:
        async with trio_websocket.open_websocket_url(
                ws_url(sim), extra_headers=[(b"xi-api-key", b"nope")]) as ws:
            await ws.send_message(json.dumps(INIT))
            bad_key, code = await read_until_close(ws)
        assert (bad_key[0]["error"], code) == ("invalid_api_key", 1008)
        async with trio_websocket.open_websocket_url(ws_url(sim)) as ws:
            await ws.send_message(json.dumps({**INIT, "xi_api_key": KEY}))  # key in body
            await ws.send_message(b"\x00\x01")
            binary, code = await read_until_close(ws)
        assert (binary[0]["error"], code) == ("invalid_message", 1008)


async def test_idle_timeout_closes_after_20_seconds(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim() as sim, trio_websocket.open_websocket_url(
            ws_url(sim)) as ws:
        await ws.send_message(json.dumps(INIT))
        await trio.sleep(15)
        await ws.send_message(json.dumps({"text": " "}))  # keep-alive
        start = trio.current_time()
        frames, code = await read_until_close(ws)
        waited = trio.current_time() - start
    assert waited == pytest.approx(20.0, abs=0.01)
    assert (frames[0]["error"], code) == ("input_timeout_exceeded", 1008)


async def test_multi_context_close_and_isfinal_per_context(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim(max_contexts=2) as sim, trio_websocket.open_websocket_url(
            ws_url(sim, "multi-stream-input", "ulaw_8000")) as ws:
        await ws.send_message(json.dumps({**INIT, "context_id": "a"}))
        await ws.send_message(json.dumps({"text": "First reply. ", "context_id": "a",
                                          "flush": True}))
        await ws.send_message(json.dumps({"text": "Unflushed. ", "context_id": "b"}))
        await ws.send_message(json.dumps({"context_id": "b", "close_context": True}))
        await ws.send_message(json.dumps({"text": "", "context_id": "a"}))  # keep-alive
        await ws.send_message(json.dumps({"close_socket": True}))
        frames, code = await read_until_close(ws)
        log = sim.connections[0]
    assert code == 1000
    assert log.generations == [("a", "First reply. ")]  # b's text was never flushed
    # One isFinal per flush of a (once its audio is out), b's at its close, and
    # a's again when close_socket ends it.
    finals = [f["contextId"] for f in frames if f.get("isFinal") is True]
    assert finals == ["a", "b", "a"]
    audio_a = audio_of([f for f in frames if f.get("contextId") == "a"])
    assert audio_a == bytes(log.audio["a"])
    assert len(audio_a) / 8000 > 0.5  # μ-law: one byte per sample
    assert np.abs(dsp.ulaw_decode(audio_a)).max() > 3000


async def test_too_many_contexts(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim(max_contexts=2) as sim, trio_websocket.open_websocket_url(
            ws_url(sim, "multi-stream-input")) as ws:
        await ws.send_message(json.dumps({**INIT, "context_id": "a"}))
        for context in "bc":
            await ws.send_message(json.dumps({"text": "Hi. ", "context_id": context}))
        frames, code = await read_until_close(ws)
    assert (frames[-1]["error"], code) == ("max_active_conversations", 1008)


async def test_handshake_429_and_unknown_format(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim() as sim:
        sim.inject_rate_limit(retry_after=3)
        with pytest.raises(trio_websocket.ConnectionRejected) as limited:
            async with trio_websocket.open_websocket_url(ws_url(sim)):
                pass
        with pytest.raises(trio_websocket.ConnectionRejected) as bad_format:
            async with trio_websocket.open_websocket_url(ws_url(sim, fmt="wav_1")):
                pass
    statuses = (limited.value.status_code, bad_format.value.status_code)
    headers = limited.value.headers
    del limited, bad_format  # their tracebacks hold the leaked sockets
    collect_rejected_sockets()
    assert statuses == (429, 400)
    assert (b"retry-after", b"3") in headers


# -- HTTP /stream -------------------------------------------------------------------


def http_config(sim: ElevenLabsSim, **overrides: Any) -> ElevenLabsConfig:
    values: dict[str, Any] = {"url": sim.url, "api_key": Secret(KEY), "voice_id": "en-us",
                              "output_format": "ulaw_8000"}
    values.update(overrides)
    return ElevenLabsConfig(**values)


async def test_http_stream_fallback_session(autojump_clock: Any) -> None:
    async def sentences() -> Any:
        for text in ("Hello there.", "  ", "How are you?"):
            yield text

    usage = UsageCounter()
    async with open_elevenlabs_sim(api_key=KEY, ttfb=Fixed(0.3)) as sim, \
            httpx.AsyncClient() as client, \
            open_elevenlabs_http(client, http_config(sim), usage) as session:
        start = trio.current_time()
        first_at = None
        chunks = []
        async with aclosing(session.speak(sentences())) as audio:
            async for chunk in audio:
                first_at = first_at if first_at is not None else trio.current_time() - start
                chunks.append(chunk)
    assert [r["text"] for r in sim.http_requests] == ["Hello there.", "How are you?"]
    assert sim.http_requests[0]["model_id"] == "eleven_flash_v2_5"
    assert first_at == pytest.approx(0.3, abs=0.01)
    pcm = np.frombuffer(b"".join(chunks), "<i2")
    assert session.sample_rate == 8000
    assert 1.0 < len(pcm) / 8000 < 5.0
    assert np.abs(pcm).max() > 3000
    assert usage.statistics().tts_characters == len("Hello there.How are you?")


async def test_http_errors_are_typed(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim(api_key=KEY) as sim, httpx.AsyncClient() as client:
        sim.inject_rate_limit(retry_after=1.5)
        with pytest.raises(RateLimited) as limited:
            async with aclosing(stream_speech(client, http_config(sim), "Hi.")) as audio:
                _ = [chunk async for chunk in audio]
        with pytest.raises(AuthError) as auth:
            async with aclosing(stream_speech(
                    client, http_config(sim, api_key=Secret("bad")), "Hi.")) as audio:
                _ = [chunk async for chunk in audio]
    assert limited.value.retry_after == 1.5
    assert (auth.value.status, auth.value.code) == (401, "invalid_api_key")

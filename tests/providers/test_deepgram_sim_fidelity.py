"""Fidelity: drive the Deepgram simulator with the documented client sequence over a
plain WebSocket (no client code of ours) and check the documented replies."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    wrap_client_stream,
)

from providers.sim.deepgram_sim import open_deepgram_sim

QUERY = ("/v1/listen?model=nova-2&language=en-IN&encoding=linear16&sample_rate=8000"
         "&channels=1&interim_results=true&endpointing=300&utterance_end_ms=1000"
         "&vad_events=true&smart_format=true")
AUTH = [(b"Authorization", b"Token k")]



@asynccontextmanager
async def plain_websocket(
    port: int, resource: str, headers: list[tuple[bytes, bytes]] | None = None
) -> AsyncIterator[WebSocketConnection]:
    """A bare trio-websocket client over a TCP stream we close ourselves
    (``open_websocket_url`` in 0.12 leaks the socket when the server closes first)."""
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(nursery, tcp, f"127.0.0.1:{port}", resource,
                                          extra_headers=headers)
            yield ws
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the handshake refusal is raised by the reader task
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        await trio.aclose_forcefully(tcp)


def audio(silence: float, speech: float, tail: float) -> bytes:
    rng = np.random.default_rng(3)
    t = np.arange(round(speech * 8000)) / 8000
    parts = [rng.normal(0, 3, round(silence * 8000)), 8000 * np.sin(2 * np.pi * 300 * t),
             rng.normal(0, 3, round(tail * 8000))]
    return np.concatenate(parts).astype(np.int16).tobytes()


async def read_until_closed(ws: WebSocketConnection, into: list[dict[str, Any]]) -> None:
    while True:
        into.append(json.loads(await ws.get_message()))


async def test_documented_sequence_gets_documented_messages(autojump_clock: Any) -> None:
    async with open_deepgram_sim(api_key="k") as sim:
        sim.script("I am interested.", "Call me tomorrow.")
        received: list[dict[str, Any]] = []
        async with plain_websocket(sim.port, QUERY, AUTH) as ws:
            first = audio(0.5, 1.0, 1.5)
            for i in range(0, len(first), 1600):  # 100 ms binary frames
                await ws.send_message(first[i:i + 1600])
                await trio.sleep(0.1)
            await ws.send_message('{"type": "KeepAlive"}')
            second = audio(0.2, 0.8, 0.0)
            for i in range(0, len(second), 1600):
                await ws.send_message(second[i:i + 1600])
                await trio.sleep(0.1)
            await ws.send_message('{"type": "Finalize"}')
            await ws.send_message('{"type": "CloseStream"}')
            with pytest.raises(ConnectionClosed) as closed:
                await read_until_closed(ws, received)
        assert closed.value.reason is not None
        assert closed.value.reason.code == 1000
        assert sim.connections[0].keepalives == 1
    kinds = [m["type"] for m in received]
    assert kinds[0] == "SpeechStarted"
    assert received[0]["timestamp"] == 0.5
    assert kinds[-1] == "Metadata"
    assert received[-1]["duration"] == pytest.approx(4.0)
    finals = [m for m in received if m["type"] == "Results" and m["is_final"]]
    assert [(f["speech_final"], f["from_finalize"]) for f in finals] == [
        (True, False), (False, True)]
    first_final = finals[0]
    alternative = first_final["channel"]["alternatives"][0]
    assert alternative["transcript"] == "I am interested."
    assert [w["punctuated_word"] for w in alternative["words"]] == ["I", "am", "interested."]
    assert (first_final["start"], first_final["duration"]) == (0.0, 1.8)
    assert finals[1]["channel"]["alternatives"][0]["transcript"] == "Call me tomorrow."
    assert finals[1]["start"] == 1.8  # finals tile the audio without gaps
    interims = [m for m in received if m["type"] == "Results" and not m["is_final"]]
    assert interims
    assert all(not m["speech_final"] for m in interims)
    ends = [m for m in received if m["type"] == "UtteranceEnd"]
    assert ends == [{"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.5}]


async def test_idle_stream_is_closed_with_net_0001_after_10_s(autojump_clock: Any) -> None:
    async with open_deepgram_sim() as sim, plain_websocket(sim.port, QUERY) as ws:
        start = trio.current_time()
        await ws.send_message(audio(0.1, 0.0, 0.0))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
        assert trio.current_time() - start == pytest.approx(10.0, abs=0.01)
    reason = closed.value.reason
    assert reason is not None
    assert reason.code == 1011
    assert "NET-0001" in (reason.reason or "")


async def test_bad_key_and_bad_encoding_are_refused_with_dg_error() -> None:
    async with open_deepgram_sim(api_key="k") as sim:
        with pytest.raises(ConnectionRejected) as refused:
            async with plain_websocket(sim.port, QUERY, [(b"Authorization", b"Token nope")]):
                pass
        bad = QUERY.replace("linear16", "flac")
        with pytest.raises(ConnectionRejected) as bad_request:
            async with plain_websocket(sim.port, bad, AUTH):
                pass
    headers = dict(refused.value.headers)
    assert refused.value.status_code == 401
    assert headers[b"dg-error"] == b"Invalid credentials."
    assert json.loads(refused.value.body or b"{}")["err_code"] == "INVALID_AUTH"
    assert bad_request.value.status_code == 400


async def test_injected_refusals_carry_status_code_and_retry_after(autojump_clock: Any) -> None:
    async with open_deepgram_sim() as sim:
        sim.inject_refusal(429, retry_after=1)
        sim.inject_refusal(503)
        refusals = []
        for _ in range(2):
            with pytest.raises(ConnectionRejected) as refused:
                async with plain_websocket(sim.port, QUERY):
                    pass
            refusals.append(refused.value)
        async with plain_websocket(sim.port, QUERY) as ws:  # the third attempt is accepted
            await ws.send_message(audio(0.1, 0.0, 0.0))
    limited, down = refusals
    assert limited.status_code == 429
    assert dict(limited.headers)[b"retry-after"] == b"1"
    assert json.loads(limited.body or b"{}")["err_code"] == "TOO_MANY_REQUESTS"
    assert down.status_code == 503
    assert b"retry-after" not in dict(down.headers)
    assert [status for _, status in sim.refused] == [429, 503]
    assert len(sim.connections) == 1


async def test_injected_abort_resets_tcp_without_a_close_frame(autojump_clock: Any) -> None:
    async with open_deepgram_sim() as sim:
        sim.inject_abort(after_seconds=0.5)
        async with plain_websocket(sim.port, QUERY) as ws:
            for _ in range(10):
                with contextlib.suppress(ConnectionClosed):
                    await ws.send_message(audio(0.1, 0.0, 0.0))
                await trio.sleep(0.1)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1006  # abnormal: no close frame was received
    assert sim.connections[0].aborted


async def test_long_speech_gets_split_finals_that_tile_the_words(autojump_clock: Any) -> None:
    words = "one two three four five six seven eight"
    async with open_deepgram_sim(split_final_after=0.8) as sim:
        sim.script(words)
        received: list[dict[str, Any]] = []
        async with plain_websocket(sim.port, QUERY) as ws:
            long_turn = audio(0.5, 1.8, 1.0)
            for i in range(0, len(long_turn), 1600):
                await ws.send_message(long_turn[i:i + 1600])
                await trio.sleep(0.1)
            await ws.send_message('{"type": "CloseStream"}')
            with pytest.raises(ConnectionClosed):
                await read_until_closed(ws, received)
    finals = [m for m in received if m["type"] == "Results" and m["is_final"]]
    # Split every 0.8 s of speech (onset 0.5 s), then the VAD's endpoint.
    assert [(f["start"], f["speech_final"]) for f in finals] == [
        (0.0, False), (1.3, False), (2.1, True)]
    assert [f["duration"] for f in finals[:2]] == [1.3, 0.8]  # finals tile the audio
    texts = [f["channel"]["alternatives"][0]["transcript"] for f in finals]
    assert texts == ["one two three", "four five", "six seven eight"]  # 3 words/s


@pytest.mark.parametrize("answer_idle", [False, True])
async def test_a_finalize_with_nothing_to_settle_may_get_no_answer(
    answer_idle: bool, autojump_clock: Any,
) -> None:
    # "You *may* receive a response with the from_finalize attribute set to true
    # [...] typically when there is a noticeable amount of audio buffered"
    async with open_deepgram_sim(answer_idle_finalize=answer_idle) as sim:
        sim.script("I am interested.")
        received: list[dict[str, Any]] = []
        async with plain_websocket(sim.port, QUERY) as ws:
            # speech to 1.5 s, then quiet: the endpoint's speech_final at 1.8 s
            # gives every word; a Finalize right then has nothing to settle
            turn = audio(0.5, 1.0, 0.3)
            for i in range(0, len(turn), 1600):
                await ws.send_message(turn[i:i + 1600])
                await trio.sleep(0.1)
            await ws.send_message('{"type": "Finalize"}')
            await trio.sleep(0.1)
            # 300 ms more audio buffered: the next Finalize is answered (empty)
            quiet = audio(0.3, 0.0, 0.0)
            for i in range(0, len(quiet), 1600):
                await ws.send_message(quiet[i:i + 1600])
                await trio.sleep(0.1)
            await ws.send_message('{"type": "Finalize"}')
            await ws.send_message('{"type": "CloseStream"}')
            with pytest.raises(ConnectionClosed):
                await read_until_closed(ws, received)
    finals = [(m["speech_final"], m["from_finalize"], m["start"] + m["duration"],
               m["channel"]["alternatives"][0]["transcript"])
              for m in received if m["type"] == "Results" and m["is_final"]]
    assert finals == [
        (True, False, 1.8, "I am interested."),
        *([(False, True, 1.8, "")] if answer_idle else []),
        (False, True, pytest.approx(2.1), "")]
    assert sim.connections[0].finalizes == 2
    assert sim.connections[0].unanswered_finalizes == (0 if answer_idle else 1)

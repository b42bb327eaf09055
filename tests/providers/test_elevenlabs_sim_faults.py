"""The ElevenLabs simulator's strictness and fault knobs, driven with raw
trio-websocket and httpx (no client code of ours): sequential generation per
socket, isFinal per flush, close_context semantics, in-band internal_error,
TCP resets and 429s on reconnect."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
import trio_websocket

from providers.sim.elevenlabs_audio import render
from providers.sim.elevenlabs_sim import open_elevenlabs_sim
from providers.sim.latency import Fixed
from tests.providers.test_elevenlabs_sim import (
    INIT,
    audio_of,
    collect_rejected_sockets,
    read_until_close,
    ws_url,
)

MULTI = "multi-stream-input"


def message(context: str, text: str | None = None, **flags: Any) -> str:
    data: dict[str, Any] = {"context_id": context, **flags}
    if text is not None:
        data["text"] = text
    return json.dumps(data)


async def frames_until(ws: trio_websocket.WebSocketConnection, context: str,
                       arrivals: list[tuple[float, dict[str, Any]]]) -> None:
    """Read frames (with their arrival time) until ``context``'s next isFinal."""
    while True:
        frame = json.loads(await ws.get_message())
        arrivals.append((trio.current_time(), frame))
        if frame.get("isFinal") and frame.get("contextId") == context:
            return


@pytest.mark.parametrize("sequential", [True, False])
async def test_generation_is_sequential_per_socket(autojump_clock: Any,
                                                   sequential: bool) -> None:
    async with open_elevenlabs_sim(ttfb=Fixed(0.2), frame_gap=Fixed(0.1),
                                   sequential=sequential) as sim, \
            trio_websocket.open_websocket_url(ws_url(sim, MULTI)) as ws:
        await ws.send_message(json.dumps({**INIT, "context_id": "idle"}))
        start = trio.current_time()
        await ws.send_message(message("a", "A long first reply, with several clauses. ",
                                      flush=True))
        await ws.send_message(message("b", "Second. ", flush=True))
        arrivals: list[tuple[float, dict[str, Any]]] = []
        await frames_until(ws, "a", arrivals)
        if sequential:
            await frames_until(ws, "b", arrivals)
        else:
            while not any(f.get("isFinal") and f.get("contextId") == "b" for _, f in arrivals):
                await frames_until(ws, "b", arrivals)
        await ws.send_message(json.dumps({"close_socket": True}))
        await read_until_close(ws)
    first_b = min(t for t, f in arrivals if f.get("contextId") == "b" and f.get("audio"))
    last_a = max(t for t, f in arrivals if f.get("contextId") == "a" and f.get("audio"))
    if sequential:
        assert first_b == pytest.approx(last_a + 0.2)  # b waits for a, then its own ttfb
    else:
        assert first_b == pytest.approx(start + 0.2)  # both start at once


async def test_isfinal_follows_each_flush_and_the_context_stays_open(
    autojump_clock: Any,
) -> None:
    async with open_elevenlabs_sim() as sim, trio_websocket.open_websocket_url(
            ws_url(sim, MULTI)) as ws:
        await ws.send_message(json.dumps({**INIT, "context_id": "a"}))
        arrivals: list[tuple[float, dict[str, Any]]] = []
        await ws.send_message(message("a", "One. ", flush=True))
        await frames_until(ws, "a", arrivals)
        await ws.send_message(message("a", "Two. ", flush=True))
        await ws.send_message(message("a", flush=True))  # nothing buffered: isFinal at once
        await frames_until(ws, "a", arrivals)
        await frames_until(ws, "a", arrivals)
        await ws.send_message(json.dumps({"close_socket": True}))
        await read_until_close(ws)
        log = sim.connections[0]
    kinds = ["final" if f.get("isFinal") else "audio" for _, f in arrivals]
    assert kinds.count("final") == 3
    assert kinds[-2:] == ["final", "final"]
    assert [text for _, text in log.generations] == ["One. ", "Two. "]


async def test_finals_at_close_a_bare_flush_gets_none_a_close_one_after_all_its_audio(
    autojump_clock: Any,
) -> None:
    # The live-like behaviour: only a context's end is answered with isFinal.
    async with open_elevenlabs_sim(ttfb=Fixed(0.2), frame_gap=Fixed(0.05),
                                   finals_per_flush=False) as sim, \
            trio_websocket.open_websocket_url(ws_url(sim, MULTI)) as ws:
        await ws.send_message(json.dumps({**INIT, "context_id": "idle"}))
        await ws.send_message(message("a", "One. ", flush=True))
        await ws.send_message(message("a", "Two, a little longer. ", flush=True))
        await ws.send_message(message("a", flush=True))
        arrivals: list[tuple[float, dict[str, Any]]] = []
        with trio.move_on_after(10):  # far past the audio of both flushes
            while True:
                arrivals.append((trio.current_time(), json.loads(await ws.get_message())))
        assert not any(f.get("isFinal") for _, f in arrivals)  # no flush answered
        heard = len(arrivals)
        closed_at = trio.current_time()
        await ws.send_message(message("a", close_context=True))
        await frames_until(ws, "a", arrivals)
        # Closed right after its flush: spoken whole, then its one isFinal.
        await ws.send_message(message("b", "Three. ", flush=True))
        await ws.send_message(message("b", close_context=True))
        await frames_until(ws, "b", arrivals)
        await ws.send_message(json.dumps({"close_socket": True}))
        rest, code = await read_until_close(ws)
        log = sim.connections[0]
    assert code == 1000
    finals = [(t, f["contextId"]) for t, f in arrivals if f.get("isFinal")]
    assert finals[0] == (pytest.approx(closed_at), "a")  # its audio was all out already
    assert [context for _, context in finals] == ["a", "b"]
    after = [(f["contextId"], "final" if f.get("isFinal") else "audio")
             for _, f in arrivals[heard:]]
    assert after[0] == ("a", "final")
    assert after[-1] == ("b", "final")  # after all of b's audio
    assert set(after[1:-1]) == {("b", "audio")}
    assert audio_of([f for _, f in arrivals if f.get("contextId") == "b"]) == bytes(
        log.audio["b"])
    assert [f.get("contextId") for f in rest if f.get("isFinal")] == ["idle"]  # close_socket
    assert log.finals == ["a", "b", "idle"]


@pytest.mark.parametrize("discards", [False, True])
async def test_close_context_right_after_flush_finishes_or_discards(
    autojump_clock: Any, discards: bool,
) -> None:
    async with open_elevenlabs_sim(ttfb=Fixed(0.2), close_context_discards=discards) as sim, \
            trio_websocket.open_websocket_url(ws_url(sim, MULTI)) as ws:
        await ws.send_message(json.dumps({**INIT, "context_id": "idle"}))
        await ws.send_message(message("a", "Flushed and closed at once. ", flush=True))
        await ws.send_message(message("a", close_context=True))
        await ws.send_message(json.dumps({"close_socket": True}))
        frames, code = await read_until_close(ws)
    audio = audio_of([f for f in frames if f.get("contextId") == "a"])
    assert code == 1000
    assert bool(audio) is not discards  # the discarding vendor sends an empty reply
    assert (sim.connections[0].discarded == ["a"]) is discards


async def test_close_context_on_a_speaking_context_stops_it_and_a_second_close_is_ignored(
    autojump_clock: Any,
) -> None:
    async with open_elevenlabs_sim(ttfb=Fixed(0.2), frame_gap=Fixed(0.1)) as sim, \
            trio_websocket.open_websocket_url(ws_url(sim, MULTI)) as ws:
        await ws.send_message(json.dumps({**INIT, "context_id": "idle"}))
        long_reply = "A long reply that keeps going for a good while. " * 3
        await ws.send_message(message("a", long_reply, flush=True))
        first = json.loads(await ws.get_message())
        assert first.get("audio")
        await ws.send_message(message("a", close_context=True))  # barge-in: stops a
        await ws.send_message(message("a", close_context=True))  # already closed
        start = trio.current_time()
        await ws.send_message(message("b", "Next. ", flush=True))
        arrivals: list[tuple[float, dict[str, Any]]] = []
        await frames_until(ws, "b", arrivals)
        log = sim.connections[0]
        await ws.send_message(json.dumps({"close_socket": True}))
        await read_until_close(ws)
    first_b = min(t for t, f in arrivals if f.get("contextId") == "b" and f.get("audio"))
    assert first_b - start <= 0.2 + 0.1 + 1e-6  # not after the rest of a
    assert log.discarded == ["a"]
    whole = len(render(long_reply, "pcm_16000", "en-us"))
    assert len(log.audio["a"]) <= 2 * 8000 < whole / 10  # a frame or two of 0.25 s, no more


async def test_injected_internal_error_mid_reply_then_close_1008(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim() as sim:
        sim.inject_internal_error(after_frames=2)
        async with trio_websocket.open_websocket_url(ws_url(sim, MULTI)) as ws:
            await ws.send_message(json.dumps({**INIT, "context_id": "idle"}))
            await ws.send_message(message("a", "Hello there, this reply is long enough. ",
                                          flush=True))
            frames, code = await read_until_close(ws)
    assert code == 1008
    assert [bool(f.get("audio")) for f in frames] == [True, True, False]
    error = frames[-1]
    assert (error["error"], error["code"]) == ("internal_error", 1008)
    assert "not charged" in error["message"]
    assert sim.connections[0].fault == "internal_error"


@pytest.mark.parametrize("endpoint", ["stream-input", MULTI])
async def test_injected_drop_resets_tcp_without_a_close_frame(
    autojump_clock: Any, endpoint: str,
) -> None:
    async with open_elevenlabs_sim() as sim:
        sim.inject_drop(after_frames=1)
        async with trio_websocket.open_websocket_url(ws_url(sim, endpoint)) as ws:
            await ws.send_message(json.dumps(INIT))
            await ws.send_message(json.dumps({"text": "Hello there, how are you today? ",
                                              "flush": True}))
            frames, code = await read_until_close(ws)
    assert code == 1006  # abnormal closure: the peer vanished
    assert [bool(f.get("audio")) for f in frames] == [True]
    assert sim.connections[0].fault == "drop"


async def test_rate_limit_can_wait_for_the_reconnect(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim() as sim:
        sim.inject_rate_limit(retry_after=1, once_accepted=1)
        async with trio_websocket.open_websocket_url(ws_url(sim)) as ws:  # first: accepted
            await ws.send_message(json.dumps(INIT))
        with pytest.raises(trio_websocket.ConnectionRejected) as limited:
            async with trio_websocket.open_websocket_url(ws_url(sim)):
                pass
        status = limited.value.status_code
        del limited
        collect_rejected_sockets()
        assert status == 429
        assert len(sim.rate_limited) == 1


async def read_body(client: httpx.AsyncClient, url: str, into: bytearray) -> None:
    async with client.stream("POST", url, json={"text": "A sentence to speak."}) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            into += chunk


async def test_injected_drop_cuts_the_http_body_mid_way(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim(frame_seconds=0.1) as sim, httpx.AsyncClient() as client:
        sim.inject_drop(after_frames=2)
        url = f"{sim.url}/v1/text-to-speech/en-us/stream?output_format=pcm_8000"
        received = bytearray()
        with pytest.raises(httpx.TransportError):
            await read_body(client, url, received)
    assert len(received) == 2 * 1600  # two 100 ms frames at 8 kHz, then the reset


async def test_a_stalled_generation_sends_nothing_until_the_stall_is_over(
    autojump_clock: Any,
) -> None:
    async with open_elevenlabs_sim(ttfb=Fixed(0.2), frame_gap=Fixed(0.0)) as sim, \
            trio_websocket.open_websocket_url(ws_url(sim, MULTI)) as ws:
        await ws.send_message(json.dumps({**INIT, "context_id": "idle"}))
        sim.inject_stall(3.0)
        start = trio.current_time()
        await ws.send_message(message("a", "Stalled first. ", flush=True))
        await ws.send_message(message("b", "Then on time. ", flush=True))
        arrivals: list[tuple[float, dict[str, Any]]] = []
        await frames_until(ws, "a", arrivals)
        await frames_until(ws, "b", arrivals)
        await ws.send_message(json.dumps({"close_socket": True}))
        await read_until_close(ws)
    first_a = min(t for t, f in arrivals if f.get("contextId") == "a" and f.get("audio"))
    first_b = min(t for t, f in arrivals if f.get("contextId") == "b" and f.get("audio"))
    assert first_a == pytest.approx(start + 3.2)  # the stall, then the usual ttfb
    assert first_b == pytest.approx(first_a + 0.2)  # only one generation stalls
    [log] = sim.connections
    assert log.stalled == ["a"]
    sent = audio_of([f for _, f in arrivals if f.get("contextId") == "a"])
    assert sent
    assert sent == bytes(log.audio["a"])

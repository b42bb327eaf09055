"""Deepgram client against the loopback Deepgram simulator, on virtual time."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from providers.config import DeepgramConfig, Secret
from providers.exceptions import (
    AuthError,
    ConnectError,
    DeadlineExceeded,
    HandshakeRejected,
    ProviderClosed,
    StreamClosed,
)
from providers.sim.deepgram_sim import DeepgramSim, open_deepgram_sim
from providers.sim.latency import Fixed
from providers.stt.base import Endpoint, Final, Interim, SpeechDetected, STTEvent, UtteranceEnd
from providers.stt.deepgram import open_deepgram
from providers.stt.turns import TurnAssembler
from providers.usage import UsageCounter
from tests.providers.deepgram_calls import (
    KEY,
    RATE,
    call_audio,
    collecting,
    config_for,
    encode,
    send_paced,
)

TURN_AUDIO = call_audio(("silence", 0.5), ("speech", 1.5), ("silence", 1.5))


async def test_one_turn_events_query_and_usage(autojump_clock: Any) -> None:
    async with open_deepgram_sim(api_key=KEY) as sim:
        sim.script("I want solar for my home.")
        usage = UsageCounter()
        config = config_for(sim, keyterms=("Acme", "lakh"))
        async with open_deepgram(config, usage) as stream, collecting(stream) as events:
            await send_paced(stream, TURN_AUDIO.tobytes(), 2 * RATE)
        query = sim.connections[0].query
    assert {k: v[0] for k, v in query.items() if k != "keywords"} == {
        "model": "nova-2", "language": "en-IN", "encoding": "linear16", "sample_rate": "8000",
        "channels": "1", "interim_results": "true", "endpointing": "300",
        "vad_events": "true", "smart_format": "true", "utterance_end_ms": "1000",
    }
    assert query["keywords"] == ["Acme", "lakh"]
    assert events[0] == SpeechDetected(0.5)
    assert any(isinstance(e, Interim) for e in events)
    finals = [e for e in events if isinstance(e, Final)]
    assert finals == [Final("I want solar for my home.", 0.0, 2.3, speech_final=True)]
    assert isinstance(events[-1], UtteranceEnd)
    assert events[-1].t == pytest.approx(2.0, abs=0.011)
    turns = [t for t in map(TurnAssembler().feed, events) if t is not None]
    assert [t.text for t in turns] == ["I want solar for my home."]
    assert usage.statistics().stt_seconds == pytest.approx(3.5)
    assert sim.connections[0].close_streams == 1
    assert sim.connections[0].close_code == 1000


async def test_nova3_sends_keyterm_and_mulaw_audio_works(autojump_clock: Any) -> None:
    async with open_deepgram_sim() as sim:
        sim.script("haan ji")
        config = config_for(sim, model="nova-3", encoding="mulaw", keyterms=("EMI",))
        async with open_deepgram(config) as stream, collecting(stream) as events:
            await send_paced(stream, encode(TURN_AUDIO, "mulaw"), RATE)
        assert sim.connections[0].query["keyterm"] == ["EMI"]
        assert "keywords" not in sim.connections[0].query
    assert [e.text for e in events if isinstance(e, Final)] == ["haan ji"]


@pytest.mark.parametrize("answer_idle", [False, True])
async def test_finalize_flushes_at_once_and_a_finalize_with_nothing_pending_may_go_unanswered(
    answer_idle: bool, autojump_clock: Any,
) -> None:
    async with open_deepgram_sim(answer_idle_finalize=answer_idle) as sim:
        sim.script("my budget is five lakh")
        async with open_deepgram(config_for(sim)) as stream, collecting(stream) as events:
            await send_paced(stream, call_audio(("silence", 0.5), ("speech", 1.4)).tobytes(),
                             2 * RATE)
            await stream.finalize()
            await trio.testing.wait_all_tasks_blocked()
            flushed = [e for e in events if isinstance(e, Final)]
            assert flushed == [Final("my budget is five lakh", 0.0, 1.9, from_finalize=True)]
            answered = len(events)
            await stream.finalize()  # nothing new to settle
            await trio.testing.wait_all_tasks_blocked()
            # the vendor may send nothing at all; the lenient sim an empty final
            assert events[answered:] == ([Endpoint(1.9, from_finalize=True)] if answer_idle
                                         else [])
            # 700 ms more audio (no words in it): something to settle, answered
            answered = len(events)
            await send_paced(stream, call_audio(("silence", 0.7)).tobytes(), 2 * RATE)
            await stream.finalize()
            await trio.testing.wait_all_tasks_blocked()
            assert [(type(e), round(getattr(e, "t", -1.0), 3), getattr(e, "from_finalize", None))
                    for e in events[answered:]] == [
                (Endpoint, 2.2, False),  # the endpoint's empty speech_final
                (Endpoint, 2.6, True)]
        assert sim.connections[0].finalizes == 3
        assert sim.connections[0].unanswered_finalizes == (0 if answer_idle else 1)


async def test_finalize_mid_speech_releases_only_the_words_already_spoken(
    autojump_clock: Any,
) -> None:
    # 3 words/s from the onset at 0.5 s: by 1.5 s the caller has said four words.
    async with open_deepgram_sim() as sim:
        sim.script("my budget is five lakh rupees")
        async with open_deepgram(config_for(sim)) as stream, collecting(stream) as events:
            await send_paced(stream, call_audio(("silence", 0.5), ("speech", 1.0)).tobytes(),
                             2 * RATE)
            await stream.finalize()
            await trio.testing.wait_all_tasks_blocked()
            assert [e for e in events if isinstance(e, Final)] == [
                Final("my budget is five", 0.0, 1.5, from_finalize=True)]
            await send_paced(stream, call_audio(("speech", 0.5), ("silence", 0.5)).tobytes(),
                             2 * RATE)
    finals = [e for e in events if isinstance(e, Final)]
    assert finals[1:] == [Final("lakh rupees", 1.5, 2.3, speech_final=True)]
    turns = [t.text for t in map(TurnAssembler().feed, events) if t is not None]
    assert turns == ["my budget is five", "lakh rupees"]


async def test_empty_finals_are_skipped_but_still_end_the_turn(autojump_clock: Any) -> None:
    # No script: speech without words (noise).
    async with open_deepgram_sim() as sim, open_deepgram(config_for(sim)) as stream, collecting(
        stream
    ) as events:
        await send_paced(stream, TURN_AUDIO.tobytes(), 2 * RATE)
    assert not [e for e in events if isinstance(e, Final | Interim)]
    assert Endpoint(2.3) in events
    results = [m for m in sim.connections[0].sent if m["type"] == "Results" and m["is_final"]]
    assert results
    assert results[0]["is_final"]
    assert results[0]["speech_final"]
    assert results[0]["channel"]["alternatives"][0]["transcript"] == ""


async def test_keepalive_only_after_audio_and_only_while_silent(autojump_clock: Any) -> None:
    async with open_deepgram_sim() as sim:
        async with open_deepgram(config_for(sim)) as stream:
            await trio.sleep(9)
            assert sim.connections[0].keepalives == 0  # no audio yet: no KeepAlive
            await send_paced(stream, call_audio(("silence", 5.0)).tobytes(), 2 * RATE)
            assert sim.connections[0].keepalives == 0  # audio flowing: none needed
            await trio.sleep(30)  # would hit NET-0001 at 10 s without KeepAlive
            assert sim.connections[0].keepalives == 7  # every 4 s
        assert sim.connections[0].close_code == 1000
        assert len(sim.connections) == 1


async def send_then_wait_forever(config: DeepgramConfig) -> None:
    async with open_deepgram(config) as stream:
        await stream.send_audio(call_audio(("silence", 0.1)).tobytes())
        await trio.sleep_forever()


async def test_idle_close_net_0001_is_a_stream_closed_error(autojump_clock: Any) -> None:
    async with open_deepgram_sim() as sim:
        config = config_for(sim, keepalive_interval=60.0, max_reconnects=0)
        start = trio.current_time()
        with pytest.raises(StreamClosed) as caught:
            await send_then_wait_forever(config)
    assert (caught.value.status, caught.value.code) == (1011, "NET-0001")
    assert trio.current_time() - start == pytest.approx(10.0, abs=0.01)


async def test_drop_mid_utterance_reconnects_and_replays_without_losing_words(
    autojump_clock: Any,
) -> None:
    audio = call_audio(("silence", 0.5), ("speech", 1.5), ("silence", 1.5),
                       ("speech", 1.0), ("silence", 1.5))
    async with open_deepgram_sim() as sim:
        sim.script("first thing I said", "and the second")
        sim.inject_drop(after_seconds=1.2)  # mid first utterance, before its final
        async with open_deepgram(config_for(sim)) as stream, collecting(stream) as events:
            await send_paced(stream, audio.tobytes(), 2 * RATE)
        assert stream.reconnects == 1
        assert stream.lost_seconds == 0
        # 1.2 s went to the dropped connection and was replayed: billed twice.
        assert stream.usage.statistics().stt_seconds == pytest.approx(len(audio) / RATE + 1.2)
        assert len(stream.reconnect_seconds) == 1  # virtual time: replay is instant
        assert stream.reconnect_seconds[0] == pytest.approx(0.0, abs=1e-3)
        assert [c.close_code for c in sim.connections] == [1011, 1000]
        # The second connection got everything from the start of the call again.
        assert sim.connections[1].audio_bytes == len(audio.tobytes())
        assert len(stream.request_ids) == 2
    finals = [e for e in events if isinstance(e, Final)]
    assert finals == [
        Final("first thing I said", 0.0, 2.3, speech_final=True),
        Final("and the second", 2.3, 4.8, speech_final=True),
    ]
    assert [e for e in events if isinstance(e, SpeechDetected)] == [
        SpeechDetected(0.5), SpeechDetected(3.5)]


async def test_drop_after_a_final_replays_only_the_uncovered_audio(autojump_clock: Any) -> None:
    audio = call_audio(("silence", 0.5), ("speech", 1.0), ("silence", 1.0),
                       ("speech", 1.0), ("silence", 1.0))
    async with open_deepgram_sim() as sim:
        sim.script("one", "two")
        sim.inject_drop(after_seconds=3.0)  # final for "one" at 1.8 s; drop inside "two"
        async with open_deepgram(config_for(sim)) as stream, collecting(stream) as events:
            await send_paced(stream, audio.tobytes(), 2 * RATE)
        replayed = sim.connections[1].audio_bytes / (2 * RATE)
    assert replayed == pytest.approx(4.5 - 1.8)
    finals = [e for e in events if isinstance(e, Final)]
    assert [(f.text, f.start, f.end) for f in finals] == [
        ("one", 0.0, 1.8), ("two", 1.8, pytest.approx(3.8))]


async def test_bad_audio_data_0000_is_not_retried(autojump_clock: Any) -> None:
    async with open_deepgram_sim() as sim:
        sim.inject_bad_audio()
        with pytest.raises(StreamClosed) as caught:
            async with open_deepgram(config_for(sim)) as stream:
                await send_paced(stream, TURN_AUDIO.tobytes(), 2 * RATE)
        assert (caught.value.status, caught.value.code) == (1008, "DATA-0000")
        assert len(sim.connections) == 1


async def test_handshake_failures_carry_deepgrams_error(autojump_clock: Any) -> None:
    async with open_deepgram_sim(api_key=KEY) as sim:
        bad_key = DeepgramConfig(url=sim.url, api_key=Secret("wrong"))
        with pytest.raises(AuthError) as auth:
            async with open_deepgram(bad_key):
                pass
        with pytest.raises(HandshakeRejected) as bad:
            async with open_deepgram(config_for(sim, encoding="opus")):
                pass
    assert (auth.value.status, auth.value.code) == (401, "INVALID_AUTH")
    assert auth.value.detail == "Invalid credentials."
    assert auth.value.request_id
    assert "wrong" not in str(auth.value)
    assert (bad.value.status, bad.value.code) == (400, "Bad Request")
    assert not isinstance(bad.value, AuthError)


async def test_aclose_flushes_the_pending_utterance_and_ends_events(autojump_clock: Any) -> None:
    async with open_deepgram_sim() as sim:
        sim.script("cut short")
        async with open_deepgram(config_for(sim)) as stream:
            await send_paced(stream, call_audio(("silence", 0.5), ("speech", 0.8)).tobytes(),
                             2 * RATE)
            await stream.aclose()
            events = [e async for e in stream.events()]
            with pytest.raises(ProviderClosed):
                await stream.send_audio(b"\0\0")
        assert [m["type"] for m in sim.connections[0].sent][-1] == "Metadata"
    assert Final("cut short", 0.0, 1.3) in events


async def test_cancel_mid_stream_leaves_no_task_and_the_sim_sees_the_close(
    autojump_clock: Any,
) -> None:
    async with open_deepgram_sim() as sim:
        sim.script("never finished")
        before = len(trio.lowlevel.current_task().child_nurseries)
        with trio.move_on_after(1.0):
            async with open_deepgram(config_for(sim)) as stream:
                await send_paced(stream, TURN_AUDIO.tobytes(), 2 * RATE)
        assert len(trio.lowlevel.current_task().child_nurseries) == before
        await trio.sleep(1)  # virtual: let the sim notice
        assert sim.connections[0].closed_by_client
        assert sim.remaining_script() == ["never finished"]


async def test_replay_buffer_is_bounded_and_reports_lost_audio(autojump_clock: Any) -> None:
    # One long utterance: short pauses (< the 300 ms endpointing) between bursts.
    audio = call_audio(("silence", 0.5), *[("speech", 0.6), ("silence", 0.15)] * 4,
                       ("silence", 1.0))
    async with open_deepgram_sim() as sim:
        sim.script("a long answer")
        sim.inject_drop(after_seconds=3.0)
        config = config_for(sim, replay_seconds=1.0)
        async with open_deepgram(config) as stream, collecting(stream) as events:
            await send_paced(stream, audio.tobytes(), 2 * RATE)
        assert stream.lost_seconds == pytest.approx(2.0)  # 0–2 s fell out of the ring
        assert sim.connections[1].audio_bytes == round((4.5 - 2.0) * 2 * RATE)
        assert stream.reconnects == 1
    finals = [e for e in events if isinstance(e, Final)]
    assert [f.text for f in finals] == ["a long answer"]
    assert finals[0].start == pytest.approx(2.0)  # call time, re-based on the replay start


async def test_reconnects_give_up_after_max_reconnects(autojump_clock: Any) -> None:
    async with open_deepgram_sim() as sim:
        for _ in range(3):
            sim.inject_drop(after_seconds=0.3)
        with pytest.raises(StreamClosed) as caught:
            await send_all(config_for(sim, max_reconnects=2), TURN_AUDIO.tobytes())
        assert len(sim.connections) == 3
    assert caught.value.code == "NET-0000"


async def send_all(config: DeepgramConfig, audio: bytes) -> None:
    async with open_deepgram(config) as stream:
        await send_paced(stream, audio, 2 * RATE)


async def test_unreachable_and_silent_servers(autojump_clock: Any) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with pytest.raises(ConnectError):
        await send_all(DeepgramConfig(url=f"ws://127.0.0.1:{port}"), b"\0\0")

    async def never_answer(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"),
                                        never_answer, 0)
        silent_port = listeners[0].socket.getsockname()[1]
        start = trio.current_time()
        with pytest.raises(DeadlineExceeded) as caught:
            await send_all(DeepgramConfig(url=f"ws://127.0.0.1:{silent_port}",
                                          connect_deadline=2.0), b"\0\0")
        assert caught.value.deadline == "connect"
        assert trio.current_time() - start == pytest.approx(2.0)
        nursery.cancel_scope.cancel()


async def test_sim_result_latency_delays_every_message_in_order(autojump_clock: Any) -> None:
    async with open_deepgram_sim(latency=Fixed(0.25)) as sim:
        sim.script("late words")
        arrivals: list[tuple[float, STTEvent]] = []
        async with open_deepgram(config_for(sim)) as stream, trio.open_nursery() as nursery:
            start = trio.current_time()

            async def pump() -> None:
                async for event in stream.events():
                    arrivals.append((trio.current_time() - start, event))

            nursery.start_soon(pump)
            await send_paced(stream, TURN_AUDIO.tobytes(), 2 * RATE)
            await stream.aclose()
    # Audio [0.5, 0.6) goes out at 0.5 s (virtual) and holds the onset; the endpoint
    # (2.3 s of audio) is in the frame sent at 2.2 s. Each message then waits 0.25 s.
    assert arrivals[0] == (pytest.approx(0.5 + 0.25, abs=1e-6), SpeechDetected(0.5))
    final_at = next(t for t, e in arrivals if isinstance(e, Final))
    assert final_at == pytest.approx(2.2 + 0.25, abs=1e-6)
    times = [t for t, _ in arrivals]
    assert times == sorted(times)


async def test_concurrent_calls_get_their_own_script_by_tag(autojump_clock: Any) -> None:
    results: dict[str, list[str]] = {}

    async def call(sim: DeepgramSim, tag: str) -> None:
        async with open_deepgram(config_for(sim, tag=tag)) as stream, collecting(
            stream
        ) as events:
            await send_paced(stream, TURN_AUDIO.tobytes(), 2 * RATE)
        results[tag] = [e.text for e in events if isinstance(e, Final)]

    async with open_deepgram_sim() as sim:
        sim.script("I am caller A", tag="call-a")
        sim.script("I am caller B", tag="call-b")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, sim, "call-a")
            nursery.start_soon(call, sim, "call-b")
    assert results == {"call-a": ["I am caller A"], "call-b": ["I am caller B"]}


async def test_reconnect_budget_resets_once_finals_flow_again(autojump_clock: Any) -> None:
    audio = call_audio(*[("silence", 0.5), ("speech", 0.6), ("silence", 0.9)] * 3)
    async with open_deepgram_sim() as sim:
        sim.script("one", "two", "three")
        sim.inject_drop(after_seconds=1.0)  # connection 1: inside "one"
        sim.inject_drop(after_seconds=2.0)  # connection 2 (replays from 0): inside "two"
        sim.inject_drop(after_seconds=2.0)  # connection 3 (replays from 1.4): inside "three"
        config = config_for(sim, max_reconnects=1)
        async with open_deepgram(config) as stream, collecting(stream) as events:
            await send_paced(stream, audio.tobytes(), 2 * RATE)
        assert stream.reconnects == 3
    assert [e.text for e in events if isinstance(e, Final)] == ["one", "two", "three"]

"""ElevenLabs client against the loopback ElevenLabs simulator (real espeak audio)."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

import dsp
from providers.config import ElevenLabsConfig, Secret
from providers.exceptions import AuthError, DeadlineExceeded, RateLimited
from providers.sim.elevenlabs_sim import ElevenLabsSim, open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.tts.elevenlabs import ElevenLabsSession, open_elevenlabs
from providers.tts.elevenlabs_wire import StreamOptions
from providers.usage import UsageCounter

KEY = "xi-test-key"
HELLO = ["Hello, this is Asha from Acme Solar.", "Do you have a minute?"]


#: The two ways multi-stream-input answers with isFinal, both reported and both
#: handled (providers.sim.elevenlabs_ws): every flush, or only a context's end.
FINALS = pytest.mark.parametrize("finals_per_flush", [True, False],
                                 ids=["finals_per_flush", "finals_at_close"])


def collect_rejected_sockets() -> None:
    """trio-websocket 0.12 never closes the client socket of a refused handshake
    (``ConnectionRejected``); collect it here, where that known leak is expected,
    instead of letting a later test trip over its ResourceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def config_for(sim: ElevenLabsSim, **overrides: Any) -> ElevenLabsConfig:
    values: dict[str, Any] = {"url": sim.url, "api_key": Secret(KEY), "voice_id": "en-us"}
    values.update(overrides)
    return ElevenLabsConfig(**values)


async def pieces(texts: Sequence[str], gap: float = 0.0) -> AsyncIterator[str]:
    for text in texts:
        if gap:
            await trio.sleep(gap)
        yield text


async def say(session: ElevenLabsSession, texts: Sequence[str]) -> bytes:
    async with aclosing(session.speak(pieces(texts))) as audio:
        return b"".join([chunk async for chunk in audio])


def sent_pcm(sim: ElevenLabsSim, context: str | None, connection: int = 0) -> bytes:
    """The audio the sim sent for ``context``, decoded to PCM16 (espeak-ng is not
    bit-reproducible between runs, so tests compare against what was sent)."""
    log = sim.connections[connection]
    raw = bytes(log.audio[context])
    if log.query["output_format"].startswith("ulaw"):
        return dsp.ulaw_decode(raw).tobytes()
    return raw


def reply_contexts(sim: ElevenLabsSim, connection: int = 0) -> list[str]:
    """Context ids of the replies, in order of their first text."""
    seen: list[str] = []
    for message in sim.connections[connection].received[1:]:
        context = message.get("context_id")
        if context and context not in seen and message.get("text"):
            seen.append(context)
    return seen


@FINALS
async def test_multi_context_reply_protocol_audio_and_usage(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush,
                                   api_key=KEY, ttfb=Fixed(0.2)) as sim:
        usage = UsageCounter()
        async with open_elevenlabs(config_for(sim), usage) as session:
            audio = await say(session, HELLO)
            stats = session.statistics()
        log = sim.connections[0]
    assert log.endpoint == "multi-stream-input"
    assert log.query["model_id"] == "eleven_flash_v2_5"
    assert log.query["output_format"] == "pcm_8000"
    init, first, second, flush, close, *rest = log.received
    assert init["text"] == " "
    assert set(init["voice_settings"]) == {"stability", "similarity_boost", "style",
                                           "use_speaker_boost", "speed"}
    assert init["generation_config"]["chunk_length_schedule"] == [50, 90, 120, 150]
    context = first["context_id"]
    assert context != init["context_id"]
    assert first["text"] == HELLO[0] + " "
    assert first["flush"] is True
    assert "voice_settings" in first
    assert "voice_settings" not in second
    assert second == {"text": HELLO[1] + " ", "context_id": context, "flush": True}
    assert flush == {"context_id": context, "flush": True}
    assert close == {"context_id": context, "close_context": True}
    assert rest == [{"close_socket": True}]
    assert audio == sent_pcm(sim, context)
    assert [g for _, g in log.generations] == [HELLO[0] + " ", HELLO[1] + " "]
    seconds = len(audio) / 16000
    assert 2.0 < seconds < 6.0  # two short sentences of real speech
    assert np.abs(np.frombuffer(audio, "<i2")).max() > 3000
    characters = len(HELLO[0]) + len(HELLO[1])
    assert usage.statistics().tts_characters == characters
    assert stats.characters == characters
    assert stats.audio_seconds == pytest.approx(seconds)
    assert stats.first_audio_delays == (pytest.approx(0.2, abs=0.01),)
    assert context in log.finals


@pytest.mark.parametrize(("output_format", "rate"),
                         [("pcm_16000", 16000), ("pcm_24000", 24000), ("ulaw_8000", 8000)])
async def test_output_formats_decode_to_pcm16(
    autojump_clock: Any, output_format: str, rate: int
) -> None:
    config = {"output_format": output_format}
    async with open_elevenlabs_sim() as sim, open_elevenlabs(config_for(sim, **config)) as session:
        assert session.sample_rate == rate
        audio = await say(session, ["Yes, I am interested."])
    assert audio == sent_pcm(sim, reply_contexts(sim)[0])
    assert 0.8 < len(audio) / (2 * rate) < 3.0


@FINALS
async def test_barge_in_cancels_one_reply_and_the_next_uses_the_same_socket(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    long_reply = [f"This is sentence number {n} of a long answer." for n in range(6)]
    # No gap between frames: the rest of the first generation is already on its
    # way when the caller barges in, and must be dropped.
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush, frame_gap=Fixed(0.0)) as sim:
        async with open_elevenlabs(config_for(sim)) as session:
            async with aclosing(session.speak(pieces(long_reply))) as audio:
                async for _chunk in audio:
                    break  # the caller spoke: drop the rest of this reply
            await trio.testing.wait_all_tasks_blocked()
            second = await say(session, ["Sure, go ahead."])
            stats = session.statistics()
        log = sim.connections[0]
    assert len(sim.connections) == 1
    cancelled = log.received[1]["context_id"]
    assert {"context_id": cancelled, "close_context": True} in log.received
    # Nothing of the cancelled reply leaks into the next one.
    assert second == sent_pcm(sim, reply_contexts(sim)[1])
    assert (stats.replies, stats.cancelled) == (2, 1)
    assert stats.dropped_frames > 0


@FINALS
async def test_cancel_scope_around_speak_leaves_no_task_behind(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush, ttfb=Fixed(1.0)) as sim:
        async with open_elevenlabs(config_for(sim)) as session:
            await trio.testing.wait_all_tasks_blocked()
            baseline = len(session._nursery.child_tasks)
            with trio.move_on_after(0.5):
                await say(session, HELLO)  # cancelled while waiting for first audio
            await trio.testing.wait_all_tasks_blocked()
            assert len(session._nursery.child_tasks) == baseline
            # Cancelled before its first audio, the reply may still be generated
            # by the vendor: the next one goes to a fresh socket, not behind it.
            assert await say(session, ["Okay."]) == sent_pcm(sim, reply_contexts(sim, 1)[0], 1)
        assert session.statistics().cancelled == 1
        assert session.statistics().fresh_sockets == 1


@FINALS
async def test_keepalive_holds_an_idle_session_open(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush) as sim:
        async with open_elevenlabs(config_for(sim)) as session:
            await trio.sleep(70)  # three and a half idle timeouts
            audio = await say(session, ["Still there?"])
        log = sim.connections[0]
    assert len(sim.connections) == 1
    assert not log.errors
    keepalives = [m for m in log.received if m.get("text") == "" and "flush" not in m]
    assert len(keepalives) >= 4
    assert audio == sent_pcm(sim, reply_contexts(sim)[0])


@FINALS
async def test_idle_close_reconnects_for_the_next_reply(
    autojump_clock: Any, finals_per_flush: bool,
) -> None:
    # The sim closes after 5 s idle, long before our keep-alive is due.
    async with open_elevenlabs_sim(finals_per_flush=finals_per_flush,
                                   idle_timeout=5.0) as sim, open_elevenlabs(
            config_for(sim)) as session:
        await trio.sleep(8)
        audio = await say(session, ["Hello again."])
        stats = session.statistics()
    assert sim.connections[0].query["inactivity_timeout"] == "20"
    assert sim.connections[0].errors == ["input_timeout_exceeded"]
    assert sim.connections[0].close_code == 1008
    assert len(sim.connections) == 2
    assert stats.reconnects == 1
    assert audio == sent_pcm(sim, reply_contexts(sim, 1)[0], 1)


async def test_bad_key_error_frame_is_auth_error(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim(api_key=KEY) as sim:
        with pytest.raises(AuthError) as caught:
            async with open_elevenlabs(config_for(sim, api_key=Secret("wrong"))) as session:
                await say(session, HELLO)
    assert (caught.value.status, caught.value.code) == (1008, "invalid_api_key")
    assert "wrong" not in str(caught.value)


async def test_rate_limited_handshake(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim() as sim:
        sim.inject_rate_limit(retry_after=2.5)
        with pytest.raises(RateLimited) as caught:
            async with open_elevenlabs(config_for(sim)):
                pass
    retry_after, code = caught.value.retry_after, caught.value.code
    del caught  # its traceback holds the leaked socket
    collect_rejected_sockets()
    assert retry_after == 2.5
    assert code == "too_many_concurrent_requests"


async def test_first_byte_deadline(autojump_clock: Any) -> None:
    async with open_elevenlabs_sim(ttfb=Fixed(5.0)) as sim:
        config = config_for(sim, first_byte_deadline=1.0)
        async with open_elevenlabs(config) as session:
            start = trio.current_time()
            with pytest.raises(DeadlineExceeded) as caught:
                await say(session, HELLO)
            assert trio.current_time() - start == pytest.approx(1.0, abs=0.01)
    assert caught.value.deadline == "first_byte"


async def test_single_stream_input_mode_per_reply_connection(autojump_clock: Any) -> None:
    options = StreamOptions(multi_context=False, flush_each_chunk=False)
    async with open_elevenlabs_sim() as sim, open_elevenlabs(
            config_for(sim), options=options) as session:
        first = await say(session, HELLO)
        async with aclosing(session.speak(pieces(["One more thing.", "Wait."]))) as audio:
            async for _chunk in audio:
                break
        third = await say(session, ["Thanks."])
    assert [c.endpoint for c in sim.connections] == ["stream-input"] * 3
    received = sim.connections[0].received
    assert received[0]["text"] == " "
    assert "context_id" not in received[0]
    assert received[1:] == [{"text": HELLO[0] + " "}, {"text": HELLO[1] + " "},
                            {"text": " ", "flush": True}, {"text": ""}]
    assert sim.connections[0].finals == [None]
    assert sim.connections[0].close_code == 1000
    assert sim.connections[0].generations == [(None, HELLO[0] + " " + HELLO[1] + " ")]
    assert first == sent_pcm(sim, None, 0)
    assert third == sent_pcm(sim, None, 2)

"""Local espeak-ng TTS session: real speech at the call's rate, many calls at once,
barge-in that leaves no synthesis running."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing

import numpy as np
import pytest
import trio
import trio.testing

from providers.exceptions import ProviderClosed
from providers.tts.local import LocalTTSConfig, LocalTTSSession, engine_limiter, open_local_tts

SENTENCES = ["Hello, this is Asha from Acme Solar.", "Do you have two minutes to talk?"]


async def pieces(texts: Sequence[str]) -> AsyncIterator[str]:
    for text in texts:
        yield text


async def say(session: LocalTTSSession, texts: Sequence[str]) -> np.ndarray:
    async with aclosing(session.speak(pieces(texts))) as audio:
        chunks = [chunk async for chunk in audio]
    assert all(len(c) % 2 == 0 for c in chunks)
    return np.frombuffer(b"".join(chunks), "<i2")


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_real_speech_at_the_calls_rate(rate: int) -> None:
    async with open_local_tts(LocalTTSConfig(sample_rate=rate)) as session:
        assert session.sample_rate == rate
        pcm = await say(session, SENTENCES)
        stats = session.statistics()
    seconds = pcm.size / rate
    assert 2.5 < seconds < 7.0  # 13 words at 165 wpm plus pauses
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 1000  # speech, not silence
    # Telephone band: at 8 kHz nothing can exist above 4 kHz; at 24 kHz espeak's
    # 22.05 kHz source leaves the band above 11 kHz empty.
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    assert spectrum[(freqs > 200) & (freqs < 3400)].sum() > 0.5 * spectrum.sum()
    assert stats.audio_seconds == pytest.approx(seconds)
    assert stats.replies == 1
    assert stats.cancelled == 0
    assert stats.first_audio_delays[0] < 0.5


async def test_blank_chunks_are_skipped_and_closed_session_refuses() -> None:
    async with open_local_tts() as session:
        assert (await say(session, ["", "   "])).size == 0
    with pytest.raises(ProviderClosed):
        await say(session, ["Hello."])


async def test_many_calls_at_once_all_get_their_own_speech() -> None:
    texts = [f"Caller number {n}, your loan of {n} lakh rupees is approved." for n in range(8)]
    results: dict[int, np.ndarray] = {}

    async def call(n: int) -> None:
        async with open_local_tts() as session:
            results[n] = await say(session, [texts[n], "Thank you."])

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(call, n)
    durations = [results[n].size / 8000 for n in range(8)]
    assert all(3.0 < d < 8.0 for d in durations)
    # Same words, same voice: the eight replies last within 15 % of each other.
    assert max(durations) < 1.15 * min(durations)


async def test_barge_in_aborts_synthesis_and_frees_the_engine() -> None:
    marathon = " ".join(["This sentence is part of a very long monologue."] * 400)
    async with open_local_tts() as session:
        limiter = engine_limiter()
        got: list[bytes] = []
        with trio.CancelScope() as scope:

            async def listen() -> None:
                async with aclosing(session.speak(pieces([marathon]))) as audio:
                    async for chunk in audio:
                        got.append(chunk)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                await trio.testing.wait_all_tasks_blocked()
                assert limiter.borrowed_tokens == 1  # espeak is synthesizing
                cancelled_at = time.perf_counter()
                scope.cancel()
        returned = time.perf_counter() - cancelled_at
        await trio.to_thread.run_sync(lambda: None, limiter=limiter)  # the engine is free
        freed = time.perf_counter() - cancelled_at
        assert got == []  # nothing of the cancelled reply was delivered
        assert session.statistics().cancelled == 1
        after = await say(session, ["Sorry, go ahead."])
    assert returned < 0.05
    # The whole monologue takes ~1 s to synthesize; the abort lands within a piece.
    assert freed < 0.25
    assert 0.8 < after.size / 8000 < 3.0

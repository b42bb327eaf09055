"""EnergyVAD + endpointer on synthesized signals with exact expected event times."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsp.energy import ENERGY_FLOOR_DBFS, frame_energy_dbfs
from dsp.exceptions import InvalidAudio, InvalidSettings
from dsp.vad import (
    EnergyVAD,
    SpeechEnded,
    SpeechStarted,
    VADConfig,
    speech_frames,
    speech_segments,
    warm_up,
)

CHUNK_SIZES = (1, 17, 159, 160, 161, 509, 1600)


def signal(
    duration: float,
    bursts: list[tuple[float, float]],
    *,
    rate: int = 8000,
    noise_rms: float = 10.0,
    amplitude: float = 3000.0,
    seed: int = 0,
) -> npt.NDArray[np.int16]:
    """Low white noise with 1 kHz tone bursts over ``[start, end)`` seconds."""
    n = round(duration * rate)
    x = np.random.default_rng(seed).normal(0.0, noise_rms, n)
    t = np.arange(n) / rate
    for start, end in bursts:
        on = (t >= start) & (t < end)
        x[on] += amplitude * np.sin(2 * np.pi * 1000 * t[on])
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def run(
    vad: EnergyVAD, pcm: npt.NDArray[np.int16], chunk: int
) -> list[SpeechStarted | SpeechEnded]:
    events: list[SpeechStarted | SpeechEnded] = []
    for pos in range(0, pcm.shape[0], chunk):
        events += vad.process(pcm[pos:pos + chunk])
    return events


def test_energy_levels_are_dbfs() -> None:
    square = np.tile(np.array([32767, -32767] * 40, dtype=np.int16), 2)
    t = np.arange(160) / 8000
    sine = (1000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    offset_sine = (sine.astype(np.int32) + 8000).astype(np.int16)
    assert frame_energy_dbfs(square, 80) == pytest.approx([0.0, 0.0], abs=0.01)
    expected = 20 * np.log10(1000 / 32768) - 3.0103
    assert frame_energy_dbfs(sine, 80) == pytest.approx([expected] * 2, abs=0.05)
    assert frame_energy_dbfs(offset_sine, 80) == pytest.approx([expected] * 2, abs=0.05)
    assert frame_energy_dbfs(np.zeros(85, np.int16), 80).tolist() == [ENERGY_FLOOR_DBFS]


def test_tone_burst_gives_exact_event_times() -> None:
    vad = EnergyVAD()
    events = vad.process(signal(2.0, [(0.5, 1.2)]))
    assert events == [SpeechStarted(0.5), SpeechEnded(1.5, voiced_until=1.2)]
    assert not vad.in_speech


def test_events_do_not_depend_on_chunking() -> None:
    pcm = signal(3.0, [(0.5, 1.2), (1.9, 2.45)])
    expected = [SpeechStarted(0.5), SpeechEnded(1.5, 1.2),
                SpeechStarted(1.9), SpeechEnded(2.75, 2.45)]
    for chunk in CHUNK_SIZES:
        assert run(EnergyVAD(), pcm, chunk) == expected, chunk


@given(cuts=st.lists(st.integers(min_value=0, max_value=24000), max_size=20))
def test_random_chunkings_give_same_events_and_flags(cuts: list[int]) -> None:
    pcm = signal(3.0, [(0.31, 0.9), (1.37, 2.0)], seed=3)
    whole = EnergyVAD()
    expected = whole.process(pcm)
    expected_flags = whole.last_flags
    vad = EnergyVAD()
    events: list[SpeechStarted | SpeechEnded] = []
    flags = []
    bounds = [0, *sorted(cuts), pcm.shape[0]]
    for a, b in itertools.pairwise(bounds):
        events += vad.process(pcm[a:b])
        flags.append(vad.last_flags)
    assert events == expected
    assert np.array_equal(np.concatenate(flags), expected_flags)


def test_event_emitted_when_min_speech_is_complete() -> None:
    pcm = signal(1.0, [(0.5, 1.0)])
    vad = EnergyVAD()
    assert vad.process(pcm[:4000 + 5 * 80]) == []  # 50 ms of tone: not yet
    assert not vad.in_speech
    assert vad.process(pcm[4400:4480]) == [SpeechStarted(0.5)]  # 60th ms completes it
    assert vad.in_speech


def test_hangover_bridges_short_gaps_only() -> None:
    bridged = EnergyVAD().process(signal(2.5, [(0.2, 0.6), (0.85, 1.2)]))
    assert bridged == [SpeechStarted(0.2), SpeechEnded(1.5, 1.2)]
    split = EnergyVAD().process(signal(2.5, [(0.2, 0.6), (0.95, 1.2)]))
    assert split == [SpeechStarted(0.2), SpeechEnded(0.9, 0.6), SpeechStarted(0.95),
                     SpeechEnded(1.5, 1.2)]


def test_blips_shorter_than_min_speech_are_ignored() -> None:
    vad = EnergyVAD()
    assert vad.process(signal(1.5, [(0.3, 0.35), (0.8, 0.84)])) == []
    assert vad.last_flags[30:35].tolist() == [1] * 5  # voiced frames, but no speech
    assert vad.last_flags[35] == 0


def test_pre_roll_moves_the_start_back_but_not_before_zero() -> None:
    config = VADConfig(pre_roll_ms=100)
    assert EnergyVAD(config).process(signal(1.5, [(0.5, 1.0)]))[0] == SpeechStarted(0.4)
    assert EnergyVAD(config).process(signal(1.0, [(0.05, 0.5)]))[0] == SpeechStarted(0.0)


def test_speech_at_stream_start_is_detected() -> None:
    # Even a perfectly steady sound: the minimum-statistics window is not full yet.
    assert EnergyVAD().process(signal(2.0, [(0.0, 1.2)])) == [
        SpeechStarted(0.0), SpeechEnded(1.5, 1.2)]


def test_sixteen_khz_gives_the_same_times() -> None:
    pcm = signal(2.0, [(0.5, 1.2)], rate=16000)
    vad = EnergyVAD(sample_rate=16000)
    assert vad.frame_len == 160
    assert run(vad, pcm, 509) == [SpeechStarted(0.5), SpeechEnded(1.5, 1.2)]


def test_custom_timing_config() -> None:
    config = VADConfig(frame_ms=20, min_speech_ms=100, min_silence_ms=200)
    events = EnergyVAD(config).process(signal(2.0, [(0.5, 1.2)]))
    assert events == [SpeechStarted(0.5), SpeechEnded(1.4, 1.2)]


@pytest.mark.parametrize("before_rms", [0.0, 10.0])  # digital silence, quiet line
def test_noise_floor_adapts_to_a_louder_background(before_rms: float) -> None:
    rng = np.random.default_rng(5)
    before = rng.normal(0, 10, 8000) * before_rms / 10
    loud = rng.normal(0, 300, 8000 * 6)  # from 1.0 s: a step to -41 dBFS of noise
    pcm = np.concatenate([before, loud]).astype(np.int16)
    vad = EnergyVAD()
    events = vad.process(pcm)
    # The step reads as speech until the 1.6 s minimum window holds only loud noise
    # (from 2.6 s); then the floor jumps to the new background and speech ends.
    assert len(events) == 2
    assert events[0] == SpeechStarted(1.0)
    assert isinstance(events[1], SpeechEnded)
    assert 2.6 <= events[1].voiced_until <= 3.6
    assert not vad.in_speech
    assert vad.noise_floor_dbfs == pytest.approx(20 * np.log10(300 / 32768), abs=2.0)
    # A tone 20 dB above the new background is still speech.
    t = np.arange(8000) / 8000
    tone = (3000 * np.sin(2 * np.pi * 1000 * t) + rng.normal(0, 300, 8000)).astype(np.int16)
    assert vad.process(tone) == [SpeechStarted(7.0)]


def test_dc_offset_and_digital_silence_are_not_speech() -> None:
    vad = EnergyVAD()
    assert vad.process(np.full(8000, 6000, dtype=np.int16)) == []
    assert vad.process(np.zeros(8000, dtype=np.int16)) == []
    assert not vad.last_flags.any()


def test_quiet_tone_below_min_level_is_not_speech() -> None:
    # 1 kHz at -56 dBFS over digital silence: far above the floor, below min_level.
    assert EnergyVAD().process(signal(1.0, [(0.2, 0.8)], noise_rms=0.0, amplitude=50.0)) == []


def test_reset_forgets_everything() -> None:
    pcm = signal(2.0, [(0.5, 1.2)])
    vad = EnergyVAD()
    vad.process(pcm[:7000])  # in speech, with a partial frame kept
    assert vad.in_speech
    vad.reset()
    assert not vad.in_speech
    assert vad.frames_done == 0
    assert vad.process(pcm) == [SpeechStarted(0.5), SpeechEnded(1.5, 1.2)]


def test_open_segment_closes_at_stream_end() -> None:
    pcm = signal(1.0, [(0.5, 1.0)])
    assert speech_segments(pcm) == [(0.5, 1.0)]
    labels = speech_frames(pcm)
    assert labels.shape == (100,)
    assert labels.nonzero()[0].tolist() == list(range(50, 100))


def test_speech_frames_label_start_to_voiced_until() -> None:
    labels = speech_frames(signal(2.0, [(0.5, 1.2)]))
    assert labels.nonzero()[0].tolist() == list(range(50, 120))


def test_empty_chunk_is_fine() -> None:
    vad = EnergyVAD()
    assert vad.process(np.zeros(0, np.int16)) == []
    assert vad.last_flags.shape == (0,)


@pytest.mark.parametrize(
    "bad", [np.zeros(160, np.float32), np.zeros((80, 2), np.int16), b"\x00" * 320, [0] * 160]
)
def test_bad_audio_is_invalid(bad: object) -> None:
    with pytest.raises(InvalidAudio):
        EnergyVAD().process(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"frame_ms": 0}, {"min_silence_ms": 305}, {"min_speech_ms": 0}, {"pre_roll_ms": -10},
     {"min_window_ms": 0}, {"floor_alpha": 0.0}, {"stay_margin_db": 12.0},
     {"spread_factor": -1.0}],
)
def test_bad_config_is_invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidSettings):
        VADConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [11025, 0, -8000])
def test_rate_without_whole_frames_is_invalid(rate: int) -> None:
    with pytest.raises(InvalidAudio):
        EnergyVAD(sample_rate=rate)


def test_warm_up_runs() -> None:
    warm_up()
    assert EnergyVAD().process(signal(1.0, [(0.1, 0.5)]))[0] == SpeechStarted(0.1)

"""StreamResampler: streaming equals one-shot soxr, flush/reset semantics, delay."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
import soxr
from hypothesis import given
from hypothesis import strategies as st

from dsp.exceptions import InvalidAudio, InvalidSettings
from dsp.resample import QUALITIES, StreamResampler, resample_oneshot

RATES = (8000, 16000, 22050, 24000, 44100)
CHUNK_SIZES = (1, 17, 159, 160, 161, 509, 1600)
RATE_PAIRS = list(itertools.permutations(RATES, 2))


def noise(n: int, seed: int = 7) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 6000, n), -32768, 32767).astype(np.int16)


def soxr_reference(
    pcm: npt.NDArray[np.int16], a: int, b: int, quality: str
) -> npt.NDArray[np.int16]:
    """soxr's one-shot resample of the float32 signal, rounded half-even and clipped."""
    y = soxr.resample(pcm.astype(np.float32) / np.float32(32768), a, b, quality=quality)
    out: npt.NDArray[np.int16] = np.clip(np.rint(y * np.float32(32768)), -32768, 32767).astype(
        np.int16
    )
    return out


def stream_in_chunks(
    stream: StreamResampler, pcm: npt.NDArray[np.int16], sizes: list[int]
) -> npt.NDArray[np.int16]:
    out, pos, i = [], 0, 0
    while pos < pcm.shape[0]:
        size = sizes[i % len(sizes)]
        out.append(stream.process(pcm[pos:pos + size]))
        pos += size
        i += 1
    out.append(stream.flush())
    return np.concatenate(out)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_streaming_equals_oneshot_soxr(in_rate: int, out_rate: int, chunk: int) -> None:
    pcm = noise(in_rate // 4)  # 250 ms
    got = stream_in_chunks(StreamResampler(in_rate, out_rate), pcm, [chunk])
    assert np.array_equal(got, soxr_reference(pcm, in_rate, out_rate, "LQ"))


@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (24000, 8000), (22050, 8000)])
def test_every_quality_streams_exactly(quality: str, in_rate: int, out_rate: int) -> None:
    pcm = noise(in_rate // 5)
    for chunk in (17, 160):
        stream = StreamResampler(in_rate, out_rate, quality=quality)  # type: ignore[arg-type]
        got = stream_in_chunks(stream, pcm, [chunk])
        assert np.array_equal(got, soxr_reference(pcm, in_rate, out_rate, quality))
        assert np.array_equal(got, resample_oneshot(pcm, in_rate, out_rate, quality))  # type: ignore[arg-type]


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=12).filter(any),
    pair=st.sampled_from(RATE_PAIRS),
)
def test_random_chunkings_equal_oneshot(sizes: list[int], pair: tuple[int, int]) -> None:
    pcm = noise(2000, seed=sum(sizes))
    got = stream_in_chunks(StreamResampler(*pair), pcm, sizes)
    assert np.array_equal(got, resample_oneshot(pcm, *pair))


def test_int16_soxr_differs_from_its_own_chunking_but_we_do_not() -> None:
    """Why the stream runs in float: soxr's int16 output is dithered per call."""
    pcm = noise(8000)
    whole = soxr.resample(pcm, 8000, 16000, quality="LQ")
    raw = soxr.ResampleStream(8000, 16000, 1, dtype="int16", quality="LQ")
    pieces = [raw.resample_chunk(pcm[i:i + 160]) for i in range(0, pcm.shape[0], 160)]
    chunked = np.concatenate([*pieces, raw.resample_chunk(np.zeros(0, np.int16), last=True)])
    assert not np.array_equal(chunked, whole)
    ours = stream_in_chunks(StreamResampler(8000, 16000), pcm, [160])
    assert np.abs(ours.astype(np.int32) - whole).max() <= 1  # soxr's dither only


def test_output_length_matches_rate_ratio() -> None:
    pcm = noise(24000)
    got = stream_in_chunks(StreamResampler(24000, 8000), pcm, [480])
    assert got.shape[0] == 8000


def test_tone_survives_resampling() -> None:
    t = np.arange(8000) / 8000
    tone = (10000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    up = stream_in_chunks(StreamResampler(8000, 16000), tone, [160])
    t2 = np.arange(16000) / 16000
    expected = 10000 * np.sin(2 * np.pi * 440 * t2)
    # Away from the edges the upsampled tone matches the analytic one closely.
    assert np.abs(up[2000:14000] - expected[2000:14000]).max() < 150


def test_equal_rates_pass_through_copies() -> None:
    stream = StreamResampler(8000, 8000)
    chunk = noise(160)
    out = stream.process(chunk)
    assert stream.passthrough
    assert np.array_equal(out, chunk)
    assert out is not chunk
    assert stream.delay_samples == 0.0
    assert stream.flush().shape == (0,)


def test_delay_samples_tracks_held_back_output() -> None:
    stream = StreamResampler(8000, 16000)
    assert stream.delay_samples == 0.0
    produced = 0
    for i in range(50):
        produced += stream.process(noise(160, seed=i)).shape[0]
        assert stream.delay_samples == pytest.approx((i + 1) * 320 - produced)
        assert stream.delay_seconds == pytest.approx(stream.delay_samples / 16000)
    assert stream.delay_samples > 0  # LQ holds back part of the audio
    tail = stream.flush()
    assert produced + tail.shape[0] == 50 * 320
    assert stream.delay_samples == 0.0


def test_flush_ends_the_stream_until_reset() -> None:
    pcm = noise(1600)
    stream = StreamResampler(8000, 16000)
    first = stream_in_chunks(stream, pcm, [160])
    assert stream.flush().shape == (0,)  # second flush: nothing more
    with pytest.raises(InvalidAudio, match="flushed"):
        stream.process(pcm[:160])
    stream.reset()
    again = stream_in_chunks(stream, pcm, [160])
    assert np.array_equal(first, again)


def test_reset_drops_held_back_audio() -> None:
    pcm = noise(1600)
    stream = StreamResampler(16000, 8000)
    stream.process(noise(3200, seed=99))
    assert stream.delay_samples > 0
    stream.reset()
    assert stream.delay_samples == 0.0
    assert np.array_equal(stream_in_chunks(stream, pcm, [17]), resample_oneshot(pcm, 16000, 8000))


def test_empty_chunks_are_fine() -> None:
    stream = StreamResampler(8000, 16000)
    assert stream.process(np.zeros(0, np.int16)).shape == (0,)
    assert stream.delay_samples == 0.0


@pytest.mark.parametrize(
    "bad",
    [np.zeros(10, np.float32), np.zeros((10, 2), np.int16), b"\x00\x00", [0, 1, 2]],
)
def test_bad_input_is_invalid_audio(bad: object) -> None:
    with pytest.raises(InvalidAudio):
        StreamResampler(8000, 16000).process(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("in_rate", "out_rate"), [(0, 8000), (8000, -1), (8000.5, 16000)])
def test_bad_rates_are_invalid_audio(in_rate: object, out_rate: object) -> None:
    with pytest.raises(InvalidAudio):
        StreamResampler(in_rate, out_rate)  # type: ignore[arg-type]


def test_unknown_quality_is_invalid_settings() -> None:
    with pytest.raises(InvalidSettings, match="quality"):
        StreamResampler(8000, 16000, "best")  # type: ignore[arg-type]


def tone_level_db(quality: str, freq: float, in_rate: int = 16000) -> float:
    t = np.arange(in_rate) / in_rate
    tone = (10000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    out = stream_in_chunks(StreamResampler(in_rate, 8000, quality), tone, [320])  # type: ignore[arg-type]
    core = out[2000:6000].astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(core**2)) / (10000 / np.sqrt(2))))


def test_documented_band_edge_of_lq_and_hq() -> None:
    """The default's price (module docstring): LQ dulls 3-3.4 kHz, HQ does not."""
    assert abs(tone_level_db("LQ", 1000)) < 0.1
    assert abs(tone_level_db("LQ", 2500)) < 0.1
    assert -9.0 < tone_level_db("LQ", 3400) < -7.0
    assert abs(tone_level_db("HQ", 3400)) < 0.1
    assert tone_level_db("LQ", 3700, in_rate=24000) < -25.0

"""Chunker: exact frames over any push sizes; aligned, silence-padded tails."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsp import Chunker, InvalidAudio, InvalidFrameSize, frame_bytes_for
from dsp.chunker import MAX_FRAME_BYTES

AWKWARD_SIZES = [1, 17, 159, 160, 161, 319, 320, 321, 509, 1599, 1600, 1601, 4001]


def _stream(total: int) -> bytes:
    """Distinct, non-zero bytes so padding and reordering are visible."""
    return bytes((i % 251) + 1 for i in range(total))


def _push_all(chunker: Chunker, data: bytes, sizes: list[int]) -> list[bytes]:
    frames: list[bytes] = []
    offset = 0
    for size in sizes:
        frames += chunker.push(data[offset : offset + size])
        offset += size
    frames += chunker.push(data[offset:])
    return frames


@given(
    sizes=st.lists(st.sampled_from(AWKWARD_SIZES) | st.integers(0, 5000), max_size=30),
    frame_multiple=st.integers(1, 10),
    min_multiple=st.integers(0, 10),
)
def test_frames_are_exact_and_flush_pads_with_silence(
    sizes: list[int], frame_multiple: int, min_multiple: int
) -> None:
    frame_bytes = 320 * frame_multiple
    min_bytes = min(min_multiple * 100, frame_bytes)  # deliberately not aligned
    chunker = Chunker(frame_bytes, min_bytes=min_bytes)
    data = _stream(sum(sizes))
    frames = _push_all(chunker, data, sizes)
    assert all(len(frame) == frame_bytes for frame in frames)
    assert b"".join(frames) == data[: len(frames) * frame_bytes]
    tail = data[len(frames) * frame_bytes :]
    assert chunker.pending == len(tail) < frame_bytes
    last = chunker.flush()
    if not tail:
        assert last == b""
    else:
        assert last[: len(tail)] == tail
        assert set(last[len(tail) :]) <= {0}
        # The smallest multiple of 320 that holds the tail and min_bytes.
        assert len(last) % 320 == 0
        assert len(last) >= max(len(tail), min_bytes)
        assert len(last) - 320 < max(len(tail), min_bytes)
        assert len(last) <= frame_bytes
    assert chunker.pending == 0
    assert chunker.flush() == b""


@pytest.mark.parametrize("size", AWKWARD_SIZES)
def test_fixed_push_size_gives_same_frames_as_one_push(size: int) -> None:
    data = _stream(9000)
    one_shot = Chunker(1600)
    expected = [*one_shot.push(data), one_shot.flush()]
    streamed = Chunker(1600)
    frames: list[bytes] = []
    for start in range(0, len(data), size):
        frames += streamed.push(data[start : start + size])
    frames.append(streamed.flush())
    assert frames == expected
    # 9000 bytes = 5 frames of 1600 + 1000 bytes, padded to 1280.
    assert [len(frame) for frame in frames] == [1600] * 5 + [1280]


def test_flush_pads_a_short_tail_up_to_min_bytes() -> None:
    chunker = Chunker(3200, min_bytes=1600)
    assert chunker.push(b"\x01" * 10) == []
    last = chunker.flush()
    assert len(last) == 1600
    assert last == b"\x01" * 10 + bytes(1590)


def test_min_bytes_rounds_up_to_alignment() -> None:
    chunker = Chunker(1600, min_bytes=700)
    chunker.push(b"\x01\x02")
    assert len(chunker.flush()) == 960


def test_bytearray_memoryview_and_odd_pieces_are_accepted() -> None:
    chunker = Chunker(320)
    assert chunker.push(bytearray(b"\x01" * 161)) == []
    frames = chunker.push(memoryview(b"\x02" * 159))
    assert frames == [b"\x01" * 161 + b"\x02" * 159]
    # The chunker copies: later mutation of the caller's buffer changes nothing.
    source = bytearray(b"\x03" * 10)
    chunker.push(source)
    source[:] = bytes(10)
    assert chunker.flush()[:10] == b"\x03" * 10


def test_clear_drops_the_tail() -> None:
    chunker = Chunker(1600)
    chunker.push(bytes(1700))
    assert chunker.clear() == 100
    assert chunker.pending == 0
    assert chunker.flush() == b""


def test_empty_push_yields_nothing() -> None:
    chunker = Chunker(320)
    assert chunker.push(b"") == []
    assert chunker.pending == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frame_bytes": 0}, "positive multiple of 320"),
        ({"frame_bytes": 1000}, "positive multiple of 320"),
        ({"frame_bytes": -320}, "positive multiple of 320"),
        ({"frame_bytes": 320.0}, "positive multiple of 320"),
        ({"frame_bytes": 100_160}, "100000-byte payload cap"),
        ({"frame_bytes": 1600, "min_bytes": 1920}, "min_bytes must be between"),
        ({"frame_bytes": 1600, "min_bytes": -1}, "min_bytes must be between"),
        ({"frame_bytes": 1600, "align": 0}, "align must be a positive even"),
        ({"frame_bytes": 1600, "align": 5}, "align must be a positive even"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidFrameSize, match=message):
        Chunker(**kwargs)  # type: ignore[arg-type]


def test_custom_alignment() -> None:
    chunker = Chunker(640, align=640)
    chunker.push(b"\x01" * 2)
    assert len(chunker.flush()) == 640
    assert chunker.frame_bytes == 640
    assert chunker.align == 640
    assert chunker.min_bytes == 0


def test_push_rejects_non_bytes() -> None:
    with pytest.raises(InvalidAudio, match="got str"):
        Chunker(320).push("abc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "ms", "expected"),
    [
        (8000, 100, 1600),
        (16000, 100, 3200),
        (24000, 100, 4800),
        (8000, 20, 320),
        (8000, 200, 3200),
        (22050, 100, 4480),  # 4,410 exact, nearest multiple of 320
        (44100, 20, 1920),  # 1,764 exact: 156 below 1,920, 164 above 1,600
        (8000, 1, 320),  # never below one aligned unit
    ],
)
def test_frame_bytes_for(rate: int, ms: float, expected: int) -> None:
    size = frame_bytes_for(rate, ms)
    assert size == expected
    assert size % 320 == 0
    Chunker(size)  # always a valid frame size


def test_frame_bytes_for_defaults_to_100_ms() -> None:
    assert frame_bytes_for(8000) == 1600


@pytest.mark.parametrize(
    ("rate", "ms", "error", "message"),
    [
        (0, 100, InvalidAudio, "positive int"),
        (8000.0, 100, InvalidAudio, "positive int"),
        (8000, 0, InvalidFrameSize, "must be positive"),
        (8000, float("nan"), InvalidFrameSize, "must be positive"),
        (8000, float("inf"), InvalidFrameSize, "must be positive"),
        (48000, 2000, InvalidFrameSize, "cap"),
    ],
)
def test_frame_bytes_for_rejects_bad_values(
    rate: int, ms: float, error: type[Exception], message: str
) -> None:
    assert MAX_FRAME_BYTES == 100_000
    with pytest.raises(error, match=message):
        frame_bytes_for(rate, ms)

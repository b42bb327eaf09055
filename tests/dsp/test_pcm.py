"""PCM16 bytes <-> int16 arrays: little-endian, zero-copy, strict about input."""

from __future__ import annotations

import array
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsp import InvalidAudio, pcm16_from_bytes, pcm16_to_bytes
from dsp.pcm import as_codes, as_pcm16


def test_from_bytes_is_little_endian() -> None:
    raw = struct.pack("<4h", 1, -1, 32767, -32768)
    samples = pcm16_from_bytes(raw)
    assert samples.dtype == np.int16
    assert samples.tolist() == [1, -1, 32767, -32768]


def test_from_bytes_is_a_view_not_a_copy() -> None:
    raw = bytearray(struct.pack("<3h", 10, 20, 30))
    samples = pcm16_from_bytes(raw)
    raw[0:2] = struct.pack("<h", -7)
    assert samples[0] == -7  # shares memory with the bytearray
    assert np.shares_memory(samples, np.frombuffer(raw, dtype=np.uint8))


def test_view_of_immutable_bytes_is_read_only() -> None:
    samples = pcm16_from_bytes(bytes(4))
    assert not samples.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        samples[0] = 1


def test_memoryview_of_any_format_is_read_as_bytes() -> None:
    native = array.array("h", [5, -6, 7])
    expected = [5, -6, 7] if struct.pack("=h", 1) == struct.pack("<h", 1) else None
    assert pcm16_from_bytes(memoryview(native)).tolist() == expected
    assert pcm16_from_bytes(memoryview(struct.pack("<2h", 3, 4))[2:]).tolist() == [4]


@pytest.mark.parametrize("size", [1, 3, 321])
def test_odd_byte_count_is_a_clear_value_error(size: int) -> None:
    with pytest.raises(InvalidAudio, match=f"odd byte count {size}") as info:
        pcm16_from_bytes(bytes(size))
    assert isinstance(info.value, ValueError)


def test_empty_bytes_give_an_empty_array() -> None:
    samples = pcm16_from_bytes(b"")
    assert samples.dtype == np.int16
    assert samples.shape == (0,)
    assert pcm16_to_bytes(samples) == b""


@pytest.mark.parametrize("bad", ["text", 42, [1, 2], None])
def test_from_bytes_rejects_non_bytes(bad: object) -> None:
    with pytest.raises(InvalidAudio, match="expected bytes-like"):
        pcm16_from_bytes(bad)  # type: ignore[arg-type]


@given(samples=st.lists(st.integers(-32768, 32767), max_size=300))
def test_round_trip_and_struct_agreement(samples: list[int]) -> None:
    raw = struct.pack(f"<{len(samples)}h", *samples)
    array_ = pcm16_from_bytes(raw)
    assert array_.tolist() == samples
    assert pcm16_to_bytes(array_) == raw
    assert pcm16_to_bytes(np.array(samples, dtype=">i2")) == raw


def test_to_bytes_of_a_strided_view_serialises_the_view() -> None:
    samples = np.arange(10, dtype=np.int16)[::3]
    assert pcm16_to_bytes(samples) == struct.pack("<4h", 0, 3, 6, 9)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(3, dtype=np.float64), "dtype int16"),
        (np.zeros(3, dtype=np.int32), "dtype int16"),
        (np.zeros((3, 1), dtype=np.int16), "1-D"),
        (b"\x00\x00", "int16 array"),
    ],
)
def test_to_bytes_rejects_non_int16_arrays(bad: object, message: str) -> None:
    with pytest.raises(InvalidAudio, match=message):
        pcm16_to_bytes(bad)  # type: ignore[arg-type]


def test_as_pcm16_and_as_codes_normalise_inputs() -> None:
    assert as_pcm16(struct.pack("<2h", -2, 2)).tolist() == [-2, 2]
    contiguous = as_pcm16(np.arange(6, dtype=np.int16)[::2])
    assert contiguous.flags.c_contiguous
    assert contiguous.tolist() == [0, 2, 4]
    assert as_codes(b"\x00\xff").tolist() == [0, 255]
    with pytest.raises(InvalidAudio, match="dtype uint8"):
        as_codes(np.zeros(2, dtype=np.int8))

"""G.711 codecs: bit-exact with CPython's audioop on every input, both laws."""

from __future__ import annotations

import audioop
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsp import InvalidAudio, alaw_decode, alaw_encode, g711, ulaw_decode, ulaw_encode

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = np.arange(256, dtype=np.uint8)

ENCODERS = {"ulaw": (ulaw_encode, audioop.lin2ulaw), "alaw": (alaw_encode, audioop.lin2alaw)}
DECODERS = {"ulaw": (ulaw_decode, audioop.ulaw2lin), "alaw": (alaw_decode, audioop.alaw2lin)}
Encoder = Callable[..., np.ndarray]
Kernel = Callable[[np.ndarray, np.ndarray], None]

samples_lists = st.lists(st.integers(-32768, 32767), max_size=400)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_encode_matches_audioop_on_every_int16(law: str) -> None:
    ours, reference = ENCODERS[law]
    expected = np.frombuffer(reference(EVERY_SAMPLE.astype("<i2").tobytes(), 2), np.uint8)
    from_array = ours(EVERY_SAMPLE)
    from_bytes = ours(EVERY_SAMPLE.astype("<i2").tobytes())
    assert from_array.dtype == np.uint8
    mismatches = np.flatnonzero(from_array != expected)
    assert mismatches.size == 0, f"differs at samples {EVERY_SAMPLE[mismatches[:10]]}"
    np.testing.assert_array_equal(from_bytes, expected)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode_matches_audioop_on_every_code(law: str) -> None:
    ours, reference = DECODERS[law]
    expected = np.frombuffer(reference(EVERY_CODE.tobytes(), 2), "<i2")
    decoded = ours(EVERY_CODE)
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, expected)
    np.testing.assert_array_equal(ours(EVERY_CODE.tobytes()), expected)


@pytest.mark.parametrize(
    ("kernel", "table"),
    [
        (g711.ulaw_encode_kernel, g711.ULAW_ENCODE_TABLE),
        (g711.alaw_encode_kernel, g711.ALAW_ENCODE_TABLE),
    ],
)
def test_branch_free_kernel_equals_table_on_unaligned_views(
    kernel: Kernel, table: np.ndarray
) -> None:
    # The kernel defines the table; check it again on odd offsets and lengths.
    for start, stop in [(0, 1), (1, 17), (32767, 32769), (100, 65535)]:
        out = np.empty(stop - start, dtype=np.uint8)
        kernel(EVERY_SAMPLE[start:stop], out)
        np.testing.assert_array_equal(out, table[start:stop])


def test_textbook_encoder_really_differs_so_the_reference_matters() -> None:
    # "bias 0x84, clip 32635" on the 16-bit magnitude: not what audioop does.
    x = EVERY_SAMPLE.astype(np.int32)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    segment = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (segment + 3)) & 0xF
    textbook = ~(np.where(x < 0, 0x80, 0) | (segment << 4) | mantissa) & 0xFF
    differs = int(np.count_nonzero(textbook != ulaw_encode(EVERY_SAMPLE)))
    assert 300 < differs < 500


def test_mu_law_round_trip_of_every_code_except_negative_zero() -> None:
    again = ulaw_encode(ulaw_decode(EVERY_CODE))
    changed = EVERY_CODE[again != EVERY_CODE]
    # 0x7F decodes to 0 ("negative zero"), and 0 encodes as 0xFF.
    assert changed.tolist() == [0x7F]


def test_a_law_round_trip_of_every_code() -> None:
    np.testing.assert_array_equal(alaw_encode(alaw_decode(EVERY_CODE)), EVERY_CODE)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
@given(samples=samples_lists)
def test_round_trip_equals_audioop_round_trip(law: str, samples: list[int]) -> None:
    encode, lin2x = ENCODERS[law]
    decode, x2lin = DECODERS[law]
    pcm = np.array(samples, dtype=np.int16)
    expected = np.frombuffer(x2lin(lin2x(pcm.astype("<i2").tobytes(), 2), 2), "<i2")
    np.testing.assert_array_equal(decode(encode(pcm)), expected)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
@given(samples=samples_lists, cut=st.integers(0, 400))
def test_bytes_bytearray_memoryview_and_array_inputs_agree(
    law: str, samples: list[int], cut: int
) -> None:
    encode, _ = ENCODERS[law]
    decode, _ = DECODERS[law]
    pcm = np.array(samples, dtype=np.int16)
    raw = pcm.astype("<i2").tobytes()
    codes = encode(pcm)
    for form in (raw, bytearray(raw), memoryview(raw)):
        np.testing.assert_array_equal(encode(form), codes)
    # Stateless: encoding in two pieces equals encoding at once.
    cut = min(cut, pcm.size)
    np.testing.assert_array_equal(np.concatenate([encode(pcm[:cut]), encode(pcm[cut:])]), codes)
    for form in (codes.tobytes(), bytearray(codes.tobytes()), memoryview(codes.tobytes())):
        np.testing.assert_array_equal(decode(form), decode(codes))


def test_quantisation_error_is_bounded_by_the_segment_step() -> None:
    laws = [(ulaw_encode, ulaw_decode, 1024), (alaw_encode, alaw_decode, 512)]
    for encode, decode, max_error in laws:
        wide = EVERY_SAMPLE.astype(np.int32)
        error = np.abs(decode(encode(EVERY_SAMPLE)).astype(np.int32) - wide)
        assert int(error.max()) <= max_error
        # Small signals are coded finely.
        small = np.abs(wide) < 64
        assert int(error[small].max()) <= 8


def test_strided_and_big_endian_arrays_are_accepted() -> None:
    pcm = EVERY_SAMPLE[::7]
    np.testing.assert_array_equal(ulaw_encode(pcm), g711.ULAW_ENCODE_TABLE[::7])
    big_endian = EVERY_SAMPLE.astype(">i2")
    np.testing.assert_array_equal(alaw_encode(big_endian), g711.ALAW_ENCODE_TABLE)
    codes = EVERY_CODE[::3]
    np.testing.assert_array_equal(ulaw_decode(codes), g711.ULAW_DECODE_TABLE[::3])


def test_inputs_are_not_modified_and_outputs_are_fresh() -> None:
    pcm = np.array([1, -1, 1000], dtype=np.int16)
    codes = ulaw_encode(pcm)
    codes[:] = 0
    assert pcm.tolist() == [1, -1, 1000]
    expected = g711.ULAW_ENCODE_TABLE[pcm.astype(np.int32) + 32768]
    np.testing.assert_array_equal(ulaw_encode(pcm), expected)


@pytest.mark.parametrize("function", [ulaw_encode, alaw_encode, ulaw_decode, alaw_decode])
def test_empty_in_empty_out(function: Encoder) -> None:
    expected_dtype = np.uint8 if function in (ulaw_encode, alaw_encode) else np.int16
    input_dtype = np.int16 if expected_dtype == np.uint8 else np.uint8
    for empty in (b"", bytearray(), np.zeros(0, dtype=input_dtype)):
        out = function(empty)
        assert out.dtype == expected_dtype
        assert out.shape == (0,)


@pytest.mark.parametrize("encode", [ulaw_encode, alaw_encode])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(4, dtype=np.float32), "dtype int16"),
        (np.zeros(4, dtype=np.int32), "dtype int16"),
        (np.zeros(4, dtype=np.uint16), "dtype int16"),
        (np.zeros((2, 4), dtype=np.int16), "1-D"),
        (np.int16(5), "int16 array or bytes"),
        (b"\x00\x01\x02", "odd byte count 3"),
        ([1, 2, 3], "got list"),
        (memoryview(bytes(8))[::2], "not contiguous"),
    ],
)
def test_encode_rejects_bad_input_clearly(encode: Encoder, bad: object, message: str) -> None:
    with pytest.raises(InvalidAudio, match=message):
        encode(bad)


@pytest.mark.parametrize("decode", [ulaw_decode, alaw_decode])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(4, dtype=np.int16), "dtype uint8"),
        (np.zeros(4, dtype=np.int8), "dtype uint8"),
        (np.zeros((2, 2), dtype=np.uint8), "1-D"),
        ("abc", "got str"),
    ],
)
def test_decode_rejects_bad_input_clearly(decode: Encoder, bad: object, message: str) -> None:
    with pytest.raises(InvalidAudio, match=message):
        decode(bad)


def test_invalid_audio_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="odd byte count"):
        ulaw_encode(b"\x00")

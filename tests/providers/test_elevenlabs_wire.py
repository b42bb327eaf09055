"""ElevenLabs sans-IO wire format: messages, frame variants, errors, decoding."""

from __future__ import annotations

import base64
import itertools
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dsp
from providers.config import ElevenLabsConfig
from providers.exceptions import (
    AuthError,
    HandshakeRejected,
    ProtocolError,
    QuotaExceeded,
    RateLimited,
    StreamClosed,
    VendorUnavailable,
)
from providers.tts import elevenlabs_errors as errors
from providers.tts import elevenlabs_wire as wire


def test_urls_follow_the_configured_base() -> None:
    config = ElevenLabsConfig.from_env({"ELEVENLABS_URL": "https://api.in.residency."
                                        "elevenlabs.io/", "ELEVENLABS_VOICE_ID": "v1"})
    assert wire.stream_url(config, wire.StreamOptions()) == (
        "wss://api.in.residency.elevenlabs.io/v1/text-to-speech/v1/multi-stream-input"
        "?model_id=eleven_flash_v2_5&output_format=pcm_8000&inactivity_timeout=20")
    single = wire.StreamOptions(multi_context=False, inactivity_timeout=60,
                                keepalive_interval=30)
    assert "/v1/stream-input?" in wire.stream_url(config, single)
    assert wire.http_stream_url(config) == (
        "https://api.in.residency.elevenlabs.io/v1/text-to-speech/v1/stream"
        "?output_format=pcm_8000")
    with pytest.raises(ValueError, match="mp3_44100_128"):
        wire.stream_url(ElevenLabsConfig(output_format="mp3_44100_128"), single)


def test_client_messages() -> None:
    init = json.loads(wire.init_message(wire.StreamOptions(), "c0"))
    assert init["text"] == " "
    assert init["context_id"] == "c0"
    assert init["generation_config"] == {"chunk_length_schedule": [50, 90, 120, 150]}
    assert wire.text_piece("  Hello,\n  world. ") == "Hello, world. "
    assert wire.text_piece(" \n ") == ""
    assert json.loads(wire.text_message("Hi. ", flush=True, context_id="c1")) == {
        "text": "Hi. ", "context_id": "c1", "flush": True}
    with pytest.raises(ValueError, match="end the stream"):
        wire.text_message("")
    assert json.loads(wire.eos_message()) == {"text": ""}
    assert json.loads(wire.flush_message()) == {"text": " ", "flush": True}
    assert json.loads(wire.keepalive_message()) == {"text": " "}
    assert json.loads(wire.keepalive_message("c1")) == {"text": "", "context_id": "c1"}
    assert json.loads(wire.close_context_message("c1")) == {"context_id": "c1",
                                                             "close_context": True}


@pytest.mark.parametrize("bad", [
    {"chunk_length_schedule": (40,)}, {"inactivity_timeout": 200},
    {"keepalive_interval": 25.0},
])
def test_stream_options_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        wire.StreamOptions(**bad)  # type: ignore[arg-type]


def test_frame_variants() -> None:
    audio = base64.b64encode(b"\x01\x02").decode()
    frame = wire.parse_frame(json.dumps({
        "audio": audio, "isFinal": None, "contextId": "c1",
        "alignment": {"chars": ["H", "i"], "charStartTimesMs": [0, 50],
                      "charsDurationsMs": [50, 60]}, "normalizedAlignment": None}))
    assert frame == wire.AudioFrame(b"\x01\x02", "c1", wire.Alignment(("H", "i"), (0, 50),
                                                                       (50, 60)))
    assert wire.parse_frame('{"is_final": true, "context_id": "c2"}') == wire.FinalFrame("c2")
    assert wire.parse_frame('{"isFinal": true}') == wire.FinalFrame(None)
    assert wire.parse_frame('{"audio": null, "isFinal": false}') == wire.OtherFrame(
        {"audio": None, "isFinal": False})
    error = wire.parse_frame('{"message": "Invalid API key", "error": "invalid_api_key", '
                             '"code": 1008}')
    assert error == wire.ErrorFrame("Invalid API key", "invalid_api_key", 1008)
    with pytest.raises(ProtocolError):
        wire.parse_frame("not json")
    with pytest.raises(ProtocolError):
        wire.parse_frame('{"audio": "***"}')


def test_close_translation() -> None:
    auth = errors.stream_error(1008, None, wire.ErrorFrame("Invalid API key",
                                                         "invalid_api_key", 1008))
    assert isinstance(auth, AuthError)
    assert (auth.status, auth.code, auth.detail) == (1008, "invalid_api_key", "Invalid API key")
    quota = errors.stream_error(1008, "quota", wire.ErrorFrame("x", "quota_exceeded", 1008))
    assert isinstance(quota, QuotaExceeded)
    idle = errors.stream_error(1008, "Have not received new text", wire.ErrorFrame(
        "Have not received new text", "input_timeout_exceeded", 1008))
    assert isinstance(idle, StreamClosed)
    assert errors.is_recoverable(idle)
    assert errors.is_recoverable(errors.stream_error(1006, None, None))
    assert not errors.is_recoverable(errors.stream_error(1008, "bad", wire.ErrorFrame(
        "bad", "invalid_message", 1008)))
    assert not errors.is_recoverable(auth)
    transient = errors.stream_error(1008, None, wire.ErrorFrame(
        "An internal server error occurred. You were not charged.", "internal_error", 1008))
    assert isinstance(transient, StreamClosed)
    assert errors.is_recoverable(transient)  # the vendor's own transient failure


def test_http_error_translation() -> None:
    body = json.dumps({"detail": {"status": "too_many_concurrent_requests",
                                  "message": "Slow down"}}).encode()
    limited = errors.http_error(429, {"Retry-After": "2"}, body)
    assert isinstance(limited, RateLimited)
    assert (limited.retry_after, limited.code) == (2.0, "too_many_concurrent_requests")
    quota = errors.http_error(401, {}, b'{"detail": {"status": "quota_exceeded"}}')
    assert isinstance(quota, QuotaExceeded)
    auth = errors.http_error(401, {"request-id": "r1"}, b'{"detail": "Unauthorized"}')
    assert isinstance(auth, AuthError)
    assert (auth.detail, auth.request_id) == ("Unauthorized", "r1")
    other = errors.http_error(422, {}, b"<html>")
    assert type(other) is HandshakeRejected
    down = errors.http_error(503, {"retry-after": "1.5", "request-id": "r2"}, b"")
    assert isinstance(down, VendorUnavailable)
    assert (down.status, down.retry_after, down.request_id) == (503, 1.5, "r2")


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_pcm_decoder_is_chunking_invariant(data: bytes, cuts: list[int]) -> None:
    decoder = wire.AudioDecoder("pcm_16000")
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    out = b"".join(decoder.decode(data[a:b]) for a, b in itertools.pairwise(bounds))
    even = len(data) - len(data) % 2
    assert out == data[:even]
    assert decoder.vendor_bytes == len(data)


def test_ulaw_decoder_expands_to_pcm16() -> None:
    pcm = (3000 * np.sin(np.arange(800) / 5)).astype(np.int16)
    codes = bytes(dsp.ulaw_encode(pcm))
    out = wire.AudioDecoder("ulaw_8000").decode(codes)
    assert out == dsp.ulaw_decode(codes).tobytes()
    assert len(out) == 2 * len(codes)
    assert wire.audio_seconds(len(codes), "ulaw_8000") == pytest.approx(0.1)
    assert wire.audio_seconds(3200, "pcm_16000") == pytest.approx(0.1)

"""Twilio Media Streams: camelCase frames, μ-law payloads through ``dsp``, the
shared ``Dialect`` interface, and generated garbage."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsp.g711 import ulaw_decode, ulaw_encode
from server.exceptions import BadPayload, FrameError
from server.telephony import exotel, twilio
from server.telephony.dialect import DIALECTS, EXOTEL, TWILIO, Dialect, get_dialect
from server.telephony.events import Connected, Dtmf, Mark, Media, Start, Stop, Unknown

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA5ca4f3b8e4b5c9d1d8f1c2e3a4b5c6d7"
ACCOUNT = "AC0123456789abcdef0123456789abcdef"
EVENT_TYPES = (Connected, Start, Media, Dtmf, Mark, Stop, Unknown)

CODES = bytes(range(256))  # every μ-law code once
CODES_PCM = ulaw_decode(CODES).tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def parse(obj: Any) -> Any:
    return twilio.parse_frame(json.dumps(obj))


def test_connected() -> None:
    assert parse({"event": "connected", "protocol": "Call", "version": "1.0.0"}) == Connected(
        "Call", "1.0.0"
    )


def test_start() -> None:
    raw = {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": ACCOUNT,
            "streamSid": SID,
            "callSid": CALL,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"FirstName": "Jane", "From": "+14155550100"},
        },
        "streamSid": SID,
    }
    assert parse(raw) == Start(
        stream_sid=SID,
        call_sid=CALL,
        account_sid=ACCOUNT,
        from_="",
        to="",
        custom_parameters={"FirstName": "Jane", "From": "+14155550100"},
        sample_rate=8000,
        encoding="mulaw",
        media_format={"encoding": "audio/x-mulaw", "sampleRate": "8000", "channels": "1"},
    )


def test_camel_spelling_wins_over_snake() -> None:
    raw = {"event": "start", "start": {"streamSid": SID, "stream_sid": "other"}}
    event = parse(raw)
    assert isinstance(event, Start)
    assert event.stream_sid == SID


def test_media_is_decoded_from_mulaw() -> None:
    raw = {
        "event": "media",
        "sequenceNumber": "3",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": b64(CODES)},
        "streamSid": SID,
    }
    event = parse(raw)
    assert event == Media(pcm=CODES_PCM, chunk=1, timestamp=5, sequence_number=3, track="inbound")
    assert len(event.pcm) == 2 * len(CODES)
    samples = np.frombuffer(event.pcm, dtype="<i2")
    assert samples[0] == -32124
    assert samples[255] == 0


@pytest.mark.parametrize("size", [1, 3, 159, 160])
def test_media_any_length_is_whole_samples(size: int) -> None:
    event = parse({"event": "media", "media": {"payload": b64(CODES[:size])}})
    assert isinstance(event, Media)
    assert len(event.pcm) == 2 * size


def test_media_bad_base64() -> None:
    with pytest.raises(BadPayload) as info:
        parse({"event": "media", "media": {"payload": "@@@@"}})
    assert info.value.event == "media"


def test_dtmf_with_track() -> None:
    raw = {
        "event": "dtmf",
        "streamSid": SID,
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }
    assert parse(raw) == Dtmf(digit="1", duration=None, track="inbound_track")


def test_mark() -> None:
    raw = {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "my label"}}
    assert parse(raw) == Mark("my label")


def test_stop_has_no_reason() -> None:
    raw = {
        "event": "stop",
        "sequenceNumber": "5",
        "streamSid": SID,
        "stop": {"accountSid": ACCOUNT, "callSid": CALL},
    }
    assert parse(raw) == Stop(None)


def test_unknown_and_garbage() -> None:
    assert parse({"event": "clear", "streamSid": SID}) == Unknown(
        "clear", {"event": "clear", "streamSid": SID}
    )
    with pytest.raises(FrameError):
        twilio.parse_frame("[]")
    with pytest.raises(FrameError):
        twilio.parse_frame(b"\x00")


# -- builders -------------------------------------------------------------------


def test_media_frame_encodes_pcm_as_mulaw() -> None:
    pcm = (np.arange(-32768, 32768, 97, dtype=np.int16)).tobytes()
    obj = json.loads(twilio.media_frame(SID, pcm))
    assert obj["event"] == "media"
    assert obj["streamSid"] == SID
    codes = base64.b64decode(obj["media"]["payload"], validate=True)
    assert codes == ulaw_encode(pcm).tobytes()
    assert len(codes) == len(pcm) // 2


def test_media_round_trip_is_mulaw_quantised() -> None:
    pcm = (np.sin(np.arange(800) / 7) * 12000).astype("<i2").tobytes()
    event = twilio.parse_frame(twilio.media_frame(SID, pcm))
    assert isinstance(event, Media)
    assert event.pcm == ulaw_decode(ulaw_encode(pcm)).tobytes()
    error = np.abs(np.frombuffer(event.pcm, "<i2").astype(int) - np.frombuffer(pcm, "<i2"))
    assert error.max() <= 12000 // 16 + 8  # μ-law's coarsest step near this level


def test_mark_and_clear_frames() -> None:
    assert json.loads(twilio.mark_frame(SID, "utt-1")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "utt-1"},
    }
    assert json.loads(twilio.clear_frame(SID)) == {"event": "clear", "streamSid": SID}
    assert twilio.parse_frame(twilio.mark_frame(SID, "utt-1")) == Mark("utt-1")


def test_media_frame_refuses_partial_samples() -> None:
    with pytest.raises(ValueError, match="3 bytes"):
        twilio.media_frame(SID, bytes(3))


# -- the dialect interface --------------------------------------------------------


def test_dialect_lookup_and_facts() -> None:
    assert get_dialect("exotel") is EXOTEL
    assert get_dialect("twilio") is TWILIO
    assert set(DIALECTS) == {"exotel", "twilio"}
    with pytest.raises(KeyError, match="known: exotel, twilio"):
        get_dialect("plivo")
    assert (EXOTEL.echoes_marks_on_clear, TWILIO.echoes_marks_on_clear) == (False, True)
    assert (EXOTEL.outbound_align, TWILIO.outbound_align) == (320, 2)
    assert EXOTEL.max_payload_bytes == TWILIO.max_payload_bytes == 100_000
    assert EXOTEL.sample_rates == (8000, 16000, 24000)
    assert TWILIO.sample_rates == (8000,)


@pytest.mark.parametrize("dialect", [EXOTEL, TWILIO], ids=lambda d: d.name)
def test_dialects_produce_the_same_events(dialect: Dialect) -> None:
    pcm = ulaw_decode(CODES).tobytes()  # survives a μ-law round trip exactly
    assert dialect.parse_frame(dialect.media_frame("S", pcm)) == Media(pcm=pcm)
    assert dialect.parse_frame(dialect.mark_frame("S", "m")) == Mark("m")
    assert dialect.parse_frame('{"event":"stop"}') == Stop(None)
    cleared = dialect.parse_frame(dialect.clear_frame("S"))
    assert isinstance(cleared, Unknown)
    assert cleared.event == "clear"


def test_modules_delegate_unchanged() -> None:
    text = json.dumps({"event": "media", "media": {"payload": b64(bytes(4))}})
    assert EXOTEL.parse_frame(text, sample_rate=16000) == exotel.parse_frame(text)
    assert TWILIO.parse_frame(text) == twilio.parse_frame(text)
    assert repr(EXOTEL) == "<Dialect exotel>"


# -- generated garbage ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["event", "media", "payload", "streamSid", "mark", "name", "start"])
            | st.text(max_size=6),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@given(st.sampled_from(["media", "start", "mark", "dtmf", "stop", "connected"]), json_values)
def test_random_frames(name: str, body: Any) -> None:
    obj = {**body, "event": name} if isinstance(body, dict) else {"event": name, name: body}
    try:
        event = twilio.parse_frame(json.dumps(obj))
    except FrameError:
        return
    assert isinstance(event, EVENT_TYPES)


@given(st.binary(max_size=2000))
def test_any_mulaw_payload_decodes(codes: bytes) -> None:
    event = twilio.parse_frame(json.dumps({"event": "media", "media": {"payload": b64(codes)}}))
    assert isinstance(event, Media)
    assert event.pcm == ulaw_decode(codes).tobytes()

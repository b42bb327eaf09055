"""Exotel wire format: every variant PROTOCOLS.md lists, builders round-tripping
through the parser, and generated garbage that may only ever give an ``StreamEvent``
or a ``FrameError``."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.exceptions import BadPayload, FrameError, ServerError
from server.telephony import exotel
from server.telephony.events import Connected, Dtmf, Mark, Media, Start, Stop, Unknown

SID = "4f0c2a6a1b2c4d5e8f901234567890ab"
CALL = "9a8b7c6d5e4f30211203f4e5d6c7b8a9"
ACCOUNT = "exotel_account1"
EVENT_TYPES = (Connected, Start, Media, Dtmf, Mark, Stop, Unknown)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def frame(obj: Any) -> str:
    return json.dumps(obj)


# -- connected --------------------------------------------------------------


def test_connected_bare() -> None:
    assert exotel.parse_frame('{"event":"connected"}') == Connected(None, None)


def test_connected_with_protocol_and_version() -> None:
    event = exotel.parse_frame(
        frame({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    )
    assert event == Connected(protocol="Call", version="1.0.0")


def test_connected_numeric_version_becomes_text() -> None:
    assert exotel.parse_frame('{"event":"connected","version":1.0}') == Connected(None, "1.0")


# -- start --------------------------------------------------------------------


def start_frame(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "stream_sid": SID,
        "call_sid": CALL,
        "account_sid": ACCOUNT,
        "from": "+919812345678",
        "to": "08047112233",
        "custom_parameters": {"lead_id": "42", "campaign": "loans"},
        "media_format": {"encoding": "base64", "sample_rate": "8000", "bit_rate": "128kbps"},
    }
    body.update(overrides)
    return {"event": "start", "sequence_number": 1, "stream_sid": SID, "start": body}


def test_start_snake_case() -> None:
    event = exotel.parse_frame(frame(start_frame()), sample_rate=16000)
    assert event == Start(
        stream_sid=SID,
        call_sid=CALL,
        account_sid=ACCOUNT,
        from_="+919812345678",
        to="08047112233",
        custom_parameters={"lead_id": "42", "campaign": "loans"},
        sample_rate=16000,
        encoding="pcm16",
        media_format={"encoding": "base64", "sample_rate": "8000", "bit_rate": "128kbps"},
    )


def test_start_camel_case() -> None:
    raw = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": SID,
        "start": {
            "streamSid": SID,
            "callSid": CALL,
            "accountSid": ACCOUNT,
            "from": "09812345678",
            "to": "+918047112233",
            "customParameters": {"a": "1"},
            "mediaFormat": {"encoding": "audio/x-raw", "sampleRate": 8000, "bitRate": 128},
        },
    }
    event = exotel.parse_frame(frame(raw))
    assert isinstance(event, Start)
    assert (event.stream_sid, event.call_sid, event.account_sid) == (SID, CALL, ACCOUNT)
    assert (event.from_, event.to) == ("09812345678", "+918047112233")
    assert event.custom_parameters == {"a": "1"}
    assert event.media_format == {"encoding": "audio/x-raw", "sampleRate": "8000", "bitRate": "128"}


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_start_rate_comes_from_the_argument_never_from_media_format(rate: int) -> None:
    raw = start_frame(media_format={"encoding": "raw", "sample_rate": "24000 Hz"})
    event = exotel.parse_frame(frame(raw), sample_rate=rate)
    assert isinstance(event, Start)
    assert event.sample_rate == rate
    assert event.encoding == "pcm16"


@pytest.mark.parametrize("media_format", [None, "audio/x-raw", 8000, ["raw"]])
def test_start_tolerates_any_media_format(media_format: Any) -> None:
    event = exotel.parse_frame(frame(start_frame(media_format=media_format)))
    assert isinstance(event, Start)
    assert event.media_format == {}


def test_start_bare_custom_parameter_is_empty_string() -> None:
    raw = start_frame(custom_parameters={"flag": "", "nothing": None, "n": 5, "ok": True})
    event = exotel.parse_frame(frame(raw))
    assert isinstance(event, Start)
    assert event.custom_parameters == {"flag": "", "nothing": "", "n": "5", "ok": "true"}


def test_start_missing_custom_parameters_and_numbers() -> None:
    raw = start_frame()
    for key in ("custom_parameters", "from", "to", "call_sid", "account_sid"):
        del raw["start"][key]
    event = exotel.parse_frame(frame(raw))
    assert isinstance(event, Start)
    assert event.custom_parameters == {}
    assert (event.from_, event.to, event.call_sid, event.account_sid) == ("", "", "", "")


def test_start_stream_sid_only_at_top_level() -> None:
    raw = start_frame()
    del raw["start"]["stream_sid"]
    event = exotel.parse_frame(frame(raw))
    assert isinstance(event, Start)
    assert event.stream_sid == SID


def test_start_numbers_as_ints_become_text() -> None:
    raw = start_frame(**{"from": 919812345678, "to": 8047112233})
    event = exotel.parse_frame(frame(raw))
    assert isinstance(event, Start)
    assert (event.from_, event.to) == ("919812345678", "8047112233")


def test_start_unicode_parameters() -> None:
    raw = start_frame(custom_parameters={"naam": "राहुल", "note": "₹5 लाख"})
    event = exotel.parse_frame(frame(raw).encode())
    assert isinstance(event, Start)
    assert event.custom_parameters == {"naam": "राहुल", "note": "₹5 लाख"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"event": "start"}, "no start object"),
        ({"event": "start", "start": "x"}, "no start object"),
        ({"event": "start", "start": {"call_sid": CALL}}, "no stream_sid"),
        ({"event": "start", "start": {"stream_sid": ""}}, "no stream_sid"),
        ({"event": "start", "start": {"stream_sid": ["x"]}}, "stream_sid is not a string"),
        (start_frame(custom_parameters=["a"]), "custom_parameters is not an object"),
        (start_frame(call_sid={"x": 1}), "call_sid is not a string"),
    ],
)
def test_start_malformed(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(FrameError) as info:
        exotel.parse_frame(frame(raw))
    assert info.value.event == "start"
    assert info.value.reason == reason
    assert not isinstance(info.value, BadPayload)


# -- media --------------------------------------------------------------------

PCM = bytes(range(256)) * 6 + bytes(64)  # 1600 bytes: 100 ms at 8 kHz


def test_media_snake_case_with_string_numbers() -> None:
    raw = {
        "event": "media",
        "sequence_number": "3",
        "stream_sid": SID,
        "media": {"chunk": "2", "timestamp": "200", "payload": b64(PCM)},
    }
    assert exotel.parse_frame(frame(raw)) == Media(
        pcm=PCM, chunk=2, timestamp=200, sequence_number=3
    )


def test_media_camel_case_with_int_numbers() -> None:
    raw = {
        "event": "media",
        "sequenceNumber": 3,
        "streamSid": SID,
        "media": {"chunk": 2, "timestamp": 200, "payload": b64(PCM)},
    }
    assert exotel.parse_frame(frame(raw)) == Media(
        pcm=PCM, chunk=2, timestamp=200, sequence_number=3
    )


def test_media_snake_spelling_wins_over_camel() -> None:
    raw = {"event": "media", "sequence_number": 5, "sequenceNumber": 6, "media": {"payload": ""}}
    event = exotel.parse_frame(frame(raw))
    assert isinstance(event, Media)
    assert event.sequence_number == 5


def test_media_without_counters() -> None:
    event = exotel.parse_frame(frame({"event": "media", "media": {"payload": b64(PCM[:320])}}))
    assert event == Media(pcm=PCM[:320], chunk=None, timestamp=None, sequence_number=None)


@pytest.mark.parametrize(("value", "expected"), [("", None), (None, None), (" 7 ", 7), (7.0, 7)])
def test_media_counter_spellings(value: Any, expected: int | None) -> None:
    raw = {"event": "media", "media": {"chunk": value, "payload": ""}}
    event = exotel.parse_frame(frame(raw))
    assert isinstance(event, Media)
    assert event.chunk == expected


@pytest.mark.parametrize("size", [0, 2, 320, 1600, 3200, 4800, 50_000])
def test_media_accepts_any_even_size(size: int) -> None:
    pcm = bytes(i % 251 for i in range(size))
    event = exotel.parse_frame(frame({"event": "media", "media": {"payload": b64(pcm)}}))
    assert isinstance(event, Media)
    assert event.pcm == pcm


def test_media_track_is_kept() -> None:
    raw = {"event": "media", "media": {"track": "inbound", "payload": b64(PCM[:2])}}
    event = exotel.parse_frame(frame(raw))
    assert isinstance(event, Media)
    assert event.track == "inbound"


@pytest.mark.parametrize(
    "payload",
    ["AAA", "A===", " AAAA", "AAAA\n", "AA==AA==", "not base64!", "é√", "AAAA" + "\u0000"],
)
def test_media_bad_base64(payload: str) -> None:
    with pytest.raises(BadPayload) as info:
        exotel.parse_frame(frame({"event": "media", "media": {"payload": payload}}))
    assert info.value.event == "media"
    assert info.value.reason == "payload is not base64"


@pytest.mark.parametrize("size", [1, 3, 1601])
def test_media_odd_length_is_not_pcm16(size: int) -> None:
    with pytest.raises(BadPayload) as info:
        exotel.parse_frame(frame({"event": "media", "media": {"payload": b64(bytes(size))}}))
    assert f"odd payload length {size}" in info.value.reason


@pytest.mark.parametrize(
    ("media", "reason"),
    [
        (None, "no media object"),
        ("AAAA", "no media object"),
        ({}, "payload is not a string"),
        ({"payload": 1234}, "payload is not a string"),
        ({"payload": "", "chunk": "two"}, "chunk is not an integer"),
        ({"payload": "", "chunk": True}, "chunk is not an integer"),
        ({"payload": "", "chunk": 1.5}, "chunk is not an integer"),
        ({"payload": "", "timestamp": "9" * 30}, "timestamp is not an integer"),
        ({"payload": "", "timestamp": "١٢"}, "timestamp is not an integer"),  # Arabic digits
        ({"payload": "", "timestamp": [1]}, "timestamp is not an integer"),
        ({"payload": "", "track": {"x": 1}}, "track is not a string"),
    ],
)
def test_media_malformed(media: Any, reason: str) -> None:
    raw: dict[str, Any] = {"event": "media"}
    if media is not None:
        raw["media"] = media
    with pytest.raises(FrameError) as info:
        exotel.parse_frame(frame(raw))
    assert (info.value.event, info.value.reason) == ("media", reason)
    assert not isinstance(info.value, BadPayload)


def test_huge_numbers_are_frame_errors() -> None:
    for digits in ("9" * 19, "9" * 40, "9" * 400, "-" + "9" * 30):
        huge = f'{{"event":"media","sequence_number":{digits},"media":{{"payload":""}}}}'
        with pytest.raises(FrameError, match="sequence_number is not an integer"):
            exotel.parse_frame(huge)
    with pytest.raises(FrameError):
        exotel.parse_frame('{"event":"media","media":{"payload":"","chunk":1e400}}')
    event = exotel.parse_frame(
        '{"event":"media","sequence_number":"9223372036854775807","media":{"payload":""}}'
    )
    assert isinstance(event, Media)
    assert event.sequence_number == 2**63 - 1
    event = exotel.parse_frame('{"event":"media","media":{"payload":"","chunk":"-12"}}')
    assert isinstance(event, Media)
    assert event.chunk == -12


# -- dtmf, mark, stop -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"digit": "5", "duration": "400"}, Dtmf("5", 400)),
        ({"digit": "#", "duration": 250}, Dtmf("#", 250)),
        ({"digit": 7}, Dtmf("7", None)),
        ({"digit": "*", "track": "inbound_track"}, Dtmf("*", None, "inbound_track")),
    ],
)
def test_dtmf(body: dict[str, Any], expected: Dtmf) -> None:
    raw = {"event": "dtmf", "stream_sid": SID, "sequence_number": 9, "dtmf": body}
    assert exotel.parse_frame(frame(raw)) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"event": "dtmf"}, "no dtmf object"),
        ({"event": "dtmf", "dtmf": {}}, "no digit"),
        ({"event": "dtmf", "dtmf": {"digit": ""}}, "empty digit"),
        (
            {"event": "dtmf", "dtmf": {"digit": "1", "duration": "long"}},
            "duration is not an integer",
        ),
    ],
)
def test_dtmf_malformed(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(FrameError) as info:
        exotel.parse_frame(frame(raw))
    assert (info.value.event, info.value.reason) == ("dtmf", reason)


@pytest.mark.parametrize(
    "raw",
    [
        {"event": "mark", "sequence_number": "4", "stream_sid": SID, "mark": {"name": "utt-1"}},
        {"event": "mark", "streamSid": SID, "mark": {"name": "utt-1"}},
        {"event": "mark", "mark": {"name": "utt-1"}},
    ],
)
def test_mark_with_and_without_sequence_number(raw: dict[str, Any]) -> None:
    assert exotel.parse_frame(frame(raw)) == Mark("utt-1")


def test_mark_unicode_name() -> None:
    assert exotel.parse_frame(frame({"event": "mark", "mark": {"name": "नमस्ते#2"}})) == Mark(
        "नमस्ते#2"
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"event": "mark"}, "no mark object"),
        ({"event": "mark", "mark": {}}, "no name"),
        ({"event": "mark", "mark": {"name": None}}, "no name"),
        ({"event": "mark", "mark": {"name": ["a"]}}, "name is not a string"),
    ],
)
def test_mark_malformed(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(FrameError) as info:
        exotel.parse_frame(frame(raw))
    assert (info.value.event, info.value.reason) == ("mark", reason)


@pytest.mark.parametrize("reason", ["callended", "stopped", "caller_hangup"])
def test_stop_reasons(reason: str) -> None:
    raw = {
        "event": "stop",
        "sequence_number": "120",
        "stream_sid": SID,
        "stop": {"call_sid": CALL, "account_sid": ACCOUNT, "reason": reason},
    }
    assert exotel.parse_frame(frame(raw)) == Stop(reason)


@pytest.mark.parametrize(
    "raw",
    [
        {"event": "stop"},
        {"event": "stop", "stop": None},
        {"event": "stop", "stop": {}},
        {"event": "stop", "stop": {"callSid": CALL, "reason": ""}},
        {"event": "stop", "stop": ""},
    ],
)
def test_stop_without_reason(raw: dict[str, Any]) -> None:
    assert exotel.parse_frame(frame(raw)) == Stop(None)


def test_stop_bare_reason_string_and_malformed() -> None:
    assert exotel.parse_frame('{"event":"stop","stop":"callended"}') == Stop("callended")
    with pytest.raises(FrameError) as info:
        exotel.parse_frame('{"event":"stop","stop":[1]}')
    assert info.value.event == "stop"


# -- unknown and garbage ----------------------------------------------------


@pytest.mark.parametrize("name", ["clear", "ping", "Media", "", "事件"])
def test_unknown_events_are_kept_not_raised(name: str) -> None:
    raw = {"event": name, "stream_sid": SID, "x": [1, 2]}
    assert exotel.parse_frame(frame(raw)) == Unknown(event=name, raw=raw)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not valid JSON"),
        ("not json", "not valid JSON"),
        ('{"event":"media"', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"media"', "not a JSON object"),
        ("null", "not a JSON object"),
        ("42", "not a JSON object"),
        ("{}", "no event name"),
        ('{"event": 5}', "no event name"),
        ('{"event": null}', "no event name"),
        (b"\xff\xfe\x00", "not valid JSON"),
        ("[" * 5000 + "]" * 5000, "not valid JSON"),
        ('{"event":"\\ud800"}', "not valid JSON"),
        ('{"event":"mark","mark":{"name":"\ud800"}}', "not valid JSON"),
    ],
)
def test_garbage_is_a_frame_error(text: str | bytes, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        exotel.parse_frame(text)
    assert info.value.reason == reason
    assert info.value.event is None


def test_binary_frame_with_json_is_read() -> None:
    raw = frame({"event": "media", "media": {"payload": b64(PCM)}}).encode()
    assert exotel.parse_frame(raw) == Media(pcm=PCM)


def test_non_text_input_is_a_frame_error() -> None:
    with pytest.raises(FrameError):
        exotel.parse_frame(1234)  # type: ignore[arg-type]


def test_frame_error_tree() -> None:
    error = BadPayload("payload is not base64", event="media")
    assert isinstance(error, FrameError)
    assert isinstance(error, ServerError)
    assert str(error) == "bad media: payload is not base64"


# -- builders -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 320, 1600, 3200, 4800, 96_000])
def test_media_frame_round_trips(size: int) -> None:
    pcm = bytes((i * 7) % 256 for i in range(size))
    text = exotel.media_frame(SID, pcm)
    obj = json.loads(text)
    assert obj == {"event": "media", "stream_sid": SID, "media": {"payload": b64(pcm)}}
    assert exotel.parse_frame(text) == Media(pcm=pcm)


def test_builders_escape_the_stream_sid_and_names() -> None:
    sid = 'we"ird\\sid\n'
    assert json.loads(exotel.mark_frame(sid, 'a "name" ✓')) == {
        "event": "mark",
        "stream_sid": sid,
        "mark": {"name": 'a "name" ✓'},
    }
    assert json.loads(exotel.clear_frame(sid)) == {"event": "clear", "stream_sid": sid}
    assert exotel.parse_frame(exotel.mark_frame(sid, "utt-1")) == Mark("utt-1")
    assert exotel.parse_frame(exotel.clear_frame(sid)) == Unknown(
        event="clear", raw={"event": "clear", "stream_sid": sid}
    )


@pytest.mark.parametrize("size", [1, 321, exotel.MAX_PAYLOAD_BYTES + 2])
def test_media_frame_refuses_partial_samples_and_oversize(size: int) -> None:
    with pytest.raises(ValueError, match=f"{size} bytes"):
        exotel.media_frame(SID, bytes(size))


# -- generated garbage ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "event", "media", "start", "stop", "mark", "dtmf", "payload", "chunk", "timestamp",
        "name", "digit", "duration", "reason", "stream_sid", "streamSid", "sequence_number",
        "sequenceNumber", "custom_parameters", "customParameters", "media_format", "from",
        "to", "call_sid", "track", "protocol", "version",
    ]
)  # fmt: skip
frame_like = st.recursive(
    json_values | st.sampled_from(["AAAA", "AAA=", "", "12", "x"]),
    lambda children: st.dictionaries(field_names, children, max_size=5),
    max_leaves=15,
)
event_names = st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "clear"])


def assert_event_or_frame_error(text: str | bytes) -> None:
    try:
        event = exotel.parse_frame(text, sample_rate=8000)
    except FrameError:
        return
    assert isinstance(event, EVENT_TYPES)


@given(st.text())
def test_random_text(text: str) -> None:
    assert_event_or_frame_error(text)


@given(st.binary())
def test_random_bytes(data: bytes) -> None:
    assert_event_or_frame_error(data)


@given(json_values)
def test_random_json(value: Any) -> None:
    assert_event_or_frame_error(msgspec.json.encode(value))


@given(event_names, st.dictionaries(field_names, frame_like, max_size=6))
def test_random_frames_with_real_event_names(name: str, body: dict[str, Any]) -> None:
    assert_event_or_frame_error(msgspec.json.encode({**body, "event": name}))


VALID_FRAMES = [
    frame(start_frame()),
    frame({"event": "media", "sequence_number": "3", "media": {"chunk": "2", "payload": b64(PCM)}}),
    frame({"event": "dtmf", "dtmf": {"digit": "5", "duration": "400"}}),
    frame({"event": "mark", "mark": {"name": "utt-1"}}),
    frame({"event": "stop", "stop": {"reason": "callended"}}),
    frame({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
]


@given(
    st.sampled_from(VALID_FRAMES),
    st.lists(st.tuples(st.integers(0, 10**6), st.characters()), min_size=1, max_size=6),
)
def test_mutated_valid_frames(text: str, edits: list[tuple[int, str]]) -> None:
    chars = list(text)
    for position, char in edits:
        chars[position % len(chars)] = char
    assert_event_or_frame_error("".join(chars))


@given(st.sampled_from(VALID_FRAMES), st.integers(0, 10**6))
def test_truncated_valid_frames(text: str, cut: int) -> None:
    assert_event_or_frame_error(text[: cut % len(text)])


@given(st.binary(max_size=4000).map(lambda b: b[: len(b) // 2 * 2]))
def test_media_payload_round_trip(pcm: bytes) -> None:
    assert exotel.parse_frame(exotel.media_frame(SID, pcm)) == Media(pcm=pcm)

"""Deepgram wire format (sans-IO) and turn assembly."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from providers.config import DeepgramConfig
from providers.exceptions import AuthError, HandshakeRejected, ProtocolError
from providers.stt import deepgram_wire as wire
from providers.stt.base import Endpoint, Final, Interim, SpeechDetected, STTEvent, UtteranceEnd
from providers.stt.turns import Turn, TurnAssembler


def test_listen_url_has_the_documented_query() -> None:
    url = wire.listen_url(DeepgramConfig(keyterms=("Acme Solar", "EMI"), tag="call-1"))
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "api.deepgram.com", "/v1/listen")
    query = parse_qs(parts.query)
    assert query == {
        "model": ["nova-2"], "language": ["en-IN"], "encoding": ["linear16"],
        "sample_rate": ["8000"], "channels": ["1"], "interim_results": ["true"],
        "endpointing": ["300"], "vad_events": ["true"], "smart_format": ["true"],
        "utterance_end_ms": ["1000"], "keywords": ["Acme Solar", "EMI"], "tag": ["call-1"],
    }
    nova3 = parse_qs(urlsplit(wire.listen_url(DeepgramConfig(
        url="ws://127.0.0.1:9/", model="nova-3", keyterms=("EMI",), encoding="mulaw",
        endpointing_ms=0, interim_results=False))).query)
    assert nova3["keyterm"] == ["EMI"]
    assert nova3["endpointing"] == ["false"]
    assert "utterance_end_ms" not in nova3  # it requires interim_results
    assert nova3["encoding"] == ["mulaw"]


RESULTS = {
    "type": "Results", "channel_index": [0, 1], "duration": 1.2, "start": 0.5,
    "is_final": True, "speech_final": True, "from_finalize": False,
    "channel": {"alternatives": [{"transcript": "haan ji", "confidence": 0.91, "words": [
        {"word": "haan", "start": 0.6, "end": 0.9}, {"word": "ji", "start": 0.9, "end": 1.4}]}]},
    "metadata": {"request_id": "r1"},
}


def test_parse_results_and_variants_without_type_or_speech_final() -> None:
    parsed = wire.parse_message(json.dumps(RESULTS))
    assert parsed == wire.Results(0.5, 1.2, True, True, False, "haan ji", 0.91, 1.4)
    assert isinstance(parsed, wire.Results)
    assert parsed.end == pytest.approx(1.7)
    bare = {k: v for k, v in RESULTS.items() if k not in ("type", "speech_final")}
    parsed = wire.parse_message(json.dumps(bare).encode())
    assert isinstance(parsed, wire.Results)
    assert parsed.speech_final is False
    empty = dict(RESULTS, channel={"alternatives": []})
    parsed = wire.parse_message(json.dumps(empty))
    assert isinstance(parsed, wire.Results)
    assert (parsed.transcript, parsed.last_word_end) == ("", -1.0)


def test_parse_other_messages_unknown_and_garbage() -> None:
    assert wire.parse_message('{"type":"SpeechStarted","channel":[0],"timestamp":2.5}') == (
        wire.SpeechStartedMsg(2.5))
    assert wire.parse_message('{"type":"UtteranceEnd","channel":[0,1],"last_word_end":3.1}') == (
        wire.UtteranceEndMsg(3.1))
    assert wire.parse_message('{"type":"Metadata","request_id":"abc","duration":9.5}') == (
        wire.Metadata("abc", 9.5))
    assert wire.parse_message('{"type":"Error","err_code":"X","err_msg":"bad"}') == (
        wire.ErrorMsg("X", "bad"))
    unknown = wire.parse_message('{"type":"Brand-New","x":1}')
    assert isinstance(unknown, wire.UnknownMessage)
    assert unknown.type == "Brand-New"
    with pytest.raises(ProtocolError):
        wire.parse_message("{oops")
    with pytest.raises(ProtocolError):
        wire.parse_message("[1]")


def test_close_codes_translate_with_deepgram_codes() -> None:
    assert wire.close_error(1000, None) is None
    idle = wire.close_error(1011, "Deepgram did not receive audio... See https://dpgr.am/net0001")
    assert idle is not None
    assert (idle.status, idle.code) == (1011, "NET-0001")
    assert wire.is_recoverable(idle)
    bad = wire.close_error(1008, "DATA-0000: The payload cannot be decoded as audio.")
    assert bad is not None
    assert (bad.status, bad.code) == (1008, "DATA-0000")
    assert not wire.is_recoverable(bad)
    reset = wire.close_error(1006, None)
    assert reset is not None
    assert reset.code is None
    assert wire.is_recoverable(reset)


def test_handshake_errors_use_body_then_header() -> None:
    body = b'{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"rq-1"}'
    auth = wire.handshake_error(401, [(b"dg-error", b"Invalid credentials.")], body)
    assert isinstance(auth, AuthError)
    assert (auth.status, auth.code, auth.detail, auth.request_id) == (
        401, "INVALID_AUTH", "Invalid credentials.", "rq-1")
    header_only = wire.handshake_error(
        400, [(b"dg-error", b"Bad sample rate"), (b"dg-request-id", b"rq-2")], b"not json")
    assert type(header_only) is HandshakeRejected
    assert (header_only.detail, header_only.request_id, header_only.code) == (
        "Bad sample rate", "rq-2", None)


def test_turn_assembler_joins_finals_up_to_the_endpoint() -> None:
    assembler = TurnAssembler()
    events: list[STTEvent] = [
        SpeechDetected(0.4), Interim("my bud"), Final("my budget", 0.0, 1.0),
        Final(" ", 1.0, 1.2), Final("is five lakh", 1.2, 2.0, speech_final=True),
        UtteranceEnd(2.0),  # nothing pending: no second turn
        Final("yes", 2.0, 2.5), Endpoint(2.8, from_finalize=True),
        Final("and", 3.0, 3.2), UtteranceEnd(3.2),
        Final("ok", 4.0, 4.2, from_finalize=True),
        Endpoint(5.0),
    ]
    turns = [turn for turn in map(assembler.feed, events) if turn is not None]
    assert turns == [
        Turn("my budget is five lakh", 0.0, 2.0, from_finalize=False),
        Turn("yes", 2.0, 2.5, from_finalize=True),
        Turn("and", 3.0, 3.2, from_finalize=False),
        Turn("ok", 4.0, 4.2, from_finalize=True),
    ]
    assert assembler.pending_text == ""

"""Exotel Voicebot stream frames, sans-IO: text frame → ``server.telephony.events``, and
the outbound ``media`` / ``mark`` / ``clear`` frames.

Exotel's grammar is Twilio's with snake_case keys, so the lenient reader here
(``parse_frame_as``) serves both dialects; ``server.telephony.twilio`` only swaps the
preferred key spelling and the payload codec. What "lenient" means, exactly
(each rule is a variant seen in Exotel's docs, samples or real integrations):

* keys in snake_case or camelCase (``stream_sid`` / ``streamSid``); the dialect's
  own spelling wins when both are present;
* numbers as ints or decimal strings (``"12"``); ``""`` or ``null`` count as
  absent; ``sequence_number`` may be missing anywhere;
* ``start.media_format`` is never interpreted (encodings like ``"raw"`` or
  ``"base64"``, rates like ``"8000"`` or ``"128kbps"``): the audio's sample rate
  is the one the URL query chose, passed in as ``sample_rate``; the declared
  values are kept, stringified, in ``Start.media_format`` for logs;
* ``custom_parameters`` values become strings (a bare key is ``""``);
* ``stop.reason`` is passed through (``callended``, ``stopped``,
  ``caller_hangup``) and may be absent; ``connected`` may lack protocol/version;
* unknown event names give ``Unknown``, never an error.

Everything else that is wrong raises ``FrameError`` (``BadPayload`` for a
payload that is not strict base64 or not whole PCM16 samples) — and nothing
else: no ``KeyError``, ``TypeError`` or decoder error escapes.

Speed: the media path is the hot one (every call, ten frames a second). JSON
goes through ``msgspec.json.decode`` into plain dicts (about 1 µs for a 100 ms
frame) and base64 through ``msgspec.convert(payload, bytes)``: as strict as
``binascii.a2b_base64(strict_mode=True)`` (padding required; whitespace and junk
refused) and about 4x faster on a 2 KB payload (1.5 µs against 6 µs here).
Outbound media frames are built by string concatenation around a cached,
JSON-escaped stream sid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from server.exceptions import BadPayload, FrameError
from server.telephony.events import Connected, Dtmf, Mark, Media, Start, Stop, StreamEvent, Unknown
from server.telephony.outbound import OutboundFrames

__all__ = [
    "ENCODING",
    "MAX_PAYLOAD_BYTES",
    "OUTBOUND_ALIGN",
    "Grammar",
    "clear_frame",
    "mark_frame",
    "media_frame",
    "parse_frame",
    "parse_frame_as",
]

#: Outbound payloads must be a multiple of this many bytes (10 ms at 16 kHz,
#: 20 ms at 8 kHz); a shorter piece makes Exotel wait 20 ms → audible gaps.
OUTBOUND_ALIGN = 320
#: Upper bound on the raw audio bytes of one outbound media frame.
MAX_PAYLOAD_BYTES = 100_000
#: ``Start.encoding`` for this dialect: raw PCM16LE both ways.
ENCODING = "pcm16"

_json_decode = msgspec.json.decode
_json_encode = msgspec.json.encode
# msgspec's str → bytes conversion is strict base64 (padding required, no
# whitespace or junk) and about 4x faster than binascii.a2b_base64 on 2 KB.
_b64decode = msgspec.convert

# A decimal string longer than this is not a counter we could use (int64 has
# 19 digits); refusing early also keeps int() away from 4300-digit strings.
_MAX_DIGITS = 20
# Counters outside int64 are garbage, however they are spelled.
_INT64_LIMIT = 2**63


@dataclass(frozen=True, slots=True)
class Grammar:
    """What differs between the dialects that share this reader.

    ``to_pcm`` turns the base64-decoded payload into PCM16LE bytes and raises
    ``BadPayload`` when it cannot; ``camel_first`` picks which spelling wins when
    a frame carries both.
    """

    name: str
    encoding: str
    camel_first: bool
    to_pcm: Callable[[bytes], bytes]


def _pcm_as_is(raw: bytes) -> bytes:
    if len(raw) & 1:
        raise BadPayload(f"odd payload length {len(raw)} is not PCM16", event="media")
    return raw


EXOTEL_GRAMMAR = Grammar(name="exotel", encoding=ENCODING, camel_first=False, to_pcm=_pcm_as_is)


def parse_frame(text: str | bytes, *, sample_rate: int = 8000) -> StreamEvent:
    """Read one Exotel text (or binary) frame. ``sample_rate`` is the call's
    rate from the URL query and becomes ``Start.sample_rate``.

    Raises ``FrameError`` (or its ``BadPayload``) and nothing else.
    """
    return parse_frame_as(EXOTEL_GRAMMAR, text, sample_rate)


# -- reading ------------------------------------------------------------------


def parse_frame_as(grammar: Grammar, text: str | bytes, sample_rate: int) -> StreamEvent:
    """The shared lenient reader; see the module docstring for the rules."""
    try:
        obj = _json_decode(text)
    except (ValueError, RecursionError) as exc:
        # msgspec raises DecodeError (a ValueError) for bad JSON and numbers out
        # of range, UnicodeError for lone surrogates, RecursionError for deep nests.
        raise FrameError("not valid JSON") from exc
    except TypeError as exc:
        raise FrameError(f"not text: {type(text).__name__}") from exc
    if type(obj) is not dict:
        raise FrameError("not a JSON object")
    event = obj.get("event")
    if type(event) is not str:
        raise FrameError("no event name")
    if event == "media":
        return _media(grammar, obj)
    if event == "mark":
        return Mark(name=_required_str(_section(grammar, obj, "mark"), "name", event))
    if event == "start":
        return _start(grammar, obj, sample_rate)
    if event == "dtmf":
        return _dtmf(grammar, obj)
    if event == "stop":
        return _stop(obj)
    if event == "connected":
        return Connected(
            protocol=_optional_str(obj.get("protocol"), "protocol", event),
            version=_optional_str(obj.get("version"), "version", event),
        )
    return Unknown(event=event, raw=obj)


def _media(grammar: Grammar, obj: dict[str, Any]) -> Media:
    media = obj.get("media")
    if type(media) is not dict:
        raise FrameError("no media object", event="media")
    payload = media.get("payload")
    if type(payload) is not str:
        raise FrameError("payload is not a string", event="media")
    try:
        raw = _b64decode(payload, bytes)
    except ValueError as exc:  # msgspec.ValidationError
        raise BadPayload("payload is not base64", event="media") from exc
    return Media(
        pcm=grammar.to_pcm(raw),
        chunk=_optional_int(media.get("chunk"), "chunk", "media"),
        timestamp=_optional_int(media.get("timestamp"), "timestamp", "media"),
        sequence_number=_optional_int(
            _get(grammar, obj, "sequence_number", "sequenceNumber"), "sequence_number", "media"
        ),
        track=_optional_str(media.get("track"), "track", "media"),
    )


def _start(grammar: Grammar, obj: dict[str, Any], sample_rate: int) -> Start:
    start = _section(grammar, obj, "start")
    sid = _get(grammar, start, "stream_sid", "streamSid")
    if sid is None:  # some samples only carry it at the top level
        sid = _get(grammar, obj, "stream_sid", "streamSid")
    stream_sid = _optional_str(sid, "stream_sid", "start")
    if not stream_sid:
        raise FrameError("no stream_sid", event="start")
    params = _get(grammar, start, "custom_parameters", "customParameters")
    declared = _get(grammar, start, "media_format", "mediaFormat")
    return Start(
        stream_sid=stream_sid,
        call_sid=_str_or_empty(_get(grammar, start, "call_sid", "callSid"), "call_sid"),
        account_sid=_str_or_empty(_get(grammar, start, "account_sid", "accountSid"), "account_sid"),
        from_=_str_or_empty(start.get("from"), "from"),
        to=_str_or_empty(start.get("to"), "to"),
        custom_parameters=_custom_parameters(params),
        sample_rate=sample_rate,
        encoding=grammar.encoding,
        # Informational only and often odd: anything not an object is dropped.
        media_format=_stringify_values(declared) if type(declared) is dict else {},
    )


def _dtmf(grammar: Grammar, obj: dict[str, Any]) -> Dtmf:
    dtmf = _section(grammar, obj, "dtmf")
    digit = _required_str(dtmf, "digit", "dtmf")
    if not digit:
        raise FrameError("empty digit", event="dtmf")
    return Dtmf(
        digit=digit,
        duration=_optional_int(dtmf.get("duration"), "duration", "dtmf"),
        track=_optional_str(dtmf.get("track"), "track", "dtmf"),
    )


def _stop(obj: dict[str, Any]) -> Stop:
    stop = obj.get("stop")
    if stop is None:
        return Stop(reason=None)
    if type(stop) is str:  # a bare reason instead of an object
        return Stop(reason=stop or None)
    if type(stop) is not dict:
        raise FrameError("stop is not an object", event="stop")
    return Stop(reason=_optional_str(stop.get("reason"), "reason", "stop") or None)


# -- field helpers ----------------------------------------------------------


def _get(grammar: Grammar, obj: dict[str, Any], snake: str, camel: str) -> Any:
    """The value under either spelling, the dialect's own first; None if absent."""
    first, second = (camel, snake) if grammar.camel_first else (snake, camel)
    value = obj.get(first)
    return obj.get(second) if value is None else value


def _section(grammar: Grammar, obj: dict[str, Any], event: str) -> dict[str, Any]:
    section = obj.get(event)
    if type(section) is not dict:
        raise FrameError(f"no {event} object", event=event)
    return section


def _optional_int(value: Any, name: str, event: str) -> int | None:
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        if -_INT64_LIMIT <= value < _INT64_LIMIT:
            return int(value)
    elif kind is str:
        if len(value) < 19 and value.isascii() and value.isdigit():
            return int(value)  # the common spelling: "1100"
        text = value.strip()
        if not text:
            return None
        digits = text[1:] if text[0] in "+-" else text
        if len(digits) <= _MAX_DIGITS and digits.isascii() and digits.isdigit():
            number = int(text)
            if -_INT64_LIMIT <= number < _INT64_LIMIT:
                return number
    elif kind is float and value.is_integer() and abs(value) < _INT64_LIMIT:
        return int(value)
    raise FrameError(f"{name} is not an integer", event=event)


def _optional_str(value: Any, name: str, event: str) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) in (int, float):  # a version or SID sent as a JSON number
        return str(value)
    raise FrameError(f"{name} is not a string", event=event)


def _required_str(obj: dict[str, Any], name: str, event: str) -> str:
    value = _optional_str(obj.get(name), name, event)
    if value is None:
        raise FrameError(f"no {name}", event=event)
    return value


def _str_or_empty(value: Any, name: str) -> str:
    return _optional_str(value, name, "start") or ""


def _param_value(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is str:
        return value
    # Numbers, booleans and nested structures keep their JSON spelling.
    return _json_encode(value).decode()


def _custom_parameters(value: Any) -> Mapping[str, str]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise FrameError("custom_parameters is not an object", event="start")
    return {key: _param_value(item) for key, item in value.items()}


def _stringify_values(value: dict[str, Any]) -> Mapping[str, str]:
    return {key: _param_value(item) for key, item in value.items()}


# -- building -----------------------------------------------------------------


_FRAMES = OutboundFrames("stream_sid")


def media_frame(stream_sid: str, pcm: bytes) -> str:
    """An outbound ``media`` frame carrying ``pcm`` (PCM16LE at the call's rate).

    Alignment to ``OUTBOUND_ALIGN`` is the caller's job (``server.playout.speaker`` does
    it); whole samples and the size bound are checked here (``ValueError``).
    """
    size = len(pcm)
    if size & 1 or size > MAX_PAYLOAD_BYTES:
        raise ValueError(f"media payload of {size} bytes is not PCM16 within the size bound")
    return _FRAMES.media(stream_sid, pcm)


def mark_frame(stream_sid: str, name: str) -> str:
    """An outbound ``mark``: Exotel echoes it once the audio before it played."""
    return _FRAMES.mark(stream_sid, name)


def clear_frame(stream_sid: str) -> str:
    """An outbound ``clear``: drop audio queued at Exotel (no ack is sent back)."""
    return _FRAMES.clear(stream_sid)

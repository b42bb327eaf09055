"""Deepgram live-transcription wire format (sans-IO).

- :func:`listen_url` builds ``/v1/listen?…`` from a :class:`DeepgramConfig`.
- :func:`parse_message` turns one server text frame into a typed message:
  :class:`Results`, :class:`SpeechStartedMsg`, :class:`UtteranceEndMsg`,
  :class:`Metadata`, :class:`ErrorMsg` or :class:`UnknownMessage` (log and continue).
  ``Results`` may come without ``type`` and without ``speech_final`` in some
  samples; both are accepted.
- :func:`close_error` / :func:`handshake_error` translate a close frame or a
  refused upgrade into :mod:`providers.exceptions` types, with Deepgram's code
  (``NET-0001``, ``DATA-0000``…) pulled out of the reason text; a 429 is
  ``RateLimited`` and a 5xx ``VendorUnavailable``, with ``retry-after``.
- ``KEEPALIVE``, ``FINALIZE``, ``CLOSE_STREAM`` are the client's control frames.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from providers.config import DeepgramConfig
from providers.exceptions import (
    AuthError,
    HandshakeRejected,
    RateLimited,
    StreamClosed,
    VendorError,
    VendorUnavailable,
)
from providers.wire import json_object, retry_after

VENDOR = "deepgram"
KEEPALIVE = '{"type": "KeepAlive"}'
FINALIZE = '{"type": "Finalize"}'
CLOSE_STREAM = '{"type": "CloseStream"}'
NORMAL_CLOSE = 1000

_CODE = re.compile(r"\b(NET|DATA|SLOW|INTERNAL)-?(\d{4})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Results:
    """One transcript piece for audio ``[start, start + duration)`` of this
    connection's stream. ``last_word_end`` is -1.0 when there are no words."""

    start: float
    duration: float
    is_final: bool
    speech_final: bool
    from_finalize: bool
    transcript: str
    confidence: float
    last_word_end: float

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class SpeechStartedMsg:
    timestamp: float


@dataclass(frozen=True)
class UtteranceEndMsg:
    last_word_end: float


@dataclass(frozen=True)
class Metadata:
    request_id: str
    duration: float


@dataclass(frozen=True)
class ErrorMsg:
    code: str | None
    message: str


@dataclass(frozen=True)
class UnknownMessage:
    type: str
    raw: Mapping[str, Any]


ServerMessage = Results | SpeechStartedMsg | UtteranceEndMsg | Metadata | ErrorMsg | UnknownMessage


def _flag(value: bool) -> str:
    return "true" if value else "false"


def listen_url(config: DeepgramConfig) -> str:
    """The full ``ws(s)://…/v1/listen?…`` URL for ``config``."""
    params: list[tuple[str, str]] = [
        ("model", config.model),
        ("language", config.language),
        ("encoding", config.encoding),
        ("sample_rate", str(config.sample_rate)),
        ("channels", "1"),
        ("interim_results", _flag(config.interim_results)),
        ("endpointing", str(config.endpointing_ms) if config.endpointing_ms > 0 else "false"),
        ("vad_events", _flag(config.vad_events)),
        ("smart_format", _flag(config.smart_format)),
    ]
    if config.interim_results and config.utterance_end_ms > 0:
        # utterance_end_ms requires interim_results.
        params.append(("utterance_end_ms", str(config.utterance_end_ms)))
    term = "keyterm" if config.model.startswith("nova-3") else "keywords"
    params.extend((term, word) for word in config.keyterms)
    if config.tag:
        params.append(("tag", config.tag))
    return f"{config.url.rstrip('/')}/v1/listen?{urlencode(params)}"


def _number(value: object, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return float(value)
    except ValueError:
        return default


def parse_message(text: str | bytes) -> ServerMessage:
    """Parse one server frame; ProtocolError if it is not a JSON object."""
    data = json_object(text, vendor=VENDOR)
    kind = str(data.get("type") or "")
    if kind == "Results" or (not kind and isinstance(data.get("channel"), Mapping)):
        return _results(data)
    if kind == "SpeechStarted":
        return SpeechStartedMsg(_number(data.get("timestamp")))
    if kind == "UtteranceEnd":
        return UtteranceEndMsg(_number(data.get("last_word_end")))
    if kind == "Metadata":
        return Metadata(str(data.get("request_id") or ""), _number(data.get("duration")))
    if kind == "Error" or "err_code" in data:
        code = data.get("err_code") or data.get("variant")
        message = data.get("err_msg") or data.get("description") or data.get("message") or ""
        return ErrorMsg(str(code) if code else None, str(message))
    return UnknownMessage(kind, data)


def _results(data: Mapping[str, Any]) -> Results:
    channel = data.get("channel")
    alternatives: Sequence[Any] = channel.get("alternatives") or [] if isinstance(
        channel, Mapping) else []
    best = alternatives[0] if alternatives and isinstance(alternatives[0], Mapping) else {}
    words = best.get("words") or []
    last_word_end = -1.0
    if words and isinstance(words[-1], Mapping):
        last_word_end = _number(words[-1].get("end"), -1.0)
    return Results(
        start=_number(data.get("start")),
        duration=_number(data.get("duration")),
        is_final=bool(data.get("is_final", False)),
        speech_final=bool(data.get("speech_final", False)),
        from_finalize=bool(data.get("from_finalize", False)),
        transcript=str(best.get("transcript") or ""),
        confidence=_number(best.get("confidence")),
        last_word_end=last_word_end,
    )


def vendor_code(text: str | None) -> str | None:
    """``NET-0001`` from "…NET-0001…" or "…dpgr.am/net0001"; None if absent."""
    if not text:
        return None
    match = _CODE.search(text)
    return f"{match.group(1).upper()}-{match.group(2)}" if match else None


def close_error(code: int, reason: str | None) -> StreamClosed | None:
    """The exception for a close we did not ask for; None for a normal close."""
    if code == NORMAL_CLOSE:
        return None
    return StreamClosed(
        f"deepgram closed the stream: {code} {reason or ''}".rstrip(),
        vendor=VENDOR, status=code, code=vendor_code(reason), detail=reason,
    )


def is_recoverable(error: StreamClosed) -> bool:
    """Worth a reconnect within the call: network/internal failures (1011, 1006,
    1001, 1012–1014), not bad audio (1008 DATA-*) or policy closes."""
    return error.status in (1001, 1006, 1011, 1012, 1013, 1014)


def handshake_error(
    status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes | None
) -> VendorError:
    """Translate a refused upgrade. Deepgram puts its message in the ``dg-error``
    header and a JSON body ``{err_code, err_msg, request_id}``. 429 (over the
    concurrency limit) is :class:`RateLimited` and a 5xx :class:`VendorUnavailable`,
    both with the ``retry-after`` header when there is one: worth another attempt.
    401/403 are :class:`AuthError`, any other status :class:`HandshakeRejected`."""
    header = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in headers}
    code: str | None = None
    message = header.get("dg-error", "")
    request_id = header.get("dg-request-id")
    if body:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            code = str(data["err_code"]) if data.get("err_code") else None
            message = str(data.get("err_msg") or message)
            request_id = str(data.get("request_id") or request_id or "") or None
    text = f"deepgram refused the connection: HTTP {status} {code or ''} {message}".strip()
    detail = message or None
    if status == 429:
        return RateLimited(text, vendor=VENDOR, retry_after=retry_after(header), status=status,
                           code=code, detail=detail, request_id=request_id)
    if 500 <= status <= 599:
        return VendorUnavailable(text, vendor=VENDOR, status=status, code=code, detail=detail,
                                 retry_after=retry_after(header), request_id=request_id)
    cls = AuthError if status in (401, 403) else HandshakeRejected
    return cls(text, vendor=VENDOR, status=status, code=code, detail=detail,
               request_id=request_id)

"""ElevenLabs text-to-speech wire format (sans-IO): URLs, client messages, server
frames and audio decoding (errors: :mod:`providers.tts.elevenlabs_errors`). No
I/O, no clock.

Two WebSocket endpoints share one message family:

- ``/v1/text-to-speech/{voice}/stream-input`` — one utterance stream per
  connection. First message ``{"text": " ", voice_settings, generation_config}``,
  then text pieces ending with a space, ``flush`` to generate what is buffered,
  ``{"text": ""}`` (EOS) to finish; the server answers ``{"audio": B64, "isFinal":
  null|false, "alignment"…}`` frames and, after EOS, ``{"isFinal": true}``.
  A single space keeps an idle stream alive.
- ``/v1/text-to-speech/{voice}/multi-stream-input`` — the same, with a
  ``context_id`` on every client message and ``contextId`` on every server frame;
  ``close_context`` ends one context (barge-in) without closing the socket, an
  empty text ``{"text": "", "context_id"}`` keeps a context alive (it is *not*
  EOS here), ``close_socket`` ends everything. ``{"isFinal": true,
  "contextId": …}`` comes once a context's audio is out: reportedly either
  after each ``flush`` (the context stays open) or only when the context ends
  (``close_context`` / ``close_socket``, after its remaining audio) —
  :mod:`providers.tts.elevenlabs` handles both. A context is closed once its
  audio is out, or at once on barge-in — a close right after a flush may lose
  the flushed audio. Generation is sequential per socket.

Variants seen in public samples and parsed here: ``isFinal``/``is_final``,
``contextId``/``context_id``, alignment durations under ``charDurationsMs`` or
``charsDurationsMs``. Errors arrive as ``{"message", "error", "code": 1008}`` and
then a close frame (usually 1008); :mod:`providers.tts.elevenlabs_errors` turns
the pair, and refused handshakes or requests, into exceptions.

Playout time is derived from byte counts (:func:`audio_seconds`), never from
alignment, which is per generation chunk and approximate.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlencode

import dsp
from providers.config import ElevenLabsConfig
from providers.exceptions import (
    ProtocolError,
)
from providers.wire import json_object

VENDOR: Final = "elevenlabs"
NORMAL_CLOSE: Final = 1000
POLICY_CLOSE: Final = 1008

#: Output formats whose audio we can hand on as PCM16 (rate, sample encoding).
FORMATS: Final[Mapping[str, tuple[int, Literal["pcm", "ulaw", "alaw"]]]] = {
    "pcm_8000": (8000, "pcm"),
    "pcm_16000": (16000, "pcm"),
    "pcm_22050": (22050, "pcm"),
    "pcm_24000": (24000, "pcm"),
    "pcm_44100": (44100, "pcm"),
    "ulaw_8000": (8000, "ulaw"),
    "alaw_8000": (8000, "alaw"),
}

@dataclass(frozen=True)
class VoiceSettings:
    """``voice_settings`` of the first message. Speed 0.7–1.2 (1.0 = natural)."""

    stability: float = 0.5
    similarity_boost: float = 0.75
    style: float = 0.0
    use_speaker_boost: bool = True
    speed: float = 1.0

    def as_json(self) -> dict[str, Any]:
        return {
            "stability": self.stability, "similarity_boost": self.similarity_boost,
            "style": self.style, "use_speaker_boost": self.use_speaker_boost,
            "speed": self.speed,
        }


@dataclass(frozen=True)
class StreamOptions:
    """How our client uses the WebSocket API (the vendor-independent parts live in
    :class:`~providers.config.ElevenLabsConfig`).

    ``multi_context``: use ``multi-stream-input`` (one context per reply, barge-in
    closes the context and keeps the socket) instead of ``stream-input`` (one
    connection per reply). ``flush_each_chunk``: flush after every text chunk
    :meth:`speak` receives — the chunks are whole sentences from the splitter,
    and ElevenLabs' own guidance for voice agents is to flush at sentence ends;
    without it a short first sentence waits for ``chunk_length_schedule[0]``
    characters. ``inactivity_timeout``: the server's idle close (s, 20 default,
    180 max); a keep-alive goes out after ``keepalive_interval`` s without a send.
    """

    voice_settings: VoiceSettings = field(default_factory=VoiceSettings)
    chunk_length_schedule: tuple[int, ...] = (50, 90, 120, 150)
    multi_context: bool = True
    flush_each_chunk: bool = True
    inactivity_timeout: int = 20
    keepalive_interval: float = 15.0
    max_reconnects: int = 3

    def __post_init__(self) -> None:
        if not all(50 <= n <= 500 for n in self.chunk_length_schedule):
            raise ValueError("chunk_length_schedule items must be within 50..500")
        if not 1 <= self.inactivity_timeout <= 180:
            raise ValueError("inactivity_timeout must be within 1..180 s")
        if not 0 < self.keepalive_interval < self.inactivity_timeout:
            raise ValueError("keepalive_interval must be below inactivity_timeout")


def audio_format(output_format: str) -> tuple[int, Literal["pcm", "ulaw", "alaw"]]:
    """``(sample_rate, encoding)`` of an output format we can decode to PCM16."""
    try:
        return FORMATS[output_format]
    except KeyError:
        raise ValueError(
            f"unsupported output_format {output_format!r}; use one of {', '.join(FORMATS)}"
        ) from None


def bytes_per_second(output_format: str) -> int:
    rate, encoding = audio_format(output_format)
    return rate * (2 if encoding == "pcm" else 1)


def audio_seconds(byte_count: int, output_format: str) -> float:
    """Playout time of ``byte_count`` bytes of vendor audio in ``output_format``."""
    return byte_count / bytes_per_second(output_format)


class AudioDecoder:
    """Turn vendor audio frames into PCM16LE bytes, one decoder per reply.

    PCM frames need not end on a sample boundary, so an odd trailing byte is held
    for the next frame; μ-law/A-law bytes are expanded to PCM16 with ``dsp``."""

    def __init__(self, output_format: str) -> None:
        self.sample_rate, self._encoding = audio_format(output_format)
        self._carry = b""
        self.vendor_bytes = 0

    def decode(self, audio: bytes) -> bytes:
        self.vendor_bytes += len(audio)
        if self._encoding == "ulaw":
            return dsp.ulaw_decode(audio).tobytes()
        if self._encoding == "alaw":
            return dsp.alaw_decode(audio).tobytes()
        data = self._carry + audio
        cut = len(data) - len(data) % 2
        self._carry = data[cut:]
        return data[:cut]


# -- URLs -------------------------------------------------------------------------


def stream_url(config: ElevenLabsConfig, options: StreamOptions) -> str:
    """The ``ws(s)://…/stream-input`` or ``…/multi-stream-input`` URL."""
    audio_format(config.output_format)
    endpoint = "multi-stream-input" if options.multi_context else "stream-input"
    query = urlencode([
        ("model_id", config.model_id),
        ("output_format", config.output_format),
        ("inactivity_timeout", str(options.inactivity_timeout)),
    ])
    return (f"{config.ws_url.rstrip('/')}/v1/text-to-speech/{config.voice_id}/{endpoint}"
            f"?{query}")


def http_stream_url(config: ElevenLabsConfig) -> str:
    """``https://…/v1/text-to-speech/{voice}/stream?output_format=…`` (HTTP fallback)."""
    audio_format(config.output_format)
    query = urlencode([("output_format", config.output_format)])
    return f"{config.url.rstrip('/')}/v1/text-to-speech/{config.voice_id}/stream?{query}"


def http_body(config: ElevenLabsConfig, options: StreamOptions, text: str) -> dict[str, Any]:
    return {"text": text, "model_id": config.model_id,
            "voice_settings": options.voice_settings.as_json()}


# -- client messages ----------------------------------------------------------------


def _dump(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def init_message(options: StreamOptions, context_id: str | None = None) -> str:
    """The mandatory first message: a single space plus the settings."""
    message: dict[str, Any] = {
        "text": " ",
        "voice_settings": options.voice_settings.as_json(),
        "generation_config": {"chunk_length_schedule": list(options.chunk_length_schedule)},
    }
    if context_id is not None:
        message["context_id"] = context_id
    return _dump(message)


def text_piece(text: str) -> str:
    """Normalise one chunk of reply text: inner whitespace collapsed, exactly one
    trailing space (the API wants every piece to end with one). Blank → ``""``."""
    words = text.split()
    return " ".join(words) + " " if words else ""


def text_message(
    piece: str, *, flush: bool = False, context_id: str | None = None,
    voice_settings: VoiceSettings | None = None,
) -> str:
    """A text piece (already normalised by :func:`text_piece`, never empty: an
    empty text is EOS on ``stream-input``)."""
    if not piece:
        raise ValueError("an empty text piece would end the stream; use eos_message()")
    message: dict[str, Any] = {"text": piece}
    if context_id is not None:
        message["context_id"] = context_id
    if voice_settings is not None:
        message["voice_settings"] = voice_settings.as_json()
    if flush:
        message["flush"] = True
    return _dump(message)


def flush_message(context_id: str | None = None) -> str:
    """Generate what is buffered now. On ``stream-input`` a blank text cannot be
    used (``""`` is EOS), so the flush carries a single space."""
    if context_id is None:
        return _dump({"text": " ", "flush": True})
    return _dump({"context_id": context_id, "flush": True})


def eos_message() -> str:
    """``stream-input`` only: finish the stream (the server flushes, sends
    ``isFinal`` and closes)."""
    return _dump({"text": ""})


def keepalive_message(context_id: str | None = None) -> str:
    """Reset the idle timer without speaking: a space on ``stream-input``, an
    empty text for a context on ``multi-stream-input``."""
    if context_id is None:
        return _dump({"text": " "})
    return _dump({"text": "", "context_id": context_id})


def close_context_message(context_id: str) -> str:
    return _dump({"context_id": context_id, "close_context": True})


def close_socket_message() -> str:
    return _dump({"close_socket": True})


# -- server frames ------------------------------------------------------------------


@dataclass(frozen=True)
class Alignment:
    """Character timing of one audio frame, ms relative to that frame."""

    chars: tuple[str, ...]
    start_ms: tuple[int, ...]
    duration_ms: tuple[int, ...]


@dataclass(frozen=True)
class AudioFrame:
    """Raw vendor audio (still in the output format) for ``context_id``."""

    audio: bytes
    context_id: str | None
    alignment: Alignment | None = None
    normalized_alignment: Alignment | None = None


@dataclass(frozen=True)
class FinalFrame:
    """The stream (or the context) has produced its last audio."""

    context_id: str | None


@dataclass(frozen=True)
class ErrorFrame:
    """``{"message", "error", "code"}``: the close frame that follows says more."""

    message: str
    error: str | None
    code: int | None


@dataclass(frozen=True)
class OtherFrame:
    """A frame we do not use (e.g. a bare alignment); ignored."""

    raw: Mapping[str, Any]


ServerFrame = AudioFrame | FinalFrame | ErrorFrame | OtherFrame


def _ints(value: object) -> tuple[int, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(int(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool))


def _alignment(value: object) -> Alignment | None:
    if not isinstance(value, Mapping):
        return None
    chars = value.get("chars")
    durations = value.get("charDurationsMs", value.get("charsDurationsMs"))
    return Alignment(
        chars=tuple(str(c) for c in chars) if isinstance(chars, Sequence) else (),
        start_ms=_ints(value.get("charStartTimesMs")),
        duration_ms=_ints(durations),
    )


def parse_frame(text: str | bytes) -> ServerFrame:
    """One server text frame → a typed frame. ProtocolError on bad JSON or base64."""
    data = json_object(text, vendor=VENDOR)
    context = data.get("contextId", data.get("context_id"))
    context_id = str(context) if context is not None else None
    is_final = data.get("isFinal", data.get("is_final"))
    audio = data.get("audio")
    if isinstance(audio, str) and audio:
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError("audio is not base64", vendor=VENDOR) from exc
        return AudioFrame(raw, context_id, _alignment(data.get("alignment")),
                          _alignment(data.get("normalizedAlignment")))
    if is_final is True:
        return FinalFrame(context_id)
    if "error" in data or ("message" in data and "code" in data):
        code = data.get("code")
        error = data.get("error")
        return ErrorFrame(
            message=str(data.get("message") or ""),
            error=str(error) if error else None,
            code=int(code) if isinstance(code, int) and not isinstance(code, bool) else None,
        )
    return OtherFrame(data)

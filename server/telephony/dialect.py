"""The telephony dialects behind one small interface, looked up by name.

A ``Dialect`` is everything the call logic and the speaker need to know about
the peer's wire format: how to read a frame into ``server.telephony.events``, how to build
the three outbound frames, and three facts that shape pacing:

* ``echoes_marks_on_clear`` — Twilio sends back every pending mark when we
  ``clear``; Exotel documents no ack, so pending marks are simply forgotten;
* ``outbound_align`` — outbound PCM16 payload sizes must be a multiple of this
  (Exotel 320 bytes; Twilio any whole sample);
* ``max_payload_bytes`` — the largest PCM16 payload of one outbound frame.

``sample_rates`` lists the rates the dialect can carry (Twilio: 8 kHz only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol, final

from server.telephony import exotel, twilio
from server.telephony.events import StreamEvent

__all__ = ["DIALECTS", "EXOTEL", "TWILIO", "Dialect", "get_dialect"]


class Dialect(Protocol):
    """The wire-format interface both dialects satisfy."""

    @property
    def name(self) -> str: ...

    @property
    def echoes_marks_on_clear(self) -> bool: ...

    @property
    def outbound_align(self) -> int: ...

    @property
    def max_payload_bytes(self) -> int: ...

    @property
    def sample_rates(self) -> tuple[int, ...]: ...

    def parse_frame(self, text: str | bytes, *, sample_rate: int = 8000) -> StreamEvent: ...

    def media_frame(self, stream_sid: str, pcm: bytes) -> str: ...

    def mark_frame(self, stream_sid: str, name: str) -> str: ...

    def clear_frame(self, stream_sid: str) -> str: ...


@final
class _Exotel:
    name: Final = "exotel"
    echoes_marks_on_clear: Final = False
    outbound_align: Final = exotel.OUTBOUND_ALIGN
    max_payload_bytes: Final = exotel.MAX_PAYLOAD_BYTES
    sample_rates: Final = (8000, 16000, 24000)

    def parse_frame(self, text: str | bytes, *, sample_rate: int = 8000) -> StreamEvent:
        return exotel.parse_frame(text, sample_rate=sample_rate)

    def media_frame(self, stream_sid: str, pcm: bytes) -> str:
        return exotel.media_frame(stream_sid, pcm)

    def mark_frame(self, stream_sid: str, name: str) -> str:
        return exotel.mark_frame(stream_sid, name)

    def clear_frame(self, stream_sid: str) -> str:
        return exotel.clear_frame(stream_sid)

    def __repr__(self) -> str:
        return "<Dialect exotel>"


@final
class _Twilio:
    name: Final = "twilio"
    echoes_marks_on_clear: Final = True
    outbound_align: Final = twilio.OUTBOUND_ALIGN
    max_payload_bytes: Final = twilio.MAX_PAYLOAD_BYTES
    sample_rates: Final = (twilio.SAMPLE_RATE,)

    def parse_frame(self, text: str | bytes, *, sample_rate: int = 8000) -> StreamEvent:
        return twilio.parse_frame(text, sample_rate=sample_rate)

    def media_frame(self, stream_sid: str, pcm: bytes) -> str:
        return twilio.media_frame(stream_sid, pcm)

    def mark_frame(self, stream_sid: str, name: str) -> str:
        return twilio.mark_frame(stream_sid, name)

    def clear_frame(self, stream_sid: str) -> str:
        return twilio.clear_frame(stream_sid)

    def __repr__(self) -> str:
        return "<Dialect twilio>"


EXOTEL: Final[Dialect] = _Exotel()
TWILIO: Final[Dialect] = _Twilio()
DIALECTS: Final[Mapping[str, Dialect]] = {EXOTEL.name: EXOTEL, TWILIO.name: TWILIO}


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name`` (``"exotel"`` or ``"twilio"``); ``KeyError``
    naming the known ones otherwise."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise KeyError(f"unknown dialect {name!r}; known: {', '.join(DIALECTS)}") from None

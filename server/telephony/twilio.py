"""Twilio Media Streams frames, sans-IO: the second dialect.

Same grammar as Exotel (``server.telephony.exotel.parse_frame_as`` reads both), with these
differences:

* camelCase keys (``streamSid``, ``sequenceNumber``, ``customParameters``,
  ``mediaFormat``); snake_case is still accepted, camelCase wins if both appear;
* audio is G.711 μ-law at 8 kHz both ways: inbound payloads are decoded to PCM16LE
  (``dsp.g711.ulaw_decode``) so ``Media.pcm`` means the same in both dialects, and
  ``media_frame`` takes PCM16LE at 8 kHz and encodes it (``ulaw_encode``);
  any payload length is valid (one byte is one sample);
* ``media.track`` / ``dtmf.track`` are kept in ``Media.track`` / ``Dtmf.track``
  (a bidirectional stream only sends ``inbound``);
* ``stop`` carries no reason: ``Stop.reason`` is ``None``;
* ``start`` has no ``from``/``to`` (pass them as ``<Parameter>`` custom
  parameters): ``Start.from_``/``Start.to`` are ``""``;
* on ``clear`` Twilio echoes every pending mark as a ``mark`` event; those are
  indistinguishable on the wire from "played" marks, so the speaker forgets the
  names when it clears and ignores their echo.

The ``sample_rate`` argument of ``parse_frame`` exists for the shared dialect
interface; Twilio streams are always 8 kHz and callers pass 8000.
"""

from __future__ import annotations

from dsp.g711 import ulaw_decode, ulaw_encode
from server.telephony.events import StreamEvent
from server.telephony.exotel import Grammar, parse_frame_as
from server.telephony.outbound import OutboundFrames

__all__ = [
    "ENCODING",
    "MAX_PAYLOAD_BYTES",
    "OUTBOUND_ALIGN",
    "SAMPLE_RATE",
    "clear_frame",
    "mark_frame",
    "media_frame",
    "parse_frame",
]

SAMPLE_RATE = 8000
#: Twilio accepts any outbound size; the speaker still sends whole PCM16 samples.
OUTBOUND_ALIGN = 2
#: Upper bound on the PCM16 bytes of one outbound frame (μ-law halves it on the wire).
MAX_PAYLOAD_BYTES = 100_000
ENCODING = "mulaw"



def _mulaw_to_pcm(raw: bytes) -> bytes:
    return ulaw_decode(raw).tobytes()


TWILIO_GRAMMAR = Grammar(name="twilio", encoding=ENCODING, camel_first=True, to_pcm=_mulaw_to_pcm)


def parse_frame(text: str | bytes, *, sample_rate: int = SAMPLE_RATE) -> StreamEvent:
    """Read one Twilio frame; ``Media.pcm`` is PCM16LE at 8 kHz.

    Raises ``FrameError`` (or its ``BadPayload``) and nothing else.
    """
    return parse_frame_as(TWILIO_GRAMMAR, text, sample_rate)


_FRAMES = OutboundFrames("streamSid")


def media_frame(stream_sid: str, pcm: bytes) -> str:
    """An outbound ``media`` frame: ``pcm`` (PCM16LE, 8 kHz) sent as μ-law."""
    size = len(pcm)
    if size & 1 or size > MAX_PAYLOAD_BYTES:
        raise ValueError(f"media payload of {size} bytes is not PCM16 within the size bound")
    return _FRAMES.media(stream_sid, ulaw_encode(pcm).tobytes())


def mark_frame(stream_sid: str, name: str) -> str:
    """An outbound ``mark``: echoed when played, and also when cleared."""
    return _FRAMES.mark(stream_sid, name)


def clear_frame(stream_sid: str) -> str:
    """An outbound ``clear``: Twilio drops queued audio and echoes pending marks."""
    return _FRAMES.clear(stream_sid)

"""Typed events of a telephony media stream, shared by every dialect.

The wire parsers (``server.telephony.exotel``, ``server.telephony.twilio``) turn one text frame into
exactly one of these small frozen records, so the call logic never sees a
dialect's spelling (snake_case vs camelCase, numbers as strings, μ-law vs PCM).

Meaning of the fields, whatever the dialect:

* ``Media.pcm`` is always signed 16-bit little-endian mono PCM at the call's
  sample rate: Exotel's payload as is, Twilio's μ-law already decoded.
* Optional counters (``chunk``, ``timestamp``, ``sequence_number``,
  ``duration``) are ``None`` when the frame did not carry them; a frame that
  carries them spelled as strings (``"12"``) gives ints.
* Absent identifiers in ``Start`` (a flow that strips ``from``/``to``, Twilio,
  which never sends them) are ``""``, never ``None``: they are for logs and
  the dialogue's lead context, and an empty string needs no special case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "Connected",
    "Dtmf",
    "Mark",
    "Media",
    "Start",
    "Stop",
    "StreamEvent",
    "Unknown",
]

_EMPTY: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class Connected:
    """The peer opened the stream. ``protocol``/``version`` only if it said so."""

    protocol: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Start:
    """The stream's metadata; arrives once, before any media.

    ``sample_rate`` is the rate the audio really has: for Exotel the one chosen by
    the URL query (the parser's ``sample_rate`` argument), never the frame's own
    ``media_format``, which real traffic fills inconsistently. ``encoding`` is the
    codec on the wire as the dialect defines it (``"pcm16"`` for Exotel,
    ``"mulaw"`` for Twilio); ``media_format`` keeps what the peer declared,
    stringified, for logs only. ``custom_parameters`` values are strings (a bare
    key gives ``""``).
    """

    stream_sid: str
    call_sid: str
    account_sid: str
    from_: str
    to: str
    custom_parameters: Mapping[str, str]
    sample_rate: int
    encoding: str
    media_format: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Media:
    """A piece of the caller's audio as PCM16LE at the call's rate (any length).

    ``track`` is Twilio's ``inbound``/``outbound`` label; Exotel has none (``None``).
    """

    pcm: bytes
    chunk: int | None = None
    timestamp: int | None = None
    sequence_number: int | None = None
    track: str | None = None


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A key press. ``digit`` is one of ``0-9*#`` in practice; kept as sent."""

    digit: str
    duration: int | None = None
    track: str | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """The peer played everything sent before the mark called ``name``.

    Twilio also sends this for every pending mark when we ``clear``; the speaker
    tells the two apart (see ``server.playout.speaker``).
    """

    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The peer ends the stream.

    ``reason`` is Exotel's string as sent: ``"callended"`` (the caller hung up),
    ``"stopped"`` (the flow stopped the stream), or older ``"caller_hangup"``.
    ``None`` means no reason was given, which is always the case for Twilio.
    """

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Unknown:
    """A well-formed frame with an event name we do not handle; ignore it.

    ``raw`` is the decoded JSON object, for a debug log line.
    """

    event: str
    raw: Mapping[str, Any]


StreamEvent: TypeAlias = Connected | Start | Media | Dtmf | Mark | Stop | Unknown

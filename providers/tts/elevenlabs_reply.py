"""One ElevenLabs reply's text and its progress across attempts (no I/O, no clock).

A reply is spoken in one or more **attempts**. An attempt is a context on the
session socket (multi-stream-input) or a connection of its own (stream-input).
When the socket under an attempt is lost to a transient failure (a drop, an
in-band ``internal_error``), the reply goes on in a new attempt that re-sends
the text from the **piece being spoken when the fault hit**: the alignment of
the audio received tells which piece that was (the vendor's ``alignment.chars``
count the characters voiced so far). Earlier pieces are not repeated; the piece
in progress is repeated from its start (the caller may hear half a sentence
twice rather than lose its end). An attempt that got no audio re-sends all of
its pieces; one that got audio without alignment cannot say where to resume,
and the reply fails instead.

An attempt is **complete** when all of the reply's text went out and its last
``isFinal`` arrived: multi-stream-input sends one ``isFinal`` per ``flush``
(once the flushed audio is out), so the attempt counts flushes and finals;
stream-input sends one ``isFinal`` after EOS.

The items a reply's channel carries (:data:`ReplyItem`) come from its text
puller (:class:`TextPiece`, :class:`TextEnd`, :class:`TextFailed`), from the
vendor (``AudioFrame``, ``FinalFrame``) and from the socket (:class:`Lost`,
:class:`Failed`).
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

import trio
from trio_websocket import WebSocketConnection

from providers.exceptions import ProviderError
from providers.reconnect import Backoff
from providers.tts import elevenlabs_wire as wire


@dataclass(frozen=True)
class TextPiece:
    """A normalised piece of the reply's text (ends with one space)."""

    text: str


class TextEnd:
    """The reply's text iterator is exhausted."""


@dataclass(frozen=True)
class TextFailed:
    """The reply's text iterator raised ``error`` (re-raised in the caller's task)."""

    error: BaseException


@dataclass(frozen=True)
class Lost:
    """The socket under attempts made on ``token`` was lost to a transient
    ``error``; the session reconnects (multi) or the reply does (single)."""

    error: ProviderError
    token: int


@dataclass(frozen=True)
class Failed:
    """The reply cannot go on: ``error`` (the session failed, or a vendor error
    that no reconnect can fix)."""

    error: ProviderError


#: What a reply's channel carries, in arrival order.
ReplyItem = (wire.AudioFrame | wire.FinalFrame | TextPiece | TextEnd | TextFailed | Lost
             | Failed)


@dataclass
class Attempt:
    """One try at speaking the rest of a reply, from ``pieces[first_piece]``."""

    first_piece: int
    context: str | None = None  # multi: this attempt's context id
    token: int | None = None  # the socket epoch / connection it runs on, once it sent
    sent: int = 0  # pieces sent, from first_piece
    flushes: int = 0
    finals: int = 0
    ended: bool = False  # the final flush (multi) / EOS (single) went out
    text_at: float | None = None  # when its first text went out
    audio: bool = False
    aligned: int = 0  # characters the vendor's alignment has covered so far
    last_aligned_from: int | None = None  # where the last aligned frame's characters begin

    def heard(self, frame: wire.AudioFrame) -> None:
        """Account one audio frame of this attempt."""
        self.audio = True
        alignment = frame.alignment or frame.normalized_alignment
        if alignment is not None and alignment.chars:
            self.last_aligned_from = self.aligned
            self.aligned += len(alignment.chars)

    def complete(self, *, multi: bool) -> bool:
        if not self.ended:
            return False
        return self.finals >= self.flushes if multi else self.finals >= 1


@dataclass
class ReplyText:
    """The reply's pieces so far, and whether the text is complete."""

    pieces: list[str] = field(default_factory=list)
    done: bool = False

    def resume_point(self, attempt: Attempt) -> int | None:
        """Where the next attempt starts: the piece in progress when ``attempt``
        was lost (see the module docstring); None when that cannot be known."""
        if not attempt.audio:
            return attempt.first_piece
        if attempt.last_aligned_from is None:
            return None
        sent = self.pieces[attempt.first_piece:attempt.first_piece + attempt.sent]
        starts = list(itertools.accumulate((len(piece) for piece in sent), initial=0))
        index = bisect.bisect_right(starts, attempt.last_aligned_from) - 1
        return attempt.first_piece + max(0, min(index, len(sent) - 1))


@dataclass
class ReplyRun:
    """One ``speak`` in progress: its channel, text, current attempt and, in
    single mode, the connection of that attempt and the outage it is in."""

    out: trio.MemorySendChannel[ReplyItem]
    reply: ReplyText = field(default_factory=ReplyText)
    attempt: Attempt | None = None
    tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    ws: WebSocketConnection | None = None  # single mode
    scope: trio.CancelScope | None = None  # single mode: the connection's task
    outage: Backoff | None = None  # single mode: reconnecting since
    restarts: int = 0
    first_text_at: float | None = None
    audio: bool = False
    closed: bool = False  # close_context sent for the current attempt

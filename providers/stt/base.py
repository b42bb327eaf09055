"""The speech-to-text interface every STT engine (Deepgram, local) implements.

A stream is opened per call by an ``open_*`` async context manager that owns its
background tasks. The caller pushes audio with :meth:`STTStream.send_audio` and
reads :data:`STTEvent` values from :meth:`STTStream.events`.

Times (``start``, ``end``, ``t``) are seconds of *call audio*: 0 is the first
sample the caller sent, whatever reconnects happened underneath.

Event meaning:

- :class:`Interim` — a guess for the words being spoken; later text replaces it.
- :class:`Final` — settled text for the audio ``[start, end)``. Never empty.
  ``speech_final`` marks the engine's endpoint; ``from_finalize`` marks the answer
  to :meth:`STTStream.finalize`.
- :class:`Endpoint` — the engine ended a segment or answered ``finalize()`` with
  no new words (an *empty* final carrying those flags); turn assembly needs it.
- :class:`SpeechDetected` — voice activity began at ``t`` (the engine's own VAD;
  named apart from :class:`dsp.SpeechStarted`, the local VAD's event).
- :class:`UtteranceEnd` — no words since ``t`` (the end of the last word) for the
  configured gap: a fall-back endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Interim:
    text: str


@dataclass(frozen=True)
class Final:
    text: str
    start: float
    end: float
    from_finalize: bool = False
    speech_final: bool = False


@dataclass(frozen=True)
class Endpoint:
    t: float
    from_finalize: bool = False


@dataclass(frozen=True)
class SpeechDetected:
    t: float


@dataclass(frozen=True)
class UtteranceEnd:
    t: float


STTEvent = Interim | Final | Endpoint | SpeechDetected | UtteranceEnd


class STTStream(Protocol):
    """An open recognition stream for one call."""

    async def send_audio(self, pcm: bytes) -> None:
        """Queue caller audio in the stream's encoding. Empty input is ignored."""

    async def finalize(self) -> None:
        """Ask for everything heard so far now (answered by a ``from_finalize`` final
        or :class:`Endpoint`). The local engines answer every call; Deepgram may
        not (nothing left to settle, or lost with a dropped connection), so a
        caller must not wait for an answer per call for ever."""

    def events(self) -> AsyncIterator[STTEvent]:
        """The events, in order. Ends after :meth:`aclose` has drained the stream."""

    async def aclose(self) -> None:
        """Flush, wait briefly for the last results, release everything. Idempotent."""

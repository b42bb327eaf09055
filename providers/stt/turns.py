"""Turn assembly from STT events (pure).

The caller's turn text is every non-empty final piece since the last turn, joined
with spaces, released at the first endpoint signal: a final with ``speech_final``
or ``from_finalize``, an :class:`Endpoint`, or an :class:`UtteranceEnd`. Signals
with nothing pending release nothing (Deepgram often sends ``UtteranceEnd`` right
after a ``speech_final`` that already ended the turn).
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.stt.base import Endpoint, Final, STTEvent, UtteranceEnd


@dataclass(frozen=True)
class Turn:
    """What the caller said in one turn, spanning call-audio ``[start, end)``."""

    text: str
    start: float
    end: float
    from_finalize: bool


class TurnAssembler:
    """Feed events in order; :meth:`feed` returns a :class:`Turn` when one ends."""

    def __init__(self) -> None:
        self._pieces: list[Final] = []

    @property
    def pending_text(self) -> str:
        return " ".join(piece.text for piece in self._pieces)

    def feed(self, event: STTEvent) -> Turn | None:
        if isinstance(event, Final):
            if event.text.strip():
                self._pieces.append(event)
            if event.speech_final or event.from_finalize:
                return self._release(from_finalize=event.from_finalize)
            return None
        if isinstance(event, Endpoint):
            return self._release(from_finalize=event.from_finalize)
        if isinstance(event, UtteranceEnd):
            return self._release(from_finalize=False)
        return None

    def _release(self, *, from_finalize: bool) -> Turn | None:
        if not self._pieces:
            return None
        pieces, self._pieces = self._pieces, []
        return Turn(
            text=" ".join(piece.text.strip() for piece in pieces),
            start=pieces[0].start,
            end=pieces[-1].end,
            from_finalize=from_finalize,
        )

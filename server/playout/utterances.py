"""What became of each utterance a ``Speaker`` played: the mark bookkeeping.

The pacing task in ``server.playout.speaker`` sends frames and marks; this module keeps
the record of each utterance and of the marks still awaited, and turns the
peer's mark echoes into ``Heard``. It does no I/O and reads no clock: the
speaker passes ``now`` in.

* An utterance's id names its end mark; with ``mark_each_chunk`` its frames get
  marks ``"<id>#<n>"``. Each mark is registered (``mark_sent``) with the number of
  the utterance's bytes that have played once it comes back.
* Marks are echoed in order, so a mark coming back (``on_mark``) settles every
  earlier pending mark too; the end mark makes its utterance ``played``.
* ``clear`` (barge-in) forgets the pending marks and turns every utterance not
  yet played into ``cleared``. Twilio echoes the forgotten marks on ``clear``:
  such an echo is counted as ignored and settles nothing. On a dialect that
  echoes them each is expected once and then forgotten; elsewhere (Exotel) a
  forgotten mark stays known, so any echo of it is ignored. A mark never sent
  counts as unknown.
* ``heard`` reports an utterance in ms: ``heard_ms`` is what the marks confirm,
  ``estimated_ms`` what the pacing model's play spans say had played by ``now``
  (or by the ``clear``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from server.playout.pacer import PlaySpan

__all__ = ["Heard", "Utterance", "UtteranceLedger", "UtteranceState"]

UtteranceState = Literal["queued", "sending", "sent", "played", "cleared"]
"""``queued``: nothing sent yet; ``sending``: some frames out, more to come;
``sent``: everything out, the end mark not back yet; ``played``: the end mark
came back; ``cleared``: ``clear()`` dropped it before its end mark came back."""


@dataclass(frozen=True, slots=True)
class Heard:
    """What became of one utterance. Durations are in ms, padding included.

    ``heard_ms`` is certain (confirmed by marks: the whole utterance when its end
    mark came back, frame by frame with ``mark_each_chunk``); ``estimated_ms`` is
    the pacing model's view of what played by now (or by the ``clear``).
    """

    utterance_id: str
    state: UtteranceState
    queued_ms: float
    sent_ms: float
    heard_ms: float
    estimated_ms: float


#: Spans whose ends meet within this are one (float rounding of a paced timeline).
_JOIN_S = 1e-9


@dataclass(slots=True, eq=False)
class Utterance:
    """One utterance's running record (sizes in bytes of PCM16LE, padding
    included); the speaker updates the queued/sent side, the ledger the rest."""

    id: str
    open: bool = True
    state: UtteranceState = "queued"
    queued_bytes: int = 0
    sent_bytes: int = 0
    heard_bytes: int = 0
    chunks: int = 0
    cleared_at: float | None = None
    spans: list[PlaySpan] = field(default_factory=list)

    def add_span(self, span: PlaySpan) -> None:
        """Record a sent frame's place on the peer's timeline. A frame that
        continues the last span (paced audio, the usual case) extends it, so an
        utterance keeps a few spans, not one per frame: a busy process held
        tens of thousands of them, and every one was walked by the cyclic GC's
        full collections (80–190 ms at 150 calls, ``bench load --pipeline``).
        ``PlaySpan.played_at`` sums the same over joined spans."""
        spans = self.spans
        if spans:
            last = spans[-1]
            if abs(last.start + last.duration - span.start) <= _JOIN_S:
                spans[-1] = PlaySpan(last.start, last.duration + span.duration)
                return
        spans.append(span)


class UtteranceLedger:
    """Every utterance of one speaker, the marks awaited, and the mark counters."""

    def __init__(self, bytes_per_second: int, *, echoes_marks_on_clear: bool) -> None:
        self._bytes_per_second = bytes_per_second
        self._echoes_marks_on_clear = echoes_marks_on_clear
        self._utterances: dict[str, Utterance] = {}
        self._pending: dict[str, tuple[Utterance, int]] = {}  # mark → (utterance, bytes)
        self._cleared_marks: set[str] = set()
        self._auto_ids = 0
        self.marks_sent = self.marks_played = self.marks_ignored = self.marks_unknown = 0

    @property
    def pending_marks(self) -> int:
        """Marks sent and neither echoed nor forgotten by a ``clear``."""
        return len(self._pending)

    def get(self, utterance_id: str) -> Utterance:
        """The utterance named ``utterance_id`` (``KeyError`` if unknown)."""
        return self._utterances[utterance_id]

    def new(self, utterance_id: str | None) -> Utterance:
        """Register a new utterance; ``None`` picks the next free ``"utt-<n>"``.

        Ids are unique per ledger and may not contain ``#`` (``ValueError``): that
        separates an utterance's id from its chunk numbers in mark names.
        """
        if utterance_id is None:
            while utterance_id is None or utterance_id in self._utterances:
                self._auto_ids += 1
                utterance_id = f"utt-{self._auto_ids}"
        elif utterance_id in self._utterances:
            raise ValueError(f"utterance id {utterance_id!r} was used already")
        elif "#" in utterance_id:
            raise ValueError(f"utterance id {utterance_id!r} contains '#'")
        utterance = Utterance(id=utterance_id)
        self._utterances[utterance_id] = utterance
        return utterance

    def mark_sent(self, utterance: Utterance, name: str, through: int) -> None:
        """Mark ``name`` is going out; once echoed, ``through`` bytes of the
        utterance have played. Call it before the send's await, so that a
        ``clear`` during that send forgets the mark."""
        self._pending[name] = (utterance, through)
        if name == utterance.id and utterance.state != "cleared":
            utterance.state = "sent"
        self.marks_sent += 1

    def on_mark(self, name: str) -> bool:
        """The peer echoed mark ``name``. True if that settled pending marks
        (False for the echo of a cleared mark or a mark never sent)."""
        if name not in self._pending:
            if name in self._cleared_marks:
                self.marks_ignored += 1
                if self._echoes_marks_on_clear:
                    self._cleared_marks.discard(name)  # echoed once, done
            else:
                self.marks_unknown += 1
            return False
        # Marks are echoed in order: this one settles every earlier one too.
        while self._pending:
            mark, (utterance, through) = next(iter(self._pending.items()))
            del self._pending[mark]
            self.marks_played += 1
            utterance.heard_bytes = max(utterance.heard_bytes, through)
            if mark == utterance.id:
                utterance.state = "played"
            if mark == name:
                break
        return True

    def clear(self, now: float) -> None:
        """Barge-in at ``now``: forget the pending marks; every utterance not
        yet played becomes ``cleared`` (and closed)."""
        self._cleared_marks.update(self._pending)
        self._pending.clear()
        for utterance in self._utterances.values():
            if utterance.state not in ("played", "cleared"):
                utterance.state = "cleared"
                utterance.open = False
                utterance.cleared_at = now

    def heard(self, utterance_id: str, now: float) -> Heard:
        """What became of an utterance by ``now`` (``KeyError`` if unknown)."""
        utterance = self._utterances[utterance_id]
        until = now if utterance.cleared_at is None else utterance.cleared_at
        played = utterance.state == "played"
        heard_bytes = utterance.queued_bytes if played else utterance.heard_bytes
        return Heard(
            utterance_id=utterance.id,
            state=utterance.state,
            queued_ms=self._ms(utterance.queued_bytes),
            sent_ms=self._ms(utterance.sent_bytes),
            heard_ms=self._ms(heard_bytes),
            estimated_ms=sum(span.played_at(until) for span in utterance.spans) * 1000,
        )

    def _ms(self, size: int) -> float:
        return size * 1000 / self._bytes_per_second

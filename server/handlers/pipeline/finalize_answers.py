"""The answers due to the listener's ``finalize()`` requests (no I/O, no clock).

Each ``finalize()`` is due one answer (a ``from_finalize`` final or endpoint);
the answers come in the order the requests went out, so the oldest due is the
one an answer settles. A vendor may send none: Deepgram's Finalize docs say "You
*may* receive a response with the ``from_finalize`` attribute set to ``true``
[…] This response typically occurs when there is a noticeable amount of audio
buffered in the server", so a Finalize with nothing left to settle (right after
its own ``speech_final`` gave every word) can go unanswered, and one sent just
before a dropped connection is lost. Left due, such a request would take the
next request's answer — a pause's answer taken for an end's (a turn cut while
the caller only paused) or the other way round (a turn that waits).

So, for an engine that may leave a request unanswered (``may_go_unanswered``),
an answer due is given up on when

- an answer arrives that covers the audio up to a *later* request, sent
  clearly after it (its own answer would have come first): it was skipped;
- or it has been due ``FINALIZE_ANSWER_WAIT_S``.

A vendor that answers every request in time never triggers either: its answer
to a request covers exactly the audio sent before that request.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

#: an answer not in this long after its ``finalize()`` is given up on. Deepgram's
#: finalize answers come 150–300 ms after it (the reference fakes: 150 ms); 1 s
#: leaves room for a slow one and bounds the wait of a turn whose answer never comes
FINALIZE_ANSWER_WAIT_S: Final = 1.0
#: slack (seconds) when comparing our audio positions with the vendor's (ms-rounded)
POSITION_SLACK_S: Final = 0.02


@dataclass(frozen=True, slots=True)
class Due:
    """One request's answer: sent at ``sent_at`` (trio time) behind ``position``
    seconds of audio given to the STT; at a pause, or at a confirmed end."""

    sent_at: float
    position: float
    at_pause: bool


class AnswersDue:
    """The answers due, oldest first (module docstring)."""

    def __init__(self) -> None:
        self.may_go_unanswered = False
        self.given_up = 0  # over the whole call
        self._due: deque[Due] = deque()

    def __bool__(self) -> bool:
        return bool(self._due)

    def sent(self, at: float, position: float, *, at_pause: bool) -> None:
        self._due.append(Due(at, position, at_pause))

    def clear(self) -> None:
        """A new stream answers nothing sent to the old one."""
        self._due.clear()

    def overdue(self, now: float) -> Due | None:
        """Give up on the oldest answer due if it is overdue; return it."""
        due = self._due
        if not (due and self.may_go_unanswered
                and now - due[0].sent_at >= FINALIZE_ANSWER_WAIT_S):
            return None
        self.given_up += 1
        return due.popleft()

    def skipped(self, now: float, answer_end: float) -> Due | None:
        """Before pairing an answer covering the audio up to ``answer_end``: give up
        on the oldest answer due if it is overdue or this answer shows it was
        skipped; return it."""
        late = self.overdue(now)
        if late is not None:
            return late
        due = self._due
        if len(due) < 2 or not self.may_go_unanswered:
            return None
        first, second = due[0].position, due[1].position
        if (second - first > 2 * POSITION_SLACK_S
                and answer_end >= second - POSITION_SLACK_S):
            self.given_up += 1
            return due.popleft()
        return None

    def answered(self) -> Due | None:
        """An answer arrived: the request it answers (None: one given up on)."""
        return self._due.popleft() if self._due else None

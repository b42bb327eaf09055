"""The pacing model behind ``server.playout.speaker``: pure arithmetic, time is an argument.

The peer (Exotel, Twilio) plays what we send in real time, starting as soon as a
frame arrives and pausing when it runs dry. We approximate "arrives" by "we sent
it", so the model needs one number, ``play_end``: the instant at which
everything sent so far will have finished playing.

* sending ``d`` seconds of audio at ``t`` plays from ``max(play_end, t)``, so
  ``play_end`` becomes ``max(play_end, t) + d``;
* the peer's *lead* (audio held, not yet played) at ``t`` is ``max(0, play_end - t)``;
* a frame of ``d`` seconds may go out once the lead after sending it would be at
  most ``max_lead``: at ``due = play_end + d - max_lead`` (or at once if that has
  passed). With 100 ms frames and a 300 ms bound the first three frames go at
  ``t0`` and then one every 100 ms;
* ``clear`` empties the peer's buffer: ``play_end`` becomes "now".

``LatenessHistogram`` counts how late frames actually went out against ``due``
(event-loop lag plus send back-pressure), for ``statistics()`` and the load bench.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

__all__ = ["LATENESS_BUCKETS_MS", "LatenessHistogram", "LatenessSummary", "Pacer", "PlaySpan"]

#: Upper bounds (inclusive, ms) of the lateness histogram's buckets; one more
#: bucket counts everything above the last bound.
LATENESS_BUCKETS_MS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0)


@dataclass(frozen=True, slots=True)
class PlaySpan:
    """Where one sent frame sits on the peer's playback timeline (seconds)."""

    start: float
    duration: float

    def played_at(self, when: float) -> float:
        """Seconds of this frame played by ``when`` (0 … ``duration``)."""
        return min(max(when - self.start, 0.0), self.duration)


class Pacer:
    """When may the next frame go, and how much does the peer hold?"""

    __slots__ = ("_max_lead", "_play_end")

    def __init__(self, max_lead: float) -> None:
        if not max_lead > 0:
            raise ValueError(f"max_lead must be positive, got {max_lead!r}")
        self._max_lead = max_lead
        self._play_end = float("-inf")

    @property
    def max_lead(self) -> float:
        return self._max_lead

    @property
    def play_end(self) -> float:
        """When everything sent so far has played (``-inf`` before any send)."""
        return self._play_end

    def due(self, duration: float) -> float:
        """Earliest instant a frame of ``duration`` s may be sent (may be past)."""
        return self._play_end + duration - self._max_lead

    def lead(self, now: float) -> float:
        """Seconds of sent audio the peer has not played yet at ``now``."""
        return max(0.0, self._play_end - now)

    def sent(self, now: float, duration: float) -> PlaySpan:
        """Record a frame of ``duration`` s sent at ``now``; return its span."""
        start = max(self._play_end, now)
        self._play_end = start + duration
        return PlaySpan(start=start, duration=duration)

    def cleared(self, now: float) -> None:
        """The peer dropped everything it held at ``now``."""
        self._play_end = min(self._play_end, now)


@dataclass(frozen=True, slots=True)
class LatenessSummary:
    """Counts per bucket (``LATENESS_BUCKETS_MS`` bounds plus one overflow bucket),
    total frames, the largest lateness and the sum (ms)."""

    buckets_ms: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    max_ms: float
    total_ms: float

    def quantile_bound_ms(self, q: float) -> float:
        """Upper bound of the bucket holding the ``q`` quantile (``inf`` if it
        is the overflow bucket, 0 when empty)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for bound, n in zip((*self.buckets_ms, float("inf")), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return min(bound, self.max_ms) if bound != float("inf") else self.max_ms
        return self.max_ms


class LatenessHistogram:
    """Fixed-bucket histogram of pacing lateness (cheap, bounded memory)."""

    __slots__ = ("_count", "_counts", "_max", "_total")

    def __init__(self) -> None:
        self._counts = [0] * (len(LATENESS_BUCKETS_MS) + 1)
        self._count = 0
        self._max = 0.0
        self._total = 0.0

    def add(self, lateness_s: float) -> None:
        ms = max(lateness_s, 0.0) * 1000.0
        self._counts[bisect.bisect_left(LATENESS_BUCKETS_MS, ms)] += 1
        self._count += 1
        self._total += ms
        if ms > self._max:
            self._max = ms

    def summary(self) -> LatenessSummary:
        return LatenessSummary(
            buckets_ms=LATENESS_BUCKETS_MS,
            counts=tuple(self._counts),
            count=self._count,
            max_ms=self._max,
            total_ms=self._total,
        )

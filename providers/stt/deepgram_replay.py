"""The Deepgram client's replay ring: call audio that no final has covered yet.

A reconnect must not lose the caller's words, so the stream keeps every byte of
call audio until a final settles it, and a new connection starts by replaying
from the first unsettled byte. Positions are bytes of the call's audio stream
(0 = the first byte the caller sent); the ring holds bytes ``[base, total)``.

The ring is bounded (``max_seconds``): during a long outage the oldest unsettled
audio falls out, and a replay then starts at ``base`` and counts the gap in
:attr:`ReplayRing.lost_bytes`. Cuts always fall on sample boundaries.
"""

from __future__ import annotations


class ReplayRing:
    def __init__(self, bytes_per_second: int, sample_bytes: int, max_seconds: float) -> None:
        self.bytes_per_second = bytes_per_second
        self.sample_bytes = sample_bytes
        self._limit = int(max_seconds * bytes_per_second)
        self._audio = bytearray()
        self.base = 0  # call position of the ring's first byte
        self.total = 0  # call position after the last byte appended
        self.lost_bytes = 0  # fell out of the ring before a final covered them
        self.covered = 0.0  # call time up to which finals have settled the audio

    def append(self, pcm: bytes) -> None:
        self._audio += pcm
        self.total += len(pcm)
        excess = len(self._audio) - self._limit
        if excess > 0:
            excess -= excess % self.sample_bytes
            del self._audio[:excess]
            self.base += excess

    def byte_at(self, t: float) -> int:
        """The call position of call time ``t``, on a sample boundary."""
        position = round(t * self.bytes_per_second)
        return position - position % self.sample_bytes

    def settle(self, t: float) -> None:
        """Finals cover the call audio up to ``t``: drop it from the ring."""
        self.covered = max(self.covered, t)
        cut = min(self.byte_at(self.covered), self.total) - self.base
        if cut > 0:
            del self._audio[:cut]
            self.base += cut

    def replay_start(self) -> int:
        """Where a new connection's audio starts: the first byte no final covers,
        or the ring's oldest byte if that one fell out (the gap is counted lost)."""
        covered = self.byte_at(self.covered)
        if self.base > covered:
            self.lost_bytes += self.base - covered
            self.covered = self.base / self.bytes_per_second
        return max(covered, self.base)

    def read(self, position: int, size: int) -> tuple[int, bytes]:
        """Up to ``size`` bytes from call position ``position`` (moved forward to
        the ring's start if the ring moved on meanwhile): ``(position, bytes)``."""
        position = max(position, self.base)
        start = position - self.base
        return position, bytes(self._audio[start:start + size])

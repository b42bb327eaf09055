"""When to try again after a session-level failure (pure: no I/O, the clock is passed in).

A streaming session (a Deepgram stream, an ElevenLabs socket) that loses its
connection reconnects by itself while its caller keeps going. The policy,
shared by the clients:

- the first attempt goes out at once (most drops are one-off);
- later attempts back off exponentially with "equal jitter": attempt ``n``
  (``n`` ≥ 1) waits a uniform draw from ``[d/2, d]`` with
  ``d = min(MAX_DELAY, INITIAL_DELAY · 2^(n-1))``, so calls dropped together do
  not reconnect in lock-step;
- the vendor's ``retry-after`` (a 429 or 5xx refusal) is a floor on the wait;
- everything is bounded by the reconnect deadline ``D`` (``reconnect_deadline``
  in the client's config, counted from ``lost_at``, the moment the connection
  was lost); each attempt's handshake may take at most the time left.

Giving up, exactly: after a refused or failed attempt at time ``now`` the
next wait ``w`` is drawn (:meth:`Backoff.next_delay`: the jittered backoff, or
the ``retry-after`` if longer). If ``now + w >= lost_at + D`` — the next attempt
could not start before the deadline — the client gives up **at** ``now``, with
:func:`reconnect_deadline_error` chained to that last refusal; it does not wait
for the deadline itself. Hence the typed error comes at the last refusal, which
is before ``lost_at + D`` and no earlier than ``lost_at + D - w``: from the
backoff alone up to ``MAX_DELAY`` (2 s) early, and a ``retry-after`` that ends
at or past the deadline fails at once, however early that is (a 429 with
``retry-after: 10`` a moment after the loss fails a moment after the loss).
This is deliberate: an attempt that cannot start in time cannot succeed in
time, and failing now lets the call handler switch to its fall-back sooner.

:func:`is_transient` says which errors are worth another attempt at all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from providers.exceptions import (
    ConnectError,
    DeadlineExceeded,
    RateLimited,
    VendorUnavailable,
)

#: Seconds: the cap of the second attempt's wait, and the cap of any wait.
INITIAL_DELAY: Final = 0.1
MAX_DELAY: Final = 2.0


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """The jittered wait before attempt number ``attempt`` (0 = the first: none)."""
    if attempt <= 0:
        return 0.0
    cap = min(MAX_DELAY, INITIAL_DELAY * 2 ** (attempt - 1))
    return rng.uniform(cap / 2, cap)


def retry_after_of(error: BaseException) -> float | None:
    """The vendor's ``retry-after`` carried by a refusal, if any."""
    if isinstance(error, RateLimited | VendorUnavailable):
        return error.retry_after
    return None


def is_transient(error: BaseException) -> bool:
    """Refusals and failures that another attempt may get past: unreachable,
    rate-limited, a 5xx, a handshake that timed out. Vendor-specific stream
    closes (``StreamClosed`` codes) are the client's own decision."""
    if isinstance(error, DeadlineExceeded):
        return error.deadline == "connect"
    return isinstance(error, ConnectError | RateLimited | VendorUnavailable)


@dataclass
class Backoff:
    """One outage: from the lost connection (``lost_at``) until a connection is
    live again or ``lost_at + deadline_seconds`` passes."""

    lost_at: float
    deadline_seconds: float
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    @property
    def deadline(self) -> float:
        return self.lost_at + self.deadline_seconds

    def next_delay(self, now: float, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when that attempt
        could not start before the deadline (``now + wait >= deadline``): give
        up now, not at the deadline (module docstring)."""
        delay = max(backoff_delay(self.attempts, self.rng), retry_after or 0.0)
        if now + delay >= self.deadline:
            return None
        self.attempts += 1
        return delay


def reconnect_deadline_error(vendor: str, seconds: float) -> DeadlineExceeded:
    """What a session raises when it could not reconnect in time (chain the last
    refusal to it with ``from``)."""
    return DeadlineExceeded(f"{vendor} not reconnected within {seconds:g} s", vendor=vendor,
                            deadline="reconnect", seconds=seconds)


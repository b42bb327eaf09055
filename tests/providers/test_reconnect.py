"""The reconnect policy: immediate first attempt, jittered exponential backoff,
retry-after as a floor, a hard deadline."""

from __future__ import annotations

import random

import pytest

from providers.exceptions import (
    AuthError,
    ConnectError,
    DeadlineExceeded,
    RateLimited,
    StreamClosed,
    VendorUnavailable,
)
from providers.reconnect import MAX_DELAY, Backoff, backoff_delay, is_transient, retry_after_of


def test_delays_double_with_equal_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    assert backoff_delay(0, rng) == 0.0
    for attempt, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (5, 1.6), (6, MAX_DELAY), (20, MAX_DELAY)]:
        draws = [backoff_delay(attempt, rng) for _ in range(200)]
        assert cap / 2 <= min(draws)
        assert max(draws) <= cap
        assert max(draws) - min(draws) > cap / 4  # really jittered


def test_retry_after_is_a_floor_and_the_deadline_a_wall() -> None:
    backoff = Backoff(lost_at=10.0, deadline_seconds=5.0, rng=random.Random(3))
    assert backoff.next_delay(10.0) == 0.0  # first attempt at once
    assert backoff.next_delay(10.01, retry_after=1.0) == 1.0  # 429 retry-after: 1
    second = backoff.next_delay(11.02)  # a 500 without retry-after
    assert second is not None
    assert 0.1 <= second <= 0.2
    assert backoff.next_delay(11.3, retry_after=3.7) is None  # would start at 15.0: too late
    assert backoff.attempts == 3


def test_which_errors_are_worth_another_attempt() -> None:
    limited = RateLimited("429", vendor="v", retry_after=2.0)
    down = VendorUnavailable("503", vendor="v", status=503, retry_after=None)
    assert retry_after_of(limited) == 2.0
    assert retry_after_of(down) is None
    assert retry_after_of(ConnectError("x", vendor="v")) is None
    transient = [limited, down, ConnectError("x", vendor="v"),
                 DeadlineExceeded("x", vendor="v", deadline="connect", seconds=1)]
    final = [AuthError("x", vendor="v"), StreamClosed("x", vendor="v", status=1006),
             DeadlineExceeded("x", vendor="v", deadline="first_byte", seconds=1)]
    assert all(map(is_transient, transient))
    assert not any(map(is_transient, final))


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_no_time_at_all_means_no_attempt(seconds: float) -> None:
    assert Backoff(lost_at=0.0, deadline_seconds=seconds).next_delay(0.0) is None

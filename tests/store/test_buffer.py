"""The per-call write buffer and the backoff policy (pure, no Redis)."""

from __future__ import annotations

import pytest

from server.store.buffer import BufferLimits, RetryDelays, TurnBuffer
from server.store.records import TurnLatency
from tests.store.strategies import entry, snapshot


def test_snapshots_coalesce_and_entries_keep_order() -> None:
    buf = TurnBuffer("B1")
    assert buf.take() is None
    buf.push(snapshot("B1", turns=1), [entry(0), entry(1)])
    buf.push(snapshot("B1", turns=2), [entry(2)], [TurnLatency(2, {})])
    batch = buf.take()
    assert batch is not None
    assert batch.snapshot == snapshot("B1", turns=2)
    assert [e.text for e in batch.transcript] == ["utterance 0", "utterance 1", "utterance 2"]
    assert batch.latency == (TurnLatency(2, {}),)
    assert not buf.pending
    assert buf.take() is None


def test_failed_batch_goes_back_ahead_of_newer_data() -> None:
    buf = TurnBuffer("B2")
    buf.push(snapshot("B2", turns=1), [entry(0)])
    failed = buf.take()
    assert failed is not None
    buf.push(snapshot("B2", turns=2), [entry(1)])
    buf.put_back(failed)
    batch = buf.take()
    assert batch is not None
    assert batch.snapshot == snapshot("B2", turns=2)  # the newer snapshot wins
    assert [e.text for e in batch.transcript] == ["utterance 0", "utterance 1"]


def test_put_back_keeps_the_old_snapshot_when_nothing_newer_came() -> None:
    buf = TurnBuffer("B3")
    buf.push(snapshot("B3", turns=1))
    failed = buf.take()
    assert failed is not None
    buf.put_back(failed)
    again = buf.take()
    assert again is not None
    assert again.snapshot == snapshot("B3", turns=1)


def test_overflow_drops_oldest_and_counts() -> None:
    buf = TurnBuffer("B4", BufferLimits(max_transcript=3, max_latency=1))
    buf.push(transcript=[entry(i) for i in range(5)],
             latency=[TurnLatency(i, {}) for i in range(3)])
    failed = buf.take()
    assert failed is not None
    buf.push(transcript=[entry(9)])
    buf.put_back(failed)
    batch = buf.take()
    assert batch is not None
    assert [e.text for e in batch.transcript] == ["utterance 3", "utterance 4", "utterance 9"]
    assert [r.turn for r in batch.latency] == [2]
    assert (buf.dropped_transcript, buf.dropped_latency) == (3, 2)


def test_refresh_request_yields_an_empty_batch() -> None:
    buf = TurnBuffer("B5")
    buf.request_refresh()
    batch = buf.take()
    assert batch is not None
    assert (batch.snapshot, batch.transcript, batch.latency) == (None, (), ())


@pytest.mark.parametrize(("attempt", "delay"), [(0, 0.05), (1, 0.1), (3, 0.4), (10, 2.0),
                                                 (10_000, 2.0)])
def test_backoff_grows_and_is_capped(attempt: int, delay: float) -> None:
    assert RetryDelays().delay(attempt) == pytest.approx(delay)

"""The ``SessionStore`` contract the call server uses, and its small value types.

The server never calls the store from the audio path: it hands per-turn data
to a call recorder (``recorder.py``), whose background task calls
``write_turn``; the recorder's exit calls ``write_outcome``. Every method may
raise ``StoreUnavailable``; callers decide whether to retry (the recorder does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from server.store.records import LeadContext, Outcome, SessionSnapshot, TranscriptEntry, TurnLatency


@dataclass(frozen=True, slots=True)
class TurnBatch:
    """What one pipelined round trip writes for one call.

    ``snapshot`` is the newest state (it replaces the stored one) or ``None``
    to only refresh the TTLs. ``transcript`` and ``latency`` are appended in order.
    With ``live_owner`` (an instance id) the call is (re)registered in
    ``calls:live`` under ``{call_sid}:{stream_sid}`` (``server.store.lost``).
    """

    call_sid: str
    snapshot: SessionSnapshot | None = None
    transcript: tuple[TranscriptEntry, ...] = ()
    latency: tuple[TurnLatency, ...] = ()
    stream_sid: str = ""
    live_owner: str | None = None


@dataclass(frozen=True, slots=True)
class OutcomeReceipt:
    """Where an outcome landed. ``duplicate`` means an earlier attempt had
    already written it (``entry_id`` is that earlier entry): nothing new was added."""

    entry_id: str
    duplicate: bool
    over_cap: bool = False  # the stream is above its cap: a consumer group lags


@dataclass(frozen=True, slots=True)
class SessionView:
    """Everything stored about one call, for ``voicebot session show``."""

    call_sid: str
    snapshot: SessionSnapshot | None
    transcript: tuple[TranscriptEntry, ...]
    latency: tuple[TurnLatency, ...]
    ttl_seconds: int | None  # None: no such key or no TTL


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    turn_writes: int
    turn_write_failures: int
    outcomes_written: int
    outcomes_duplicate: int
    outcomes_over_cap: int
    lead_lookups_ignored: int


class SessionStore(Protocol):
    """Call state storage as the server sees it (implemented by ``RedisSessionStore``)."""

    async def write_turn(self, batch: TurnBatch) -> None:
        """Write one batch in one round trip and refresh the call's TTLs."""

    async def write_outcome(self, outcome: Outcome) -> OutcomeReceipt:
        """Add the call's outcome to the stream and campaign stats, exactly once."""

    async def load_lead(self, params: Mapping[str, str], *, call_sid: str,
                        on_failure: Callable[[], None] | None = None) -> LeadContext:
        """Lead context from the custom parameters, enriched from ``lead:{lead_id}``
        when present. Never raises and never waits past its own short deadline; a
        lookup that failed or timed out calls ``on_failure`` (a missing hash is
        no failure)."""

    def statistics(self) -> StoreStatistics: ...

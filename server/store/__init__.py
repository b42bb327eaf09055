"""Call state in Redis: sessions, transcripts, latency records, outcomes (issue 6).

Start with ``open_store_service`` (``service.py``). Modules:

- ``records``      what is stored (record types)
- ``codec``        their explicit, versioned serialization
- ``interface``    the ``SessionStore`` protocol and value types
- ``connection``   ``StoreConfig``, ``connect`` (URL schemes incl. Sentinel), error mapping
- ``redis_store``  the Redis implementation (keys listed there)
- ``outcome_script`` the exactly-once outcome write (Lua) and the stream cap policy
- ``buffer``       per-call bounded buffer, backoff, the process-wide outcome retrier
- ``spill``        JSON-lines spill file and its replay
- ``recorder``     ``open_call_recorder``: one call's writer, outcome on every exit
- ``embedded``     the embedded redis-server (no ``REDIS_URL``)
- ``service``      ``open_store_service``: what the call server uses
- ``exceptions``   ``StoreError`` and its tree
"""

from server.store.exceptions import (
    EmbeddedRedisError,
    RecordError,
    RecordFormatError,
    SchemaVersionError,
    SpillError,
    StoreError,
    StoreUnavailable,
)
from server.store.interface import OutcomeReceipt, SessionStore, SessionView, TurnBatch
from server.store.recorder import CallRecorder, RecorderConfig, open_call_recorder
from server.store.records import (
    LeadContext,
    Outcome,
    SessionSnapshot,
    TranscriptEntry,
    TurnLatency,
    mask_phone,
)
from server.store.service import StoreService, open_store_service

__all__ = [
    "CallRecorder",
    "EmbeddedRedisError",
    "LeadContext",
    "Outcome",
    "OutcomeReceipt",
    "RecordError",
    "RecordFormatError",
    "RecorderConfig",
    "SchemaVersionError",
    "SessionSnapshot",
    "SessionStore",
    "SessionView",
    "SpillError",
    "StoreError",
    "StoreService",
    "StoreUnavailable",
    "TranscriptEntry",
    "TurnBatch",
    "TurnLatency",
    "mask_phone",
    "open_call_recorder",
    "open_store_service",
]

"""Versioned, explicit serialization of the stored records."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given

from server.store.codec import (
    decode_latency,
    decode_snapshot,
    decode_transcript_entry,
    encode_latency,
    encode_snapshot,
    encode_transcript_entry,
    outcome_from_fields,
    outcome_to_fields,
)
from server.store.exceptions import RecordFormatError, SchemaVersionError
from server.store.records import Outcome, SessionSnapshot, TranscriptEntry, TurnLatency, mask_phone
from tests.store.strategies import (
    T0,
    entry,
    latencies,
    outcome,
    outcomes,
    snapshot,
    snapshots,
    transcript_entries,
)


@given(snapshots)
def test_snapshot_round_trip(snap: SessionSnapshot) -> None:
    assert decode_snapshot(encode_snapshot(snap)) == snap


@given(transcript_entries)
def test_transcript_entry_round_trip(e: TranscriptEntry) -> None:
    assert decode_transcript_entry(encode_transcript_entry(e)) == e


@given(latencies)
def test_latency_round_trip(record: TurnLatency) -> None:
    assert decode_latency(encode_latency(record)) == record


@given(outcomes)
def test_outcome_round_trip_through_stream_fields(o: Outcome) -> None:
    fields = outcome_to_fields(o)
    assert all(isinstance(v, str) for v in fields.values())
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}  # what redis-py returns
    assert outcome_from_fields(as_bytes) == o


def test_outcome_entries_written_before_close_code_still_decode() -> None:
    fields = outcome_to_fields(outcome("OLD"))
    del fields["close_code"]  # an entry from before the field existed
    assert outcome_from_fields(fields).close_code is None


def test_snapshot_written_before_llm_requests_existed_still_decodes() -> None:
    snap = snapshot("CA1")
    data = json.loads(encode_snapshot(snap))
    assert data["usage"]["llm_requests"] == snap.usage.llm_requests
    del data["usage"]["llm_requests"]
    assert decode_snapshot(json.dumps(data)).usage.llm_requests == 0


def test_unknown_schema_version_is_reported_with_the_version() -> None:
    data = json.loads(encode_snapshot(snapshot("CA1")))
    data["v"] = 2
    with pytest.raises(SchemaVersionError, match="session record has unknown schema version 2") \
            as info:
        decode_snapshot(json.dumps(data))
    assert info.value.version == 2
    assert info.value.kind == "session"

    fields = outcome_to_fields(outcome("CA1"))
    fields["v"] = "7"
    with pytest.raises(SchemaVersionError) as out_info:
        outcome_from_fields(fields)
    assert out_info.value.version == 7

    raw = json.loads(encode_transcript_entry(entry(1)))
    del raw["v"]
    with pytest.raises(SchemaVersionError, match="None"):
        decode_transcript_entry(json.dumps(raw))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("stage"), "unknown value None"),
        (lambda d: d.update(stage="WINNING"), "unknown value 'WINNING'"),
        (lambda d: d.update(turns="3"), "'turns' has type str"),
        (lambda d: d.update(turns=True), "'turns' has type bool"),
        (lambda d: d.update(started_at="2026-11-24T10:00:00"), "no UTC offset"),
        (lambda d: d.update(slots={"mood": "happy"}), "unknown keys"),
        (lambda d: d.update(caller="+919876543210"), "must be masked"),
    ],
)
def test_malformed_snapshot_is_a_format_error(mutate: object, message: str) -> None:
    data = json.loads(encode_snapshot(snapshot("CA1")))
    mutate(data)  # type: ignore[operator]
    with pytest.raises(RecordFormatError, match=message):
        decode_snapshot(json.dumps(data))


def test_not_json_is_a_format_error() -> None:
    with pytest.raises(RecordFormatError, match="not JSON"):
        decode_snapshot(b"\xff{")
    with pytest.raises(RecordFormatError, match="lacks fields"):
        outcome_from_fields({"v": "1", "call_sid": "x"})


def test_times_carry_offsets_and_callback_is_in_kolkata() -> None:
    o = outcome("CA1")
    o = Outcome(**{**{f: getattr(o, f) for f in o.__dataclass_fields__},
                   "slots": {"callback_at": datetime(2026, 11, 25, 9, 0, tzinfo=T0.tzinfo)}})
    fields = outcome_to_fields(o)
    assert fields["callback_at"] == "2026-11-25T14:30:00+05:30"
    assert json.loads(fields["slots"])["callback_at"] == "2026-11-25T14:30:00+05:30"
    assert fields["ended_at"] == "2026-11-24T10:00:30+00:00"


def test_naive_times_are_refused_on_encode() -> None:
    naive = TranscriptEntry(speaker=entry(0).speaker, text="hi", audio_time=0.0,
                            wall_time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive datetime"):
        encode_transcript_entry(naive)


def test_phone_masking_keeps_only_last_four_digits() -> None:
    assert mask_phone("+91 98765-43210") == "******3210"
    assert mask_phone("09876543210") == "******3210"
    assert mask_phone("123") == "******"
    assert mask_phone(None) == ""
    with pytest.raises(ValueError, match="masked"):
        SessionSnapshot(call_sid="x", stream_sid="y", caller="+919876543210", started_at=T0)


def test_unknown_latency_mark_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown latency marks"):
        encode_latency(TurnLatency(turn=1, marks={"coffee_break": 1.0}))

"""Explicit, versioned serialization of the store's records (``records.py``).

Every record carries a schema version (``"v"``). Decoding a version this code
does not know raises ``SchemaVersionError`` naming it: a newer writer's data is
reported, never guessed at. A malformed record raises ``RecordFormatError``.

Times are ISO-8601 strings with their UTC offset (naive datetimes are refused on
encode with ``ValueError``); ``callback_at`` is always written in Asia/Kolkata
(+05:30) so a CRM reads it without guessing. Snapshots, transcript entries and
latency records are JSON objects; an outcome is a flat map of strings (what a
stream entry holds, and what a spill-file line holds).

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from dialogue.model import Objection, Slots, Stage, Timeline
from server.store.exceptions import RecordFormatError, SchemaVersionError
from server.store.records import (
    LATENCY_MARKS,
    Delivery,
    LeadContext,
    Outcome,
    Role,
    SessionSnapshot,
    TranscriptEntry,
    TurnLatency,
    Usage,
)

SCHEMA_VERSION = 1
KOLKATA = ZoneInfo("Asia/Kolkata")


def _iso(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: times are stored with their offset")
    return value.isoformat()


def _get(data: Mapping[str, Any], key: str, kind: str, types: type | tuple[type, ...]) -> Any:
    try:
        value = data[key]
    except KeyError:
        raise RecordFormatError(f"{kind} record lacks field {key!r}", kind=kind) from None
    # bool is an int subclass: never accept it where a number is meant.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
        raise RecordFormatError(
            f"{kind} field {key!r} has type {type(value).__name__}", kind=kind
        )
    return value


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _parse_time(text: object, kind: str, key: str) -> datetime:
    if not isinstance(text, str):
        raise RecordFormatError(f"{kind} field {key!r} is not a time string", kind=kind)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RecordFormatError(f"{kind} field {key!r}: {exc}", kind=kind) from exc
    if value.tzinfo is None:
        raise RecordFormatError(f"{kind} field {key!r} has no UTC offset", kind=kind)
    return value


def _enum(cls: type[StrEnum], value: object, kind: str, key: str) -> Any:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return cls(value)
    except ValueError:
        raise RecordFormatError(
            f"{kind} field {key!r}: unknown value {value!r}", kind=kind
        ) from None


def _load(raw: str | bytes, kind: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordFormatError(f"{kind} record is not JSON: {exc}", kind=kind) from exc
    if not isinstance(data, dict):
        raise RecordFormatError(f"{kind} record is not a JSON object", kind=kind)
    _check_version(data.get("v"), kind)
    return data


def _check_version(version: object, kind: str) -> None:
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(kind=kind, version=version)


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- slots


def slots_to_json(slots: Slots) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "budget_inr" in slots:
        out["budget_inr"] = int(slots["budget_inr"])
    if "timeline" in slots:
        out["timeline"] = Timeline(slots["timeline"]).value
    if "callback_at" in slots:
        out["callback_at"] = _iso(slots["callback_at"].astimezone(KOLKATA))
    if "decision_maker" in slots:
        out["decision_maker"] = bool(slots["decision_maker"])
    if "need" in slots:
        out["need"] = str(slots["need"])
    return out


def slots_from_json(data: object, kind: str) -> Slots:
    if not isinstance(data, dict):
        raise RecordFormatError(f"{kind} slots are not an object", kind=kind)
    unknown = set(data) - set(Slots.__annotations__)
    if unknown:
        raise RecordFormatError(f"{kind} slots have unknown keys {sorted(unknown)}", kind=kind)
    slots = Slots()
    if "budget_inr" in data:
        slots["budget_inr"] = _get(data, "budget_inr", kind, int)
    if "timeline" in data:
        slots["timeline"] = _enum(Timeline, data["timeline"], kind, "timeline")
    if "callback_at" in data:
        slots["callback_at"] = _parse_time(data["callback_at"], kind, "callback_at")
    if "decision_maker" in data:
        slots["decision_maker"] = _get(data, "decision_maker", kind, bool)
    if "need" in data:
        slots["need"] = _get(data, "need", kind, str)
    return slots


# ---------------------------------------------------------------- snapshot


def encode_snapshot(snap: SessionSnapshot) -> str:
    lead = snap.lead
    return _dump({
        "v": SCHEMA_VERSION,
        "call_sid": snap.call_sid,
        "stream_sid": snap.stream_sid,
        "caller": snap.caller,
        "started_at": _iso(snap.started_at),
        "lead": {
            "params": dict(lead.params), "name": lead.name, "company": lead.company,
            "product_interest": lead.product_interest, "language": lead.language,
            "enriched": lead.enriched,
        },
        "playbook_id": snap.playbook_id,
        "stage": snap.stage.value,
        "slots": slots_to_json(snap.slots),
        "objections": {Objection(k).value: int(n) for k, n in snap.objections.items()},
        "do_not_call": snap.do_not_call,
        "last_mark": snap.last_mark,
        "usage": {
            "stt_seconds": snap.usage.stt_seconds,
            "llm_input_tokens": snap.usage.llm_input_tokens,
            "llm_output_tokens": snap.usage.llm_output_tokens,
            "tts_characters": snap.usage.tts_characters,
            "llm_requests": snap.usage.llm_requests,
        },
        "turns": snap.turns,
    })


def decode_snapshot(raw: str | bytes) -> SessionSnapshot:
    kind = "session"
    d = _load(raw, kind)
    lead = _get(d, "lead", kind, dict)
    params = _get(lead, "params", kind, dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        raise RecordFormatError("session lead params must map strings to strings", kind=kind)
    optional = (str, type(None))
    usage = _get(d, "usage", kind, dict)
    objections = _get(d, "objections", kind, dict)
    try:
        return SessionSnapshot(
            call_sid=_get(d, "call_sid", kind, str),
            stream_sid=_get(d, "stream_sid", kind, str),
            caller=_get(d, "caller", kind, str),
            started_at=_parse_time(d.get("started_at"), kind, "started_at"),
            lead=LeadContext(
                params=params,
                name=_get(lead, "name", kind, optional),
                company=_get(lead, "company", kind, optional),
                product_interest=_get(lead, "product_interest", kind, optional),
                language=_get(lead, "language", kind, optional),
                enriched=_get(lead, "enriched", kind, bool),
            ),
            playbook_id=_get(d, "playbook_id", kind, str),
            stage=_enum(Stage, d.get("stage"), kind, "stage"),
            slots=slots_from_json(d.get("slots"), kind),
            objections={
                _enum(Objection, k, kind, "objections").value: _get(objections, k, kind, int)
                for k in objections
            },
            do_not_call=_get(d, "do_not_call", kind, bool),
            last_mark=_get(d, "last_mark", kind, optional),
            usage=Usage(
                stt_seconds=float(_get(usage, "stt_seconds", kind, (int, float))),
                llm_input_tokens=_get(usage, "llm_input_tokens", kind, int),
                llm_output_tokens=_get(usage, "llm_output_tokens", kind, int),
                tts_characters=_get(usage, "tts_characters", kind, int),
                # Absent from records written before the field existed.
                llm_requests=_get(usage, "llm_requests", kind, int)
                if "llm_requests" in usage else 0,
            ),
            turns=_get(d, "turns", kind, int),
        )
    except ValueError as exc:  # the masking guard
        raise RecordFormatError(f"session record: {exc}", kind=kind) from exc


# ---------------------------------------------------------------- transcript, latency


def encode_transcript_entry(entry: TranscriptEntry) -> str:
    return _dump({
        "v": SCHEMA_VERSION,
        "speaker": entry.speaker.value,
        "text": entry.text,
        "audio_time": entry.audio_time,
        "wall_time": _iso(entry.wall_time),
        "delivery": entry.delivery.value if entry.delivery is not None else None,
        "heard_text": entry.heard_text,
    })


def decode_transcript_entry(raw: str | bytes) -> TranscriptEntry:
    kind = "transcript"
    d = _load(raw, kind)
    delivery = d.get("delivery")
    return TranscriptEntry(
        speaker=_enum(Role, d.get("speaker"), kind, "speaker"),
        text=_get(d, "text", kind, str),
        audio_time=float(_get(d, "audio_time", kind, (int, float))),
        wall_time=_parse_time(d.get("wall_time"), kind, "wall_time"),
        delivery=None if delivery is None else _enum(Delivery, delivery, kind, "delivery"),
        heard_text=_get(d, "heard_text", kind, (str, type(None))),
    )


def encode_latency(record: TurnLatency) -> str:
    unknown = set(record.marks) - set(LATENCY_MARKS)
    if unknown:
        raise ValueError(f"unknown latency marks {sorted(unknown)}")
    marks = {name: record.marks[name] for name in LATENCY_MARKS if name in record.marks}
    return _dump({"v": SCHEMA_VERSION, "turn": record.turn, "marks": marks})


def decode_latency(raw: str | bytes) -> TurnLatency:
    kind = "latency"
    d = _load(raw, kind)
    marks = _get(d, "marks", kind, dict)
    if not set(marks) <= set(LATENCY_MARKS):
        raise RecordFormatError(f"latency marks {sorted(set(marks))} unknown", kind=kind)
    return TurnLatency(
        turn=_get(d, "turn", kind, int),
        marks={k: float(_get(marks, k, kind, (int, float))) for k in marks},
    )


# ---------------------------------------------------------------- outcome

#: Stream entries are flat string fields (what XADD stores and a CRM consumer reads).
OUTCOME_FIELDS: tuple[str, ...] = (
    "v", "call_sid", "stream_sid", "campaign_id", "lead_id", "stage", "slots",
    "callback_at", "do_not_call", "duration_s", "turns", "cost_micro_usd",
    "end_reason", "ended_at",
)
# Added since version 1 was first written, so optional on decode (absent from
# older entries) and always written: "close_code" (empty when unknown).


def outcome_to_fields(o: Outcome) -> dict[str, str]:
    """The stream entry. Absent ids and callback time are empty strings."""
    callback = o.callback_at
    return {
        "v": str(SCHEMA_VERSION),
        "call_sid": o.call_sid,
        "stream_sid": o.stream_sid,
        "campaign_id": o.campaign_id or "",
        "lead_id": o.lead_id or "",
        "stage": o.stage.value,
        "slots": _dump(slots_to_json(o.slots)),
        "callback_at": _iso(callback.astimezone(KOLKATA)) if callback is not None else "",
        "do_not_call": "1" if o.do_not_call else "0",
        "duration_s": f"{o.duration_s:.3f}",
        "turns": str(o.turns),
        "cost_micro_usd": str(int(o.cost_micro_usd)),
        "end_reason": o.end_reason,
        "ended_at": _iso(o.ended_at),
        "close_code": "" if o.close_code is None else str(o.close_code),
    }


def outcome_from_fields(raw: Mapping[Any, Any]) -> Outcome:
    """Decode a stream entry (bytes or str keys/values) or a spilled JSON object."""
    kind = "outcome"
    fields = {_text(k, kind): _text(v, kind) for k, v in raw.items()}
    version = fields.get("v")
    _check_version(int(version) if version is not None and version.isdigit() else version, kind)
    missing = [name for name in OUTCOME_FIELDS if name not in fields]
    if missing:
        raise RecordFormatError(f"outcome entry lacks fields {missing}", kind=kind)
    try:
        return Outcome(
            call_sid=fields["call_sid"],
            stream_sid=fields["stream_sid"],
            campaign_id=fields["campaign_id"] or None,
            lead_id=fields["lead_id"] or None,
            stage=_enum(Stage, fields["stage"], kind, "stage"),
            slots=slots_from_json(json.loads(fields["slots"]), kind),
            do_not_call=fields["do_not_call"] == "1",
            duration_s=float(fields["duration_s"]),
            turns=int(fields["turns"]),
            cost_micro_usd=int(fields["cost_micro_usd"]),
            end_reason=fields["end_reason"],
            ended_at=_parse_time(fields["ended_at"], kind, "ended_at"),
            close_code=int(fields["close_code"]) if fields.get("close_code") else None,
        )
    except ValueError as exc:  # int()/float()/json.loads on a malformed field
        raise RecordFormatError(f"outcome entry: {exc}", kind=kind) from exc


def _text(value: object, kind: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise RecordFormatError(f"{kind} entry is not UTF-8", kind=kind) from exc
    if isinstance(value, str):
        return value
    raise RecordFormatError(f"{kind} entry holds a {type(value).__name__}", kind=kind)

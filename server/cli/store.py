"""``voicebot outcomes tail``, ``voicebot session show``, ``voicebot campaign stats``.

Read-only views of what calls left in Redis (``--redis-url``, else ``REDIS_URL``,
else the embedded server of a voicebot running with the same state dir).
Human-readable by default; ``--json`` prints machine-readable JSON (one object
per line for ``outcomes tail``). Exit codes: 0 ok, 1 Redis unreachable or a
record unreadable, 2 usage (e.g. no Redis URL), 3 no such session.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, TextIO, cast

from server.redact import log_safe, printable
from server.store.codec import (
    encode_latency,
    encode_snapshot,
    encode_transcript_entry,
    outcome_to_fields,
)
from server.store.connection import StoreConfig, connect, mask_url
from server.store.embedded import find_running_embedded
from server.store.exceptions import RecordError, StoreUnavailable
from server.store.records import Outcome, SessionSnapshot, TranscriptEntry
from server.store.redis_store import RedisBackend
from server.store.spill import default_state_dir

NO_URL = """\
REDIS_URL is not set, and no running voicebot's embedded redis-server was found
(it publishes its socket in $VOICEBOT_STATE_DIR/redis/redis.url while it runs).
Start `voicebot serve` first, or point both at the same Redis:
  export REDIS_URL=redis://localhost:6379/0      (or unix:///path/to/redis.sock)
and pass --redis-url URL here if it differs from the environment."""

FOLLOW_BLOCK_MS = 5000


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--redis-url", default=None,
                        help="Redis to read (default: $REDIS_URL)")
    common.add_argument("--key-prefix", default=os.environ.get("VOICEBOT_REDIS_KEY_PREFIX", ""),
                        help=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", help="machine-readable JSON output")

    outcomes = subparsers.add_parser("outcomes", help="call outcomes (stream calls:outcomes)")
    out_sub = outcomes.add_subparsers(title="commands", metavar="COMMAND", required=True)
    tail = out_sub.add_parser("tail", parents=[common], help="show the newest outcomes")
    tail.add_argument("--count", "-n", type=int, default=10, help="how many (default 10)")
    tail.add_argument("--follow", "-f", action="store_true",
                      help="keep printing new outcomes until interrupted")
    tail.set_defaults(func=lambda a: _with_backend(a, _outcomes_tail))

    session = subparsers.add_parser("session", help="one call's stored state")
    sess_sub = session.add_subparsers(title="commands", metavar="COMMAND", required=True)
    show = sess_sub.add_parser("show", parents=[common],
                               help="snapshot, transcript and latency records of a call")
    show.add_argument("call_sid", metavar="CALL_SID")
    show.set_defaults(func=lambda a: _with_backend(a, _session_show))

    campaign = subparsers.add_parser("campaign", help="campaign aggregates")
    camp_sub = campaign.add_subparsers(title="commands", metavar="COMMAND", required=True)
    stats = camp_sub.add_parser("stats", parents=[common], help="totals of one campaign")
    stats.add_argument("campaign_id", metavar="ID")
    stats.set_defaults(func=lambda a: _with_backend(a, _campaign_stats))


def _with_backend(
    args: argparse.Namespace, command: Callable[[RedisBackend, argparse.Namespace, TextIO], int]
) -> int:
    url = args.redis_url or os.environ.get("REDIS_URL")
    if not url:
        url = find_running_embedded(default_state_dir() / "redis")
        if url is None:
            print(NO_URL, file=sys.stderr)
            return 2
        print(f"(REDIS_URL not set: reading the embedded server of a running voicebot, {url})",
              file=sys.stderr)
    config = StoreConfig(max_threads=1, socket_timeout=10.0, connect_timeout=2.0,
                         prefix=args.key_prefix)
    backend = RedisBackend(connect(url, config), config)
    try:
        return command(backend, args, cast(TextIO, _Printable(sys.stdout)))
    except StoreUnavailable as exc:
        print(f"cannot read Redis at {mask_url(url)}: {exc}", file=sys.stderr)
        return 1
    except RecordError as exc:
        print(f"unreadable record: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        backend.close()


class _Printable(io.TextIOBase):
    """Standard output with control characters in stored values escaped
    (``server.redact.printable``): a transcript or custom parameter cannot
    drive the terminal. JSON output is pure ASCII already."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        return self._out.write(printable(text))

    def flush(self) -> None:
        self._out.flush()


def _json_line(record: object, *, indent: int | None = None) -> str:
    """JSON with everything outside ASCII escaped: one record per line, safe for
    any reader (U+2028/U+2029/NEL never appear raw)."""
    return json.dumps(record, ensure_ascii=True, indent=indent)


# ---------------------------------------------------------------- outcomes


def _outcomes_tail(backend: RedisBackend, args: argparse.Namespace, out: TextIO) -> int:
    rows = backend.read_outcomes(count=max(args.count, 0)) if args.count > 0 else []
    last = rows[-1][0] if rows else None
    _print_outcomes(rows, args.json, out)
    if not args.follow:
        if not rows and not args.json:
            print("no outcomes yet", file=out)
        return 0
    # Ctrl-C stops following even when started with SIGINT ignored (a shell's
    # background job inherits that, and Python then keeps it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if last is None:
        newest = backend.read_outcomes(count=1)
        last = newest[0][0] if newest else "0-0"
    while True:
        rows = backend.read_outcomes(count=100, after=last, block_ms=FOLLOW_BLOCK_MS)
        if rows:
            last = rows[-1][0]
            _print_outcomes(rows, args.json, out)


def _print_outcomes(rows: list[tuple[str, Outcome | RecordError]], as_json: bool,
                    out: TextIO) -> None:
    for entry_id, item in rows:
        if as_json:
            record: dict[str, Any] = {"id": entry_id}
            if isinstance(item, RecordError):
                record["error"] = str(item)
            else:
                record.update(outcome_to_fields(item))
            print(_json_line(record), file=out)
        elif isinstance(item, RecordError):
            print(f"{entry_id}  unreadable: {item}", file=out)
        else:
            print(f"{entry_id}  {_outcome_line(item)}", file=out)
    out.flush()


def _outcome_line(o: Outcome) -> str:
    parts = [
        o.ended_at.isoformat(timespec="seconds"), o.call_sid, o.stage.value,
        f"campaign={o.campaign_id or '-'}", f"lead={o.lead_id or '-'}",
        f"{o.duration_s:.1f}s", f"{o.turns} turns", f"${o.cost_micro_usd / 1e6:.4f}",
        f"end={o.end_reason}",
    ]
    if o.callback_at is not None:
        parts.append(f"callback={o.callback_at.isoformat(timespec='minutes')}")
    if o.do_not_call:
        parts.append("DO-NOT-CALL")
    return "  ".join(parts)


# ---------------------------------------------------------------- session


def _session_show(backend: RedisBackend, args: argparse.Namespace, out: TextIO) -> int:
    view = backend.read_session(args.call_sid)
    if view.snapshot is None and not view.transcript and not view.latency:
        print(f"no session {args.call_sid!r} (never stored, or its TTL expired)",
              file=sys.stderr)
        return 3
    if args.json:
        doc = {
            "call_sid": view.call_sid,
            "ttl_seconds": view.ttl_seconds,
            "snapshot": json.loads(encode_snapshot(view.snapshot)) if view.snapshot else None,
            "transcript": [json.loads(encode_transcript_entry(e)) for e in view.transcript],
            "latency": [json.loads(encode_latency(r)) for r in view.latency],
        }
        print(_json_line(doc, indent=2), file=out)
        return 0
    print(f"session {view.call_sid}  (expires in {view.ttl_seconds}s)", file=out)
    if view.snapshot is not None:
        _print_snapshot(view.snapshot, out)
    print(f"transcript ({len(view.transcript)} entries):", file=out)
    for e in view.transcript:
        print("  " + _transcript_line(e), file=out)
    print(f"latency ({len(view.latency)} turns, ms after speech_end):", file=out)
    for r in view.latency:
        base = r.marks.get("speech_end")
        marks = "  ".join(
            f"{name}={(t - base) * 1000:.0f}" if base is not None else f"{name}={t:.3f}"
            for name, t in r.marks.items() if name != "speech_end"
        )
        print(f"  turn {r.turn}: {marks}", file=out)
    return 0


def _print_snapshot(s: SessionSnapshot, out: TextIO) -> None:
    lead = s.lead
    rows = [
        ("stream", s.stream_sid), ("caller", s.caller), ("started", s.started_at.isoformat()),
        ("stage", s.stage.value), ("turns", str(s.turns)), ("playbook", s.playbook_id or "-"),
        ("lead", ", ".join(f"{k}={v}" for k, v in lead.params.items()) or "-"),
        ("lead info", ", ".join(f"{k}={v}" for k, v in (
            ("name", lead.name), ("company", lead.company),
            ("product", lead.product_interest), ("language", lead.language)) if v) or "-"),
        ("slots", ", ".join(f"{k}={_slot(v)}" for k, v in s.slots.items()) or "-"),
        ("objections", ", ".join(f"{k}={n}" for k, n in s.objections.items()) or "-"),
        ("do not call", "yes" if s.do_not_call else "no"),
        ("last mark", s.last_mark or "-"),
        ("usage", f"stt {s.usage.stt_seconds:.1f}s, llm {s.usage.llm_input_tokens}+"
                  f"{s.usage.llm_output_tokens} tokens, tts {s.usage.tts_characters} chars"),
    ]
    for name, value in rows:
        print(f"  {name:<12} {_one_line(value)}", file=out)


def _slot(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _one_line(text: str) -> str:
    """A stored value on one line: newlines and other controls escaped."""
    return log_safe(text, 16384)


def _transcript_line(e: TranscriptEntry) -> str:
    line = f"[{e.audio_time:8.2f}s] {e.speaker.value:>6}: {_one_line(e.text)}"
    if e.delivery is not None and e.delivery.value == "cut":
        line += f"   (cut by barge-in; heard: {_one_line(e.heard_text or '')!r})"
    return line


# ---------------------------------------------------------------- campaign


def _campaign_stats(backend: RedisBackend, args: argparse.Namespace, out: TextIO) -> int:
    stats = backend.campaign_stats(args.campaign_id)
    if args.json:
        print(_json_line({"campaign_id": args.campaign_id, **stats}), file=out)
        return 0
    if not stats:
        print(f"campaign {args.campaign_id}: no calls recorded", file=out)
        return 0
    calls = stats.get("calls", 0)
    print(f"campaign {args.campaign_id}", file=out)
    print(f"  calls          {calls}", file=out)
    for key in sorted(k for k in stats if k.startswith("outcome:")):
        share = stats[key] / calls * 100 if calls else 0.0
        print(f"  {key.removeprefix('outcome:'):<14} {stats[key]}  ({share:.0f}%)", file=out)
    print(f"  do not call    {stats.get('dnc', 0)}", file=out)
    print(f"  total duration {stats.get('duration_ms', 0) / 1000:.1f}s", file=out)
    print(f"  total cost     ${stats.get('cost_micro_usd', 0) / 1e6:.4f}", file=out)
    return 0

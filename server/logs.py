"""Structured logging: ``key=value`` lines (default) or JSON lines.

Every record carries the current call id, taken from the ``call_id`` context
variable (trio tasks inherit the context of the task that spawned them, so
setting it once at the top of a call tags everything the call does). Records
outside a call show ``call_id=-``.

Structured fields are passed as ``extra={"fields": {...}}`` or with
:func:`log_event`. Phone numbers must go through :func:`mask_phone` first;
credentials and URLs that may carry tokens are never passed at all.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

call_id: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")

_RESERVED = frozenset(("ts", "level", "logger", "call_id", "msg"))


def mask_phone(number: object) -> str:
    """Hide all but the last four digits: ``"+919876543210"`` → ``"******3210"``.

    Non-digits are dropped before masking; four digits or fewer are masked
    entirely (too short to be a safe suffix); ``None``/empty gives ``""``.
    """
    digits = "".join(ch for ch in str(number or "") if ch.isdigit())
    if not digits:
        return ""
    if len(digits) <= 4:
        return "*" * len(digits)
    return "******" + digits[-4:]


def _iso_utc(created: float) -> str:
    """``2026-11-24T04:36:25.123Z`` (UTC, milliseconds)."""
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (
        f".{int((created - seconds) * 1000):03d}Z"
    )


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": _iso_utc(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "call_id": getattr(record, "call_id", call_id.get()),
        "msg": record.getMessage(),
    }
    extra = getattr(record, "fields", None)
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            out[f"f_{key}" if key in _RESERVED else str(key)] = value
    if record.exc_info and record.exc_info[0] is not None:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


def _kv_value(value: object) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    if text == "" or any(ch in text for ch in ' ="\n\t'):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=info logger=server.call call_id=ab12 msg="call ended" k=v``."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_kv_value(value)}" for key, value in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line; non-JSON values are rendered with ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str, separators=(",", ":"))


class CallIdFilter(logging.Filter):
    """Stamp the call id at the moment of logging (handlers may run later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = call_id.get()
        return True


def configure_logging(
    *, json_lines: bool = False, level: str | int = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Install one handler on the root logger (replacing earlier ones ours added)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    handler.addFilter(CallIdFilter())
    handler.set_name("voicebot")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "voicebot":
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # trio-websocket logs every frame at DEBUG; keep it quiet unless asked.
    logging.getLogger("trio-websocket").setLevel(logging.WARNING)
    return handler


def log_event(logger: logging.Logger, level: int, message: str, **fields: object) -> None:
    """Log ``message`` with structured ``fields`` (cheap when the level is off)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"fields": fields})

"""Structured logging: ``key=value`` lines (default) or JSON lines.

Every record carries the current call id, taken from the ``call_id`` context
variable (trio tasks inherit the context of the task that spawned them, so
setting it once at the top of a call tags everything the call does). Records
outside a call show ``call_id=-``.

A worker of ``voicebot serve --workers N`` stamps every line with its index
(``worker=0`` after ``logger``), so the workers' interleaved lines on one
stderr can be told apart.

Structured fields are passed as ``extra={"fields": {...}}`` or with
:func:`log_event`. Phone numbers must go through :func:`mask_phone` first;
credentials and URLs that may carry tokens are never passed at all. Whatever a
peer sent may be a field value: every string value is cut at 256 characters,
and in ``key=value`` lines control characters are escaped (``server.redact.
log_safe``), so one value can never forge or break a line; JSON lines escape
everything outside ASCII (U+2028, U+2029 and NEL included).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from server.redact import MAX_LOG_VALUE, log_safe, mask_phone

__all__ = ["call_id", "configure_logging", "log_event", "mask_phone"]

call_id: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")

_RESERVED = frozenset(("ts", "level", "logger", "call_id", "msg"))


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
    }
    worker = getattr(record, "worker", None)
    if worker is not None:
        out["worker"] = worker
    out |= {
        "call_id": getattr(record, "call_id", call_id.get()),
        "msg": record.getMessage(),
    }
    extra = getattr(record, "fields", None)
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            if isinstance(value, str) and len(value) > MAX_LOG_VALUE:
                value = f"{value[:MAX_LOG_VALUE]}…(+{len(value) - MAX_LOG_VALUE} chars)"
            reserved = key in _RESERVED or (key == "worker" and worker is not None)
            out[f"f_{log_safe(key, 64)}" if reserved else log_safe(key, 64)] = value
    if record.exc_info and record.exc_info[0] is not None:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


#: How much of the message and of a traceback a ``key=value`` line keeps
#: (field values were cut to ``MAX_LOG_VALUE`` already, in ``_fields``).
_LIMITS = {"msg": 2048, "exc": 16384}
_NO_CUT = 1 << 20


def _kv_value(key: str, value: object) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = log_safe(value, _LIMITS.get(key, _NO_CUT))
    if text == "" or any(ch in text for ch in ' ="'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=info logger=server.calls.lifecycle call_id=ab12 msg="call ended" k=v``."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_kv_value(key, value)}"
                        for key, value in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line; non-JSON values are rendered with ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str, separators=(",", ":"))


class CallIdFilter(logging.Filter):
    """Stamp the call id at the moment of logging (handlers may run later), and
    the worker index when this process is a worker."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = call_id.get()
        if self.worker is not None:
            record.worker = self.worker
        return True


def configure_logging(
    *, json_lines: bool = False, level: str | int = "INFO", stream: TextIO | None = None,
    worker: int | None = None,
) -> logging.Handler:
    """Install one handler on the root logger (replacing earlier ones ours added).

    ``worker``: this process is that worker of ``voicebot serve --workers N``.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    handler.addFilter(CallIdFilter(worker))
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


def log_event(logger: logging.Logger, level: int, message: str, *,
              exc_info: BaseException | None = None, **fields: object) -> None:
    """Log ``message`` with structured ``fields`` (cheap when the level is off);
    ``exc_info`` adds that exception's traceback."""
    if logger.isEnabledFor(level):
        logger.log(level, message, exc_info=exc_info, extra={"fields": fields})

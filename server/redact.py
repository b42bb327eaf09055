"""What may leave the process: masked phone numbers, checked identifiers, log-safe text.

Pure functions (``wire_id`` also logs what it replaces), used by the logs, the
call lifecycle, the control port and the session store, so that one rule holds
everywhere:

* **Phone numbers** are shown as ``******1234``: six stars and the last four
  digits, whatever the number's length (the width does not reveal the digit
  count). ``mask_phone`` masks a value known to be a number (``from``/``to``);
  ``mask_phone_values`` masks the values of a mapping (custom parameters, URL
  query) that *look like* phone numbers: 7 to 15 digits, optionally with a
  leading ``+`` and spaces, dashes, dots or brackets between them.
* **Identifiers** from the wire (``call_sid``, ``stream_sid``, ``lead_id``,
  ``campaign_id``) must match ``[A-Za-z0-9._-]{1,128}``: they become Redis key
  parts and log fields. ``checked_id`` replaces anything else by a generated id;
  ``wire_id``, the rule both the call (``start``) and the control port
  (``/exotel/url``) apply, also replaces one that looks like a phone number and
  logs the original masked (or escaped and cut).
* **Log values** are made safe by ``log_safe``: control characters (C0, DEL, C1,
  and the Unicode line/paragraph separators) are escaped as ``\\xNN``/``\\uNNNN``
  and the text is cut at ``MAX_LOG_VALUE`` characters with a marker.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping

__all__ = [
    "ID_PATTERN",
    "MAX_LOG_VALUE",
    "checked_id",
    "log_safe",
    "looks_like_phone",
    "mask_phone",
    "mask_phone_values",
    "printable",
    "wire_id",
]

#: Wire identifiers that may become key parts and log fields.
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
#: Longest value a log line carries (longer ones are cut, with a marker).
MAX_LOG_VALUE = 256

_PHONE = re.compile(r"\+?[\d\s().-]{7,24}")
_MASK = "******"
# C0 controls, DEL, C1 controls (NEL is U+0085), and the separators that some
# readers treat as line breaks (U+2028, U+2029).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def mask_phone(number: object) -> str:
    """``"+919876543210"`` → ``"******3210"``; ``""`` for no number.

    Non-digits are dropped first. Four digits or fewer are hidden entirely
    (``"******"``): too short to be a safe suffix.
    """
    digits = "".join(ch for ch in str(number or "") if ch.isascii() and ch.isdigit())
    if not digits:
        return ""
    return _MASK + (digits[-4:] if len(digits) > 4 else "")


def looks_like_phone(value: str) -> bool:
    """True for 7–15 digits with an optional ``+`` and separators between them."""
    if not _PHONE.fullmatch(value.strip()):
        return False
    digits = sum(ch.isdigit() for ch in value)
    return 7 <= digits <= 15


def mask_phones_in_text(text: str) -> str:
    """``text`` with every run that looks like a phone number (7–15 digits, with
    separators) masked as :func:`mask_phone` does: for transcripts in logs."""
    def masked(match: re.Match[str]) -> str:
        run = match.group(0)
        if not 7 <= sum(ch.isdigit() for ch in run) <= 15:
            return run
        body = run.strip(" .-(")  # separators around it are not part of the number
        start = run.index(body)
        return run[:start] + mask_phone(body) + run[start + len(body):]
    return _PHONE.sub(masked, text)


def mask_phone_values(values: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``values`` with every value that looks like a phone number masked."""
    return {key: mask_phone(value) if looks_like_phone(value) else value
            for key, value in values.items()}


def checked_id(value: str | None, *, kind: str) -> tuple[str, bool]:
    """``(value, True)`` when ``value`` is a valid identifier, else a generated
    ``"<kind>-<16 hex>"`` and ``False`` (the caller logs the original with
    ``log_safe``). ``None`` and ``""`` count as invalid."""
    if value and ID_PATTERN.fullmatch(value):
        return value, True
    return f"{kind}-{secrets.token_hex(8)}", False


def wire_id(value: str, *, kind: str, log: logging.Logger) -> str:
    """The id a ``kind`` value from the wire is recorded (and logged) under:
    ``value`` itself if it is a valid identifier and does not look like a phone
    number, else a generated ``"<kind>-<16 hex>"``. A replaced non-empty value
    is logged once as a warning on ``log``, the original masked (a phone
    number) or escaped and cut to 64 characters."""
    if looks_like_phone(value):
        used, _ = checked_id(None, kind=kind)
        _warn(log, "phone number as an identifier replaced",
              {"kind": kind, "given": mask_phone(value), "used": used})
        return used
    used, ok = checked_id(value, kind=kind)
    if not ok and value:
        _warn(log, "invalid identifier replaced",
              {"kind": kind, "given": log_safe(value, 64), "used": used})
    return used


def _warn(log: logging.Logger, message: str, fields: dict[str, str]) -> None:
    # server.logs.log_event's shape (that module imports this one).
    if log.isEnabledFor(logging.WARNING):
        log.warning(message, extra={"fields": fields})


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control characters escaped, except newlines and tabs: for
    terminal output, where a stored value must not move the cursor or recolour."""
    return _UNSAFE.sub(lambda m: m.group() if m.group() in "\n\t" else _escape(m), text)


def log_safe(value: object, limit: int = MAX_LOG_VALUE) -> str:
    """``value`` as text fit for one log line: control characters escaped, at
    most ``limit`` characters of the original, then ``…(+N chars)``."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    text = _UNSAFE.sub(_escape, text)
    return f"{text}…(+{cut} chars)" if cut > 0 else text

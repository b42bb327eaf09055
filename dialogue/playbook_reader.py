"""Reading a playbook's TOML tables while collecting every issue (never raising)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import TypeVar

from dialogue.exceptions import PlaybookIssue
from dialogue.templates import TemplateText, parse_template

__all__ = ["Reader"]

T = TypeVar("T")


class Reader:
    """Collects issues while reading a TOML document; never raises."""

    def __init__(self) -> None:
        self.issues: list[PlaybookIssue] = []

    def error(self, location: str, message: str) -> None:
        self.issues.append(PlaybookIssue(location, message))

    def table(
        self, data: Mapping[str, object], key: str, loc: str, known: frozenset[str] | None,
        *, required: bool = True,
    ) -> Mapping[str, object]:
        where = f"{loc}.{key}" if loc else key
        value = data.get(key)
        if value is None:
            if required:
                self.error(where, "missing required table")
            return {}
        if not isinstance(value, Mapping):
            self.error(where, "expected a table")
            return {}
        if known is not None:
            for name in value:
                if name not in known:
                    self.error(f"{where}.{name}", f"unknown key (expected one of {sorted(known)})")
        return value

    def value(
        self,
        data: Mapping[str, object],
        key: str,
        loc: str,
        kind: type[T],
        default: T | None = None,
    ) -> T | None:
        """``data[key]`` checked against ``kind`` (ints accepted as floats);
        ``default`` when absent, and a "missing" issue when there is no default."""
        where = f"{loc}.{key}"
        value = data.get(key)
        if value is None:
            if default is None:
                self.error(where, "missing required key")
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.error(where, f"expected {kind.__name__}, got {type(value).__name__}")
            return default
        return value

    def number(self, data: Mapping[str, object], key: str, loc: str, default: int) -> int:
        """An optional int setting that must be at least 1."""
        value = self.value(data, key, loc, int, default)
        if value is None or value < 1:
            self.error(f"{loc}.{key}", "must be at least 1")
            return default
        return value

    def text(self, raw: object, where: str, allowed: frozenset[str]) -> TemplateText | None:
        if not isinstance(raw, str) or not raw.strip():
            self.error(where, "expected a non-empty string")
            return None
        try:
            parsed = parse_template(raw)
        except ValueError as exc:
            self.error(where, str(exc))
            return None
        for name in sorted(parsed.variables - allowed):
            hint = " (only in callback confirmations)" if name == "callback_time" else ""
            self.error(where, f"unknown variable {{{name}}}{hint}")
        return parsed

    def texts(self, raw: object, where: str, allowed: frozenset[str]) -> tuple[TemplateText, ...]:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            self.error(where, "expected at least one text")
        parsed = [self.text(item, f"{where}[{i}]" if isinstance(raw, list) else where, allowed)
                  for i, item in enumerate(items)]
        return tuple(p for p in parsed if p is not None)

    def clock(self, raw: object, where: str) -> time | None:
        if isinstance(raw, str):
            try:
                return time.fromisoformat(raw)
            except ValueError:
                pass
        self.error(where, f"expected a time like \"09:00\", got {raw!r}")
        return None

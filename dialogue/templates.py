"""Playbook template text: literal text with ``{name}`` fields, parsed once at load."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["TemplateText", "parse_template"]


@dataclass(frozen=True, slots=True)
class TemplateText:
    """A template parsed at load: literal text and variable names, alternating."""

    source: str
    parts: tuple[tuple[str, str | None], ...]

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(name for _, name in self.parts if name is not None)

    def render(self, values: Mapping[str, str]) -> str:
        return "".join(
            literal if name is None else literal + values[name] for literal, name in self.parts
        )


def parse_template(text: str) -> TemplateText:
    """Split ``text`` at ``{name}`` fields; raises ``ValueError`` on bad braces or
    on format specs/conversions/attribute access (templates are plain names)."""
    parts: list[tuple[str, str | None]] = []
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"bad braces: {exc} (write {{{{ and }}}} for literal braces)") from exc
    for literal, name, spec, conversion in fields:
        if name is not None and (spec or conversion or not name.isidentifier()):
            raise ValueError(f"bad placeholder {{{name}}}: only {{name}} is allowed")
        parts.append((literal, name))
    return TemplateText(text, tuple(parts))

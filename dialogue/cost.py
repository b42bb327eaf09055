"""What a call costs, from its usage counters and a price list.

Prices live in configuration (a playbook's ``[prices]`` section, or any TOML
table with the same keys), never in code; ``Prices()`` holds the seed figures
from PROTOCOLS.md ("Prices") so a report is possible before anyone configures
anything. Amounts are USD floats (fractions of a cent matter per call; nothing
here is an invoice). INR appears only when ``usd_to_inr`` is configured.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from dialogue.exceptions import PlaybookError, PlaybookIssue


@dataclass(frozen=True, slots=True)
class Prices:
    """Vendor prices. Keys in TOML are the field names."""

    deepgram_per_minute_usd: float = 0.0125
    openai_input_per_million_usd: float = 0.15
    openai_output_per_million_usd: float = 0.60
    elevenlabs_per_thousand_chars_usd: float = 0.30
    usd_to_inr: float | None = None

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object], *, location: str = "prices"
    ) -> tuple[Prices | None, list[PlaybookIssue]]:
        """Read a TOML table; missing keys keep their defaults. Returns every issue
        (unknown key, non-number, negative) instead of the first one."""
        known = {f.name for f in fields(cls)}
        issues: list[PlaybookIssue] = []
        values: dict[str, float] = {}
        for key, value in data.items():
            where = f"{location}.{key}"
            if key not in known:
                expected = f"unknown key (expected one of {sorted(known)})"
                issues.append(PlaybookIssue(where, expected))
            elif isinstance(value, bool) or not isinstance(value, int | float):
                issues.append(PlaybookIssue(where, "expected a number"))
            elif value < 0 or (key == "usd_to_inr" and value == 0):
                issues.append(PlaybookIssue(where, "must be positive"))
            else:
                values[key] = float(value)
        if issues:
            return None, issues
        return cls(**values), []


def load_prices(path: str | Path, *, section: str = "prices") -> Prices:
    """Prices from the ``[section]`` table of a TOML file (a playbook or a config
    file). A file without that table yields the defaults."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        issue = PlaybookIssue("", f"not valid TOML: {exc}")
        raise PlaybookError([issue], source=str(path)) from exc
    table = document.get(section, {})
    if not isinstance(table, Mapping):
        raise PlaybookError([PlaybookIssue(section, "expected a table")], source=str(path))
    prices, issues = Prices.from_mapping(table, location=section)
    if prices is None:
        raise PlaybookError(issues, source=str(path))
    return prices


@dataclass(frozen=True, slots=True)
class Usage:
    """What one call (or a part of it) consumed: the one usage record that the
    vendor clients' counters produce, the cost model prices and the store keeps.
    Counters only grow; ``+`` adds two usages. ``llm_requests`` counts chat/JSON
    requests that reached the vendor, retries included (not priced: a count for
    reports)."""

    stt_seconds: float = 0.0
    llm_input_tokens: int = 0
    llm_output_tokens: int = 0
    tts_characters: int = 0
    llm_requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.stt_seconds + other.stt_seconds,
            self.llm_input_tokens + other.llm_input_tokens,
            self.llm_output_tokens + other.llm_output_tokens,
            self.tts_characters + other.tts_characters,
            self.llm_requests + other.llm_requests,
        )

    @classmethod
    def from_counters(cls, counters: Mapping[str, object]) -> Usage:
        """Build from a session's counter mapping (keys as the field names; values
        may be strings, as Redis hashes return them). Absent keys count as zero;
        other keys are ignored, so a whole session snapshot can be passed."""

        def number(key: str) -> float:
            raw = counters.get(key, 0)
            if isinstance(raw, bytes):
                raw = raw.decode()
            return float(raw) if isinstance(raw, int | float | str) else 0.0

        return cls(
            stt_seconds=number("stt_seconds"),
            llm_input_tokens=int(number("llm_input_tokens")),
            llm_output_tokens=int(number("llm_output_tokens")),
            tts_characters=int(number("tts_characters")),
            llm_requests=int(number("llm_requests")),
        )


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """A call's cost per vendor and in total (USD; INR when a rate is known)."""

    stt_usd: float
    llm_usd: float
    tts_usd: float
    usd_to_inr: float | None

    @property
    def total_usd(self) -> float:
        return self.stt_usd + self.llm_usd + self.tts_usd

    @property
    def total_inr(self) -> float | None:
        return None if self.usd_to_inr is None else self.total_usd * self.usd_to_inr

    def report(self, usage: Usage) -> str:
        """A short plain-text report, one vendor a line."""
        lines = [
            f"stt  {usage.stt_seconds / 60:8.2f} min      ${self.stt_usd:.4f}",
            f"llm  {usage.llm_input_tokens:6d} in / {usage.llm_output_tokens:d} out  "
            f"${self.llm_usd:.4f}",
            f"tts  {usage.tts_characters:6d} chars    ${self.tts_usd:.4f}",
            f"total                 ${self.total_usd:.4f}",
        ]
        if self.total_inr is not None:
            lines.append(f"total                 ₹{self.total_inr:.2f}")
        return "\n".join(lines)


def call_cost(usage: Usage, prices: Prices) -> CostBreakdown:
    """Price ``usage``. Deepgram bills per minute of audio streamed (pro rata here),
    OpenAI per token, ElevenLabs per character sent."""
    return CostBreakdown(
        stt_usd=usage.stt_seconds / 60.0 * prices.deepgram_per_minute_usd,
        llm_usd=(
            usage.llm_input_tokens * prices.openai_input_per_million_usd
            + usage.llm_output_tokens * prices.openai_output_per_million_usd
        )
        / 1_000_000,
        tts_usd=usage.tts_characters / 1000.0 * prices.elevenlabs_per_thousand_chars_usd,
        usd_to_inr=prices.usd_to_inr,
    )

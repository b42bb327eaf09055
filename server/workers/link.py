"""Parent ↔ worker, sans-IO: who a worker is, and what it tells its parent.

The parent starts each worker as ``python -m server serve`` with its settings
in the environment (``server.config.config_environment``) and one more
variable, ``VOICEBOT_WORKER`` (``WorkerIdentity``: index, the parent's pid,
the descriptor of the worker's end of a socket pair, the shared call-slot
file). Only a parent sets it; an operator never does.

Over the socket pair the worker writes one JSON object per line:

- ``StatusReport`` every ``REPORT_INTERVAL`` (and at once when it starts
  listening): ready or not, live calls, and its Prometheus registry as
  ``MetricFamily`` records (the parent merges them into its ``/metrics``);
- ``SpillNotice`` when it wrote outcomes to the spill file: the parent is the
  one process that replays it.

The parent writes one kind of line, ``Announce``: its ``/exotel/url`` answered
for a call (the custom parameters and sample rate), so that every worker can
render that call's greeting before the socket lands on one of them
(``server.handlers.pipeline.announce``; ``encode_announce``/
``decode_announce``). Otherwise the worker reads only to notice the parent's
death (end of file). Lines are capped at ``MAX_LINE_BYTES``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.registry import Collector

from server.exceptions import ConfigError
from server.workers.exceptions import LinkError

#: The environment variable that makes ``voicebot serve`` a worker.
WORKER_ENV = "VOICEBOT_WORKER"
#: Seconds between a worker's status reports.
REPORT_INTERVAL = 1.0
#: The longest line a worker may send (a registry renders to tens of KiB).
MAX_LINE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """What a worker is told by its parent (``VOICEBOT_WORKER``, JSON)."""

    index: int
    parent_pid: int
    link_fd: int
    call_slots: str | None = None  # the shared slot file, when --max-calls is set

    def to_env(self) -> str:
        return json.dumps({"index": self.index, "parent_pid": self.parent_pid,
                           "link_fd": self.link_fd, "call_slots": self.call_slots})

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WorkerIdentity | None:
        """The identity in ``environ``; ``None`` when this is no worker.

        Raises ``ConfigError`` for a value no parent would have written.
        """
        text = environ.get(WORKER_ENV)
        if text is None:
            return None
        try:
            data = json.loads(text)
            identity = cls(index=data["index"], parent_pid=data["parent_pid"],
                           link_fd=data["link_fd"], call_slots=data.get("call_slots"))
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{WORKER_ENV} is malformed (it is set by voicebot serve "
                              "--workers for its workers only)") from exc
        numbers = (identity.index, identity.parent_pid, identity.link_fd)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers) \
                or not isinstance(identity.call_slots, str | None):
            raise ConfigError(f"{WORKER_ENV} is malformed")
        return identity


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """One metric family as a registry collects it (``prometheus_client``'s
    ``Metric``: a counter's name has no ``_total``), samples as
    ``(name, labels, value)``."""

    name: str
    type: str
    documentation: str
    unit: str
    samples: tuple[tuple[str, Mapping[str, str], float], ...]


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A worker's state: accepting calls (not draining), live calls, metrics."""

    ready: bool
    active_calls: int
    families: tuple[MetricFamily, ...]


@dataclass(frozen=True, slots=True)
class SpillNotice:
    """The worker wrote outcomes to the spill file; the parent replays it."""


LinkMessage = StatusReport | SpillNotice

#: The most custom parameters an ``Announce`` carries (Exotel passes three).
MAX_ANNOUNCED_PARAMETERS = 3
#: The longest announced parameter value (Exotel's limit).
MAX_ANNOUNCED_VALUE_CHARS = 256


@dataclass(frozen=True, slots=True)
class Announce:
    """Parent → worker: ``/exotel/url`` was answered for a call with these
    custom parameters (ids checked by the parent) at ``sample_rate``."""

    parameters: Mapping[str, str]
    sample_rate: int


def encode_announce(announce: Announce) -> bytes:
    """One line (newline included)."""
    data = {"kind": "announce", "parameters": dict(announce.parameters),
            "sample_rate": announce.sample_rate}
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def decode_announce(line: bytes) -> Announce:
    """The announce on one line (without its newline); ``LinkError`` if malformed."""
    try:
        data = json.loads(line)
        if data["kind"] != "announce":
            raise ValueError(f"unknown kind {data['kind']!r}")
        parameters, rate = data["parameters"], data["sample_rate"]
        if not (isinstance(parameters, dict) and len(parameters) <= MAX_ANNOUNCED_PARAMETERS
                and all(isinstance(k, str) and isinstance(v, str)
                        and len(v) <= MAX_ANNOUNCED_VALUE_CHARS
                        for k, v in parameters.items())):
            raise ValueError("malformed parameters")
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
            raise ValueError("malformed sample rate")
        return Announce(parameters, rate)
    except (ValueError, TypeError, KeyError) as exc:
        raise LinkError(f"unreadable parent message: {exc}") from exc


def collect_families(registry: Collector) -> tuple[MetricFamily, ...]:
    """A registry's families, as a status report carries them."""
    return tuple(
        MetricFamily(metric.name, metric.type, metric.documentation, metric.unit,
                     tuple((s.name, dict(s.labels), float(s.value)) for s in metric.samples))
        for metric in registry.collect())


def encode_message(message: LinkMessage) -> bytes:
    """One line (newline included)."""
    data: dict[str, Any]
    if isinstance(message, SpillNotice):
        data = {"kind": "spilled"}
    else:
        data = {"kind": "status", "ready": message.ready, "active_calls": message.active_calls,
                "families": [{"name": f.name, "type": f.type, "help": f.documentation,
                              "unit": f.unit, "samples": [list(s) for s in f.samples]}
                             for f in message.families]}
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def decode_message(line: bytes) -> LinkMessage:
    """The message on one line (without its newline); ``LinkError`` if malformed."""
    try:
        data = json.loads(line)
        kind = data["kind"]
        if kind == "spilled":
            return SpillNotice()
        if kind != "status":
            raise ValueError(f"unknown kind {kind!r}")
        ready, active = data["ready"], data["active_calls"]
        if not isinstance(ready, bool) or not isinstance(active, int):
            raise ValueError("ready/active_calls of the wrong type")
        return StatusReport(ready, active, tuple(_family(f) for f in data["families"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise LinkError(f"unreadable worker message: {exc}") from exc


def _family(data: Mapping[str, Any]) -> MetricFamily:
    samples = []
    for name, labels, value in data["samples"]:
        if not (isinstance(name, str) and isinstance(labels, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
                and isinstance(value, int | float)):
            raise ValueError("malformed sample")
        samples.append((name, labels, float(value)))
    fields = (data["name"], data["type"], data["help"], data["unit"])
    if not all(isinstance(x, str) for x in fields):
        raise ValueError("malformed metric family")
    return MetricFamily(*fields, samples=tuple(samples))


class LineBuffer:
    """Splits a byte stream into lines of at most ``max_line`` bytes."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._pending = bytearray()
        self._skipping = False  # inside an over-long line: drop up to its end

    def feed(self, data: bytes) -> list[bytes | LinkError]:
        """The complete lines ``data`` finishes, in order; a line over the cap
        is dropped and stands in the list as a ``LinkError`` (once)."""
        self._pending += data
        *lines, rest = self._pending.split(b"\n")
        self._pending = bytearray(rest)
        complete: list[bytes | LinkError] = []
        for line in lines:
            if self._skipping:
                self._skipping = False  # the end of the over-long line
            elif len(line) > self.max_line:
                complete.append(self._too_long())
            else:
                complete.append(bytes(line))
        if len(self._pending) > self.max_line:
            self._pending.clear()
            if not self._skipping:
                self._skipping = True
                complete.append(self._too_long())
        return complete

    def _too_long(self) -> LinkError:
        return LinkError(f"worker message over {self.max_line} bytes dropped")

"""Seeded latency distributions for the simulators.

Each distribution is a small object with ``sample() -> float`` (seconds, never
negative). Seeding makes a benchmark or test run repeatable: the same seed gives
the same sequence of delays. :func:`parse_latency` reads the command-line form
``fixed:0.2``, ``uniform:0.1,0.3`` or ``lognormal:0.25,0.4`` (median, sigma),
optionally with ``@seed``: ``lognormal:0.25,0.4@7``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Protocol


class Latency(Protocol):
    def sample(self) -> float: ...


@dataclass(frozen=True)
class Fixed:
    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("latency must be >= 0")

    def sample(self) -> float:
        return self.seconds


@dataclass
class Uniform:
    low: float
    high: float
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError("need 0 <= low <= high")
        self._rng = random.Random(self.seed)

    def sample(self) -> float:
        return self._rng.uniform(self.low, self.high)


@dataclass
class LogNormal:
    """Heavy right tail, like real network/vendor latency. ``median`` in seconds;
    ``sigma`` is the spread of the underlying normal (0.3–0.6 is typical); samples
    are capped at ``cap`` so one draw cannot stall a benchmark."""

    median: float
    sigma: float
    seed: int = 0
    cap: float = 10.0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.median <= 0 or self.sigma < 0:
            raise ValueError("need median > 0 and sigma >= 0")
        self._rng = random.Random(self.seed)

    def sample(self) -> float:
        return min(self.cap, self._rng.lognormvariate(math.log(self.median), self.sigma))


def parse_latency(spec: str) -> Latency:
    """Parse ``kind:args[@seed]`` (see the module docstring)."""
    body, _, seed_text = spec.partition("@")
    kind, _, args_text = body.partition(":")
    seed = int(seed_text) if seed_text else 0
    try:
        args = [float(part) for part in args_text.split(",")] if args_text else []
        if kind == "fixed" and len(args) == 1:
            return Fixed(args[0])
        if kind == "uniform" and len(args) == 2:
            return Uniform(args[0], args[1], seed=seed)
        if kind == "lognormal" and len(args) == 2:
            return LogNormal(args[0], args[1], seed=seed)
    except ValueError as exc:
        raise ValueError(f"bad latency spec {spec!r}: {exc}") from exc
    raise ValueError(
        f"bad latency spec {spec!r}; use fixed:S, uniform:LO,HI or lognormal:MED,SIGMA"
    )

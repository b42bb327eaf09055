"""``python -m bench NAME [ARGS...]``: run one benchmark (or the budget check).

Each benchmark is a module ``bench.NAME`` with ``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "dsp": "bench.dsp",
    "vad": "bench.vad_quality",
    "resample_delay": "bench.resample_delay",
    "dialogue": "bench.dialogue",
    "sessions": "bench.sessions",
    "providers": "bench.providers",
    "local_engines": "bench.local_engines",
    "load": "bench.load",
    "ws": "bench.ws_server",
    "flood": "bench.flood",
    "calls": "bench.calls",
    "latency": "bench.latency",
    "endpointing": "bench.endpointing",
    "first_clause": "bench.first_clause",
    "budget": "bench.budget",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        print("benchmarks:", ", ".join(sorted(BENCHMARKS)))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; choose from {', '.join(sorted(BENCHMARKS))}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name])
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

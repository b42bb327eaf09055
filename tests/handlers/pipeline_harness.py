"""The in-process call harness the pipeline tests use; it lives in
``bench.inprocess`` so the whole-turn budget check runs the same calls."""

from bench.inprocess import IST, NOW, CallRun, Recorded, Sims, run_call, simulators

__all__ = ["IST", "NOW", "CallRun", "Recorded", "Sims", "run_call", "simulators"]

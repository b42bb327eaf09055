"""Benchmarks and the latency-budget check. Run as ``python -m bench NAME``."""

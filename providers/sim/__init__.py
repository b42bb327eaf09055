"""Loopback servers that speak each vendor's real wire protocol, with seeded,
injectable latency and faults. Used by tests and benchmarks."""

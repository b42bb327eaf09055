"""Loopback servers that speak each vendor's real wire protocol, with seeded,
injectable latency and faults. Used by tests and benchmarks.

Each simulator is as strict as the vendor it stands for and can produce the
failures the vendor is known to produce; the knobs are documented in each
module's docstring (:mod:`~providers.sim.deepgram_sim`,
:mod:`~providers.sim.elevenlabs_sim`, :mod:`~providers.sim.openai_sim`) and are
set in-process by the test that starts the simulator (``open_*_sim``)."""

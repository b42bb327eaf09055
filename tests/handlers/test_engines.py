"""The process's engines: with the local STT, decoders are loaded before serving."""

from __future__ import annotations

from providers.stt.local_decoders import DECODERS
from providers.usage import UsageCounter
from server.handlers.pipeline import EngineChoice, EngineSettings, open_engines
from server.handlers.pipeline.engines import local_stt_config


async def test_local_stt_decoders_are_loaded_before_the_first_calls() -> None:
    settings = EngineSettings(EngineChoice("local", "local", "none"),
                              local_phrases=("yes", "no", "call me later"), local_decoders=2)
    kind = local_stt_config(settings, 8000).decoder_kind
    async with open_engines(settings) as engines:
        assert DECODERS.idle(kind) >= 2
        loaded = DECODERS.loaded
        async with engines.open_stt("local", 8000, UsageCounter()), \
                engines.open_stt("local", 8000, UsageCounter()):
            pass
        assert DECODERS.loaded == loaded  # two calls at once: no decoder loaded

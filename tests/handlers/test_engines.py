"""The process's engines: with the local STT, decoders are loaded before serving;
the local voice's rate is a setting (the demo speaks faster); calls spread over
the LLM's HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import trio
import trio.testing

from providers.http import POOL_SHARDS
from providers.llm.base import TextDelta
from providers.sim.latency import Fixed
from providers.sim.openai_sim import open_openai_sim
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


async def _one(text: str) -> AsyncIterator[str]:
    yield text


async def test_a_faster_local_voice_speaks_in_less_time_under_its_own_cache_key() -> None:
    sentence = "Thank you! Roughly how much is your monthly electricity bill?"
    audio: dict[int, int] = {}
    voices: dict[int, str] = {}
    for rate in (165, 220):
        settings = EngineSettings(EngineChoice("local", "local", "none"), local_rate_wpm=rate,
                                  local_decoders=0)
        async with open_engines(settings) as engines, \
                engines.open_tts("local", 8000, UsageCounter()) as tts:
            audio[rate] = sum([len(chunk) async for chunk in tts.speak(_one(sentence))])
            voices[rate] = engines.voice("local")
    assert audio[220] < 0.85 * audio[165]
    assert voices[165] == "en-us"  # the default: the cache key it always had
    assert voices[220] != voices[165]  # no audio of one rate is played for the other


async def test_calls_take_the_http_clients_in_turn_and_each_keeps_its_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Eight calls' chat models land on the eight pools, and each call's second
    turn reuses the connection of its first: eight connections for sixteen
    requests (one pool for all would share one; no reuse would open sixteen)."""
    async with open_openai_sim(ttft=Fixed(0.1), canned={"hello": "Namaste!"}) as sim:
        environ = {"OPENAI_API_KEY": "sk-sim", "OPENAI_BASE_URL": sim.base_url}
        settings = EngineSettings.from_env(EngineChoice("local", "local", "openai"), environ)
        async with open_engines(settings) as engines:
            chats = [engines.chat(UsageCounter()) for _ in range(POOL_SHARDS)]
            for _turn in range(2):
                for chat in chats:
                    assert chat is not None
                    async with aclosing(chat.stream_chat(
                            [{"role": "user", "content": "hello"}])) as events:
                        texts = [e.text async for e in events if isinstance(e, TextDelta)]
                    assert "".join(texts) == "Namaste!"
    assert len(sim.requests) == 2 * POOL_SHARDS
    assert sim.connections == POOL_SHARDS

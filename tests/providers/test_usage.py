"""Usage counters: accumulate, their statistics are a frozen dialogue Usage that adds up."""

from __future__ import annotations

import dataclasses

import pytest

from dialogue.cost import Usage
from providers.config import DeepgramConfig, ElevenLabsConfig, OpenAIConfig, Secret
from providers.usage import UsageCounter


def test_counters_accumulate_and_snapshot_is_frozen() -> None:
    usage = UsageCounter()
    usage.add_stt_seconds(1.5)
    usage.add_stt_seconds(0.25)
    usage.add_llm_tokens(input_tokens=120, output_tokens=30)
    usage.add_llm_request()
    usage.add_tts_characters(42)
    snapshot = usage.statistics()
    assert snapshot == Usage(
        stt_seconds=1.75, llm_input_tokens=120, llm_output_tokens=30, llm_requests=1,
        tts_characters=42,
    )
    usage.add_tts_characters(8)
    assert snapshot.tts_characters == 42
    assert usage.statistics().tts_characters == 50
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.tts_characters = 0  # type: ignore[misc]


def test_snapshots_add_and_negative_amounts_are_refused() -> None:
    total = Usage(stt_seconds=1.0, llm_input_tokens=1) + Usage(
        stt_seconds=2.0, llm_output_tokens=5, tts_characters=3
    )
    assert total == Usage(
        stt_seconds=3.0, llm_input_tokens=1, llm_output_tokens=5, tts_characters=3
    )
    usage = UsageCounter()
    with pytest.raises(ValueError, match="negative"):
        usage.add_stt_seconds(-0.1)
    with pytest.raises(ValueError, match="negative"):
        usage.add_llm_tokens(input_tokens=-1, output_tokens=0)


def test_config_from_env_and_keys_never_in_repr() -> None:
    env = {
        "DEEPGRAM_URL": "ws://127.0.0.1:9001",
        "DEEPGRAM_API_KEY": "dg-secret-key",
        "OPENAI_BASE_URL": "http://127.0.0.1:9003/v1/",
        "OPENAI_API_KEY": "sk-secret",
        "ELEVENLABS_URL": "https://proxy.example:8443",
        "ELEVENLABS_API_KEY": "xi-secret",
        "ELEVENLABS_VOICE_ID": "voice1",
    }
    deepgram = DeepgramConfig.from_env(env, model="nova-3")
    openai = OpenAIConfig.from_env(env)
    eleven = ElevenLabsConfig.from_env(env)
    assert deepgram.url == "ws://127.0.0.1:9001"
    assert deepgram.model == "nova-3"
    assert deepgram.api_key.reveal() == "dg-secret-key"
    assert openai.base_url == "http://127.0.0.1:9003/v1"
    assert eleven.ws_url == "wss://proxy.example:8443"
    assert ElevenLabsConfig(url="http://127.0.0.1:1").ws_url == "ws://127.0.0.1:1"
    for config in (deepgram, openai, eleven):
        assert "secret" not in repr(config)
        assert "secret" not in str(config)
    assert DeepgramConfig.from_env({}).url == "wss://api.deepgram.com"
    assert OpenAIConfig.from_env({}).base_url == "https://api.openai.com/v1"
    assert not Secret("")

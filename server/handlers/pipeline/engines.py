"""Which STT, TTS and LLM a call uses, and opening them for one call.

Each vendor is used when its key is set (``DEEPGRAM_API_KEY``,
``ELEVENLABS_API_KEY``, ``OPENAI_API_KEY``, with their URL variables), else the
local engine: pocketsphinx for STT, espeak-ng for TTS, and no LLM (templates
only; an uncertain turn gets its fallback template). ``--stt``/``--tts``/
``--llm`` (``VOICEBOT_STT``/``VOICEBOT_TTS``/``VOICEBOT_LLM``) override the
choice; naming a vendor without its key is allowed (a local proxy or the
simulators need none) and logged.

``Engines`` holds what the process shares (the HTTP clients of the LLM, the
template audio cache); ``open_stt``/``open_tts``/``chat`` give one call its own
stream, session and chat model, all counting into the call's ``UsageCounter``.
Calls take the HTTP clients in turn (``providers.http.open_http_clients``: one
pool per call would lose keep-alive across calls, one for all is slow at 100+
calls); a call's chat model keeps its client.
The local engines are the fall-backs whatever the choice: a Deepgram stream
that stays down switches the call to pocketsphinx, a failed ElevenLabs reply is
spoken by espeak-ng.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Literal

import httpx

from providers.config import DeepgramConfig, ElevenLabsConfig, OpenAIConfig
from providers.http import open_http_clients
from providers.llm.base import ChatModel
from providers.llm.openai import OpenAIChat
from providers.stt.base import STTStream
from providers.stt.deepgram import open_deepgram
from providers.stt.local import LocalSTTConfig, open_local_stt, prewarm_local_stt
from providers.tts.base import TTSSession
from providers.tts.elevenlabs import open_elevenlabs
from providers.tts.local import LocalTTSConfig, open_local_tts
from providers.usage import UsageCounter
from server.exceptions import ConfigError
from server.handlers.pipeline.audio_cache import AudioCache

SttName = Literal["deepgram", "local", "whisper"]
TtsName = Literal["elevenlabs", "local"]
LlmName = Literal["openai", "none"]
STT_NAMES: tuple[SttName, ...] = ("deepgram", "local", "whisper")
TTS_NAMES: tuple[TtsName, ...] = ("elevenlabs", "local")
LLM_NAMES: tuple[LlmName, ...] = ("openai", "none")

#: ElevenLabs PCM output formats by call rate (no resampling on these routes).
_ELEVENLABS_FORMATS = {8000: "pcm_8000", 16000: "pcm_16000", 24000: "pcm_24000"}


@dataclass(frozen=True, slots=True)
class EngineChoice:
    stt: SttName
    tts: TtsName
    llm: LlmName

    def describe(self) -> str:
        return f"stt={self.stt} tts={self.tts} llm={self.llm}"


def choose_engines(
    stt: str | None = None, tts: str | None = None, llm: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> EngineChoice:
    """The engines for this process: the flags, else the environment's keys
    (module docstring). ``ConfigError`` for an unknown name."""
    env = os.environ if environ is None else environ
    stt = stt or env.get("VOICEBOT_STT") or ("deepgram" if env.get("DEEPGRAM_API_KEY")
                                              else "local")
    tts = tts or env.get("VOICEBOT_TTS") or ("elevenlabs" if env.get("ELEVENLABS_API_KEY")
                                              else "local")
    llm = llm or env.get("VOICEBOT_LLM") or ("openai" if env.get("OPENAI_API_KEY") else "none")
    for name, value, known in (("stt", stt, STT_NAMES), ("tts", tts, TTS_NAMES),
                               ("llm", llm, LLM_NAMES)):
        if value not in known:
            raise ConfigError(f"--{name} must be one of {', '.join(known)}, not {value!r}")
    return EngineChoice(stt, tts, llm)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """The vendor configurations (from the environment) and the local engines'."""

    choice: EngineChoice
    deepgram: DeepgramConfig = field(default_factory=DeepgramConfig)
    elevenlabs: ElevenLabsConfig = field(default_factory=ElevenLabsConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    local_voice: str = "en-us"
    #: espeak-ng's speaking rate, words per minute (``voicebot demo`` speaks faster)
    local_rate_wpm: int = LocalTTSConfig.rate_wpm
    #: what the local recognizer listens for (the playbook's ``[listen] phrases``;
    #: empty: pocketsphinx's general English model)
    local_phrases: tuple[str, ...] = ()
    #: pocketsphinx decoders loaded before serving when the STT is local (a call
    #: takes a ready one: loading stops the event loop, ``providers.stt.local_decoders``)
    local_decoders: int = 2

    @classmethod
    def from_env(cls, choice: EngineChoice,
                 environ: Mapping[str, str] | None = None) -> EngineSettings:
        return cls(choice, DeepgramConfig.from_env(environ), ElevenLabsConfig.from_env(environ),
                   OpenAIConfig.from_env(environ))

    def missing_keys(self) -> list[str]:
        """Vendors chosen without a key (fine for a proxy or the simulators)."""
        missing = []
        if self.choice.stt == "deepgram" and not self.deepgram.api_key:
            missing.append("DEEPGRAM_API_KEY")
        if self.choice.tts == "elevenlabs" and not self.elevenlabs.api_key:
            missing.append("ELEVENLABS_API_KEY")
        if self.choice.llm == "openai" and not self.openai.api_key:
            missing.append("OPENAI_API_KEY")
        return missing


class Engines:
    """The process's engines: per-call sessions, the shared HTTP clients and cache."""

    def __init__(self, settings: EngineSettings, http: Sequence[httpx.AsyncClient],
                 cache: AudioCache) -> None:
        self.settings = settings
        self.choice = settings.choice
        self.http = tuple(http)
        self.cache = cache
        self._next_client = itertools.cycle(self.http)

    def open_stt(self, name: SttName, sample_rate: int, usage: UsageCounter,
                 tag: str | None = None) -> AbstractAsyncContextManager[STTStream]:
        """One call's recognition stream on engine ``name`` (PCM16 at the call's rate).
        ``tag`` labels the vendor's usage (the call's campaign; default: the
        configured tag)."""
        if name == "deepgram":
            config = replace(self.settings.deepgram, sample_rate=sample_rate,
                             encoding="linear16", tag=tag or self.settings.deepgram.tag)
            return open_deepgram(config, usage)
        if name == "whisper":
            from providers.stt.whisper import WhisperSTTConfig, open_whisper_stt  # an extra

            return open_whisper_stt(WhisperSTTConfig(sample_rate=sample_rate))
        return open_local_stt(local_stt_config(self.settings, sample_rate))

    def open_tts(self, name: TtsName, sample_rate: int,
                 usage: UsageCounter) -> AbstractAsyncContextManager[TTSSession]:
        """One call's synthesis session; audio comes at ``session.sample_rate``."""
        if name == "elevenlabs":
            output = _ELEVENLABS_FORMATS.get(sample_rate, "pcm_16000")
            return open_elevenlabs(replace(self.settings.elevenlabs, output_format=output), usage)
        return open_local_tts(LocalTTSConfig(sample_rate=sample_rate,
                                             voice=self.settings.local_voice,
                                             rate_wpm=self.settings.local_rate_wpm))

    def voice(self, name: TtsName) -> str:
        """The voice a TTS engine speaks with (part of the audio cache key; the
        local one with its rate when that is not the default)."""
        if name == "elevenlabs":
            return self.settings.elevenlabs.voice_id
        rate = self.settings.local_rate_wpm
        voice = self.settings.local_voice
        return voice if rate == LocalTTSConfig.rate_wpm else f"{voice} at {rate} wpm"

    def chat(self, usage: UsageCounter) -> ChatModel | None:
        """One call's chat model, or ``None`` when no LLM is configured."""
        if self.choice.llm == "none" or not self.http:
            return None
        return OpenAIChat(next(self._next_client), self.settings.openai, usage)


def local_stt_config(settings: EngineSettings, sample_rate: int) -> LocalSTTConfig:
    return LocalSTTConfig(sample_rate=sample_rate, phrases=settings.local_phrases)


@asynccontextmanager
async def open_engines(settings: EngineSettings,
                       cache: AudioCache | None = None) -> AsyncIterator[Engines]:
    """The process's engines for the duration of the block; with the local STT,
    ``local_decoders`` decoders are loaded first."""
    cache = cache or AudioCache()
    if settings.choice.stt == "local" and settings.local_decoders:
        await prewarm_local_stt(local_stt_config(settings, 8000), settings.local_decoders)
    if settings.choice.llm == "none":
        yield Engines(settings, (), cache)
        return
    async with open_http_clients() as http:
        yield Engines(settings, http, cache)

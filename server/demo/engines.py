"""The demo's engines: local, or the vendor clients against the vendor simulators.

An ``EngineSetup`` opens what one demo call talks to and yields ``Engaged``: the
``EngineSettings`` for ``open_engines``, and ``hear`` — how to tell the STT what
a line typed during the call says (the Deepgram simulator hears scripts, not
audio; the local recognizer hears the audio itself).

``local_engines``: pocketsphinx listening for the playbook's ``[listen]
phrases`` and espeak-ng, faster than ``voicebot serve``'s (``BOT_RATE_WPM``);
no LLM unless ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set.
``simulated_engines``: ``python -m providers.sim`` in a process of its own
(production code never imports the simulators), the Deepgram simulator
scripted with the lines, the LLM answering every request with the product's
first facts; the Deepgram, ElevenLabs and OpenAI clients talk to it over
loopback as they would to the vendors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import trio

from dialogue import Playbook
from providers.config import DeepgramConfig, ElevenLabsConfig, OpenAIConfig, Secret
from server.exceptions import ConfigError
from server.handlers.pipeline import EngineChoice, EngineSettings
from server.handlers.pipeline.engines import LlmName
from server.telephony.softphone import Line

#: the demo call's campaign, also its vendors' usage tag (the Deepgram simulator
#: hears the script kept under it)
CAMPAIGN = "demo"
#: the bot's espeak-ng rate in the demo, words per minute (``voicebot serve``: 165):
#: quick but clear; the bot's lines take a quarter less time
BOT_RATE_WPM = 220
#: seconds the simulators' process gets to print its URLs
SIM_START_S = 30.0
_URL_KEYS = ("DEEPGRAM_URL", "OPENAI_BASE_URL", "ELEVENLABS_URL")


@dataclass(frozen=True, slots=True)
class Engaged:
    name: str  # "local" or "sim", for the printout and the report
    settings: EngineSettings
    hear: Callable[[str], Awaitable[None]]


EngineSetup = Callable[[Playbook, Sequence[Line]], AbstractAsyncContextManager[Engaged]]


async def _hears_audio(text: str) -> None:
    return None


@asynccontextmanager
async def local_engines(playbook: Playbook, lines: Sequence[Line]) -> AsyncIterator[Engaged]:
    llm: LlmName = "openai" if os.environ.get("OPENAI_API_KEY") or os.environ.get(
        "OPENAI_BASE_URL") else "none"
    # One call at a time: one decoder loaded before it (loading takes 0.15-0.35 s).
    yield Engaged("local", EngineSettings(
        EngineChoice("local", "local", llm), openai=OpenAIConfig.from_env(),
        local_rate_wpm=BOT_RATE_WPM, local_phrases=playbook.listen_phrases,
        local_decoders=1), _hears_audio)


def simulated_settings(playbook: Playbook, urls: dict[str, str]) -> EngineSettings:
    """The vendor clients pointed at simulators serving at ``urls``."""
    return EngineSettings(
        EngineChoice("deepgram", "elevenlabs", "openai"),
        DeepgramConfig(url=urls["DEEPGRAM_URL"]),
        ElevenLabsConfig(url=urls["ELEVENLABS_URL"], api_key=Secret("sim"), voice_id="en-us"),
        OpenAIConfig(base_url=urls["OPENAI_BASE_URL"]),
        local_phrases=playbook.listen_phrases)


def llm_answer(playbook: Playbook) -> str:
    """What the simulated LLM says to every request."""
    return " ".join(playbook.product.facts[:2])


@asynccontextmanager
async def simulated_engines(playbook: Playbook,
                            lines: Sequence[Line]) -> AsyncIterator[Engaged]:
    command = [sys.executable, "-m", "providers.sim", "--deepgram-port", "0",
               "--openai-port", "0", "--elevenlabs-port", "0", "--deepgram-script-stdin",
               "--openai-reply", llm_answer(playbook), "--deepgram-tag", CAMPAIGN]
    for line in lines:
        if line.text:
            command += ["--deepgram-script", line.text]
    process = await trio.lowlevel.open_process(command, stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE)
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        urls = await _read_urls(process.stdout)
        stdin = process.stdin

        async def hear(text: str) -> None:
            await stdin.send_all(text.replace("\n", " ").encode() + b"\n")

        yield Engaged("sim", simulated_settings(playbook, urls), hear)
    finally:
        with trio.CancelScope(shield=True):
            process.terminate()
            with trio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()


async def _read_urls(stdout: trio.abc.ReceiveStream) -> dict[str, str]:
    """``KEY=URL`` from the simulators' start-up lines."""
    urls: dict[str, str] = {}
    pending = b""
    with trio.move_on_after(SIM_START_S):
        while len(urls) < len(_URL_KEYS):
            chunk = await stdout.receive_some()
            if not chunk:
                break
            *done, pending = (pending + chunk).split(b"\n")
            for line in done:
                key, _, url = line.decode(errors="replace").rpartition(" ")[2].partition("=")
                if key in _URL_KEYS:
                    urls[key] = url.strip()
    missing = [key for key in _URL_KEYS if key not in urls]
    if missing:
        raise ConfigError(f"the vendor simulators did not start (no {', '.join(missing)})")
    return urls

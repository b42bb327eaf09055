"""One call through all three vendor clients while each vendor fails the way it
does live (issue 15's "Done when", at the providers level until the call
handler exists): Deepgram drops and refuses the reconnect twice (429 with
``retry-after: 1``, then 500); OpenAI answers 500 and then breaks mid-stream;
ElevenLabs sends an in-band ``internal_error`` 1008 and then drops. Every turn
is heard whole and answered with audio.

The turn loop here is a stand-in for the handler: STT events → turns → the
LLM reply (a template line when the LLM fails with a typed error) → TTS."""

from __future__ import annotations

import hashlib
import math
import re
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import trio

from providers.config import DeepgramConfig, ElevenLabsConfig, OpenAIConfig, Secret
from providers.exceptions import ProviderError
from providers.http import open_http_client
from providers.llm.base import TextDelta
from providers.llm.openai import OpenAIChat
from providers.sim.deepgram_sim import open_deepgram_sim
from providers.sim.elevenlabs_audio import frame_bytes, render
from providers.sim.elevenlabs_sim import open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.sim.openai_sim import Drop, ServerFault, open_openai_sim
from providers.stt.base import Final
from providers.stt.deepgram import DeepgramStream, open_deepgram
from providers.stt.turns import TurnAssembler
from providers.tts.elevenlabs import ElevenLabsSession, open_elevenlabs
from providers.usage import UsageCounter
from tests.providers.deepgram_calls import RATE, call_audio, send_paced
from tests.providers.test_elevenlabs_client import reply_contexts, sent_pcm
from tests.providers.test_elevenlabs_faults import resumed

SAID = ["Hello, who is this?", "Tell me about solar panels.", "Okay, send me the details."]
ANSWERS = {
    SAID[1]: "Solar panels can cut your bill by half. Shall I send you a quote?",
    SAID[2]: "Thank you. I will send them today.",
}
FALLBACK = "Sorry, I lost my train of thought. Shall I send you the details?"
CALL = call_audio(*[("silence", 0.5), ("speech", 1.5), ("silence", 2.5)] * 3,
                  ("silence", 6.0))


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.?!])\s+", text)


def frames(text: str) -> int:
    """Audio frames the ElevenLabs sim sends for one generation of ``text``."""
    return math.ceil(len(render(text + " ", "pcm_8000", "en-us"))
                     / frame_bytes(0.25, "pcm_8000"))


@dataclass
class Call:
    heard: list[str] = field(default_factory=list)
    finals: list[Final] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)
    llm_errors: list[ProviderError] = field(default_factory=list)


async def answer(call: Call, chat: OpenAIChat, tts: ElevenLabsSession, text: str) -> None:
    reply = ""
    try:
        async with aclosing(chat.stream_chat([{"role": "user", "content": text}])) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    reply += event.text
    except ProviderError as exc:  # the handler's fall-back: a template line
        call.llm_errors.append(exc)
        reply = FALLBACK

    async def chunks() -> Any:
        for sentence in sentences(reply):
            yield sentence

    async with aclosing(tts.speak(chunks())) as audio:
        call.audio.append(b"".join([chunk async for chunk in audio]))
    call.said.append(reply)


async def run_turns(call: Call, stt: DeepgramStream, chat: OpenAIChat,
                    tts: ElevenLabsSession) -> None:
    turns = TurnAssembler()
    async for event in stt.events():
        if isinstance(event, Final):
            call.heard.append(event.text)
            call.finals.append(event)
        turn = turns.feed(event)
        if turn is not None:
            await answer(call, chat, tts, turn.text)


async def test_one_call_survives_deepgram_openai_and_elevenlabs_faults(
    autojump_clock: Any,
) -> None:
    usage = UsageCounter()
    call = Call()
    async with open_deepgram_sim() as dg, open_openai_sim(
            ttft=Fixed(0.3), token_gap=Fixed(0.05), canned=ANSWERS) as oa, \
            open_elevenlabs_sim(ttfb=Fixed(0.2)) as el, open_http_client() as http:
        dg.script(*SAID)
        dg.inject_drop(after_seconds=5.0)  # mid second utterance (speech 4.5–6.0 s)
        dg.inject_refusal(429, retry_after=1, once_accepted=1)
        dg.inject_refusal(500, once_accepted=1)
        oa.inject(ServerFault(500), Drop(after_tokens=3))  # turn 1: 500, then a broken retry
        el.inject_internal_error(after_frames=2)  # reply 1, first sentence
        # Reply 1 resumes on the second connection (both its sentences), which then
        # drops 3 frames into reply 2.
        el.inject_drop(after_frames=sum(map(frames, sentences(FALLBACK))) + 3)
        chat = OpenAIChat(http, OpenAIConfig(base_url=oa.base_url), usage)
        tts_config = ElevenLabsConfig(url=el.url, api_key=Secret("k"), voice_id="en-us")
        async with open_deepgram(DeepgramConfig(url=dg.url), usage) as stt, \
                open_elevenlabs(tts_config, usage) as tts, trio.open_nursery() as nursery:
            nursery.start_soon(run_turns, call, stt, chat, tts)
            await send_paced(stt, CALL.tobytes(), 2 * RATE)
            await stt.aclose()
            tts_stats = tts.statistics()
        # Deepgram: every word heard once; the replay carried the exact audio span.
        assert call.heard == SAID
        assert (stt.reconnects, stt.refused, stt.lost_seconds) == (1, 2, 0)
        assert [status for _, status in dg.refused] == [429, 500]
        assert call.finals[0].end < 5.0 < call.finals[1].end  # dropped inside turn 2
        replay_from = round(call.finals[0].end * 2 * RATE)  # nothing after it was settled
        replayed = bytes(dg.connections[1].audio)
        assert hashlib.sha256(replayed).digest() == hashlib.sha256(
            CALL.tobytes()[replay_from:]).digest()
        # OpenAI: 500 retried once, the retry broke mid-stream → a typed error and
        # the template line; the other turns answered; the broken stream is billed.
        assert [type(e).__name__ for e in call.llm_errors] == ["StreamClosed"]
        assert len(oa.requests) == 4
        assert call.said == [FALLBACK, ANSWERS[SAID[1]], ANSWERS[SAID[2]]]
        assert usage.llm_tokens_estimated > 0
        # ElevenLabs: both faults recovered, every reply whole: what the failed
        # connection sent of it (a dropped socket may lose frames in flight), then
        # all of it from the sentence in progress on the next connection.
        assert [c.fault for c in el.connections] == ["internal_error", "drop", None]
        assert (tts_stats.reconnects, tts_stats.resumed_replies) == (2, 2)
        first, second, third = (reply_contexts(el, n) for n in range(3))
        assert [len(first), len(second), len(third)] == [1, 2, 2]
        assert call.audio[0] == sent_pcm(el, first[0], 0) + sent_pcm(el, second[0], 1)
        assert resumed(call.audio[1], sent_pcm(el, second[1], 1), sent_pcm(el, third[0], 2))
        assert call.audio[2] == sent_pcm(el, third[1], 2)
        assert [text for _, text in el.connections[2].generations] == [
            s + " " for s in [*sentences(ANSWERS[SAID[1]]), *sentences(ANSWERS[SAID[2]])]]

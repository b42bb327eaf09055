"""The seed design's call flow, for ``python -m bench latency``'s ``seed`` mode only.

The design voicebot replaced, rebuilt on today's parts so the comparison is of
the flow alone: per caller utterance, wait for a second of silence (``buffer
1 s``), send the whole utterance to the STT at once and wait for its words
(batch), decide, take the LLM's whole reply (when the reply needs it), render
the whole reply with the TTS, then send it. One turn at a time; no barge-in.
The same engines (Deepgram, ElevenLabs, OpenAI clients), playbook and dialogue
engine as the product; none of its speed work.

``python -m bench.seed --port P --control-port C`` serves it like ``voicebot
serve`` (the vendors from the environment, no Redis).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import trio

from dialogue import Playbook, analyze, decide, load_playbook, opening
from dialogue.engine import Decision, Template
from dialogue.state import CallState, new_call_state, record_bot_reply, record_caller
from dsp.pcm import pcm16_from_bytes
from dsp.vad import EnergyVAD, SpeechStarted, VADConfig
from providers.llm.base import TextDelta
from providers.stt.turns import TurnAssembler
from providers.usage import UsageCounter
from server.calls.hook import CallSession, HandlerFactory, TurnReport
from server.calls.server import serve_until_signalled
from server.config import ServerConfig
from server.handlers.pipeline import Engines, EngineSettings, choose_engines, open_engines
from server.handlers.pipeline.handler import usage_tag
from server.logs import configure_logging
from server.playout.speaker import Speaker, open_speaker
from server.telephony.events import Mark, Media, Start, StreamEvent

#: the seed's end of utterance: a second of silence
SEED_SILENCE_MS = 1000


async def _once(text: str) -> AsyncIterator[str]:
    yield text + " "


class SeedHandler:
    """One call the seed's way (module docstring)."""

    def __init__(self, session: CallSession, engines: Engines, playbook: Playbook) -> None:
        self._session = session
        self._engines = engines
        self._playbook = playbook
        self._rate = session.sample_rate
        self._vad = EnergyVAD(VADConfig(min_silence_ms=SEED_SILENCE_MS), sample_rate=self._rate)
        self._audio = bytearray()
        self._samples = 0
        self._in_speech = False
        self._usage = UsageCounter()
        self._turns_send, self._turns = trio.open_memory_channel[tuple[bytes, float]](16)
        self._speaker: Speaker | None = None
        self._state: CallState | None = None

    async def on_event(self, event: StreamEvent) -> None:
        if isinstance(event, Media):
            self._on_audio(event.pcm)
        elif isinstance(event, Mark) and self._speaker is not None:
            self._speaker.on_mark(event.name)
        elif isinstance(event, Start) and self._speaker is None:
            self._speaker = await self._session.nursery.start(self._run, event.stream_sid)

    def _on_audio(self, pcm: bytes) -> None:
        self._samples += len(pcm) // 2
        if self._in_speech:
            self._audio += pcm
        for event in self._vad.process(pcm16_from_bytes(pcm)):
            if isinstance(event, SpeechStarted):
                self._in_speech, self._audio = True, bytearray(pcm)
                continue
            self._in_speech = False
            # The chunk that ended the utterance arrived now; its speech ended earlier.
            audio_end = self._samples / self._rate
            speech_end = trio.current_time() - max(audio_end - event.voiced_until, 0.0)
            with contextlib.suppress(trio.WouldBlock):  # 16 turns behind: dropped
                self._turns_send.send_nowait((bytes(self._audio), speech_end))

    async def _run(self, stream_sid: str, *, task_status: trio.TaskStatus[Speaker]) -> None:
        session = self._session
        async with open_speaker(session.send, session.dialect, stream_sid, self._rate,
                                frame_ms=session.config.frame_ms,
                                max_lead_ms=session.config.max_lead_ms) as speaker:
            task_status.started(speaker)
            now = datetime.now(UTC)
            self._state = new_call_state(self._playbook, {}, now)
            greeting = opening(self._state, now)
            self._state = greeting.state
            await self._say(speaker, greeting, None)
            async for audio, speech_end in self._turns:
                await self._turn(speaker, audio, speech_end)

    async def _turn(self, speaker: Speaker, audio: bytes, speech_end: float) -> None:
        text = await self._transcribe(audio)
        if not text or self._state is None:
            return
        now = datetime.now(UTC)
        decision = decide(record_caller(self._state, text),
                          analyze(text, self._state.stage, now), now)
        self._state = decision.state
        await self._say(speaker, decision, speech_end)
        if decision.end_call:
            self._session.hang_up("completed")

    async def _transcribe(self, audio: bytes) -> str:
        """Batch: the whole utterance at once, then its words (one turn)."""
        turns = TurnAssembler()
        async with self._engines.open_stt("deepgram", self._rate, self._usage,
                                          usage_tag(self._session.custom_parameters)) as stt:
            await stt.send_audio(audio)
            await stt.finalize()
            async for event in stt.events():
                turn = turns.feed(event)
                if turn is not None:
                    return turn.text.strip()
        return ""

    async def _say(self, speaker: Speaker, decision: Decision, speech_end: float | None) -> None:
        """The whole reply text, then the whole audio, then send."""
        if isinstance(decision.reply, Template):
            text = decision.reply.text
        else:
            chat = self._engines.chat(self._usage)
            request = decision.reply
            if chat is None:
                text = request.fallback_text
            else:
                parts = [event.text async for event in chat.stream_chat(
                    list(request.messages), max_tokens=request.max_tokens,
                    temperature=request.temperature) if isinstance(event, TextDelta)]
                text = "".join(parts).strip() or request.fallback_text
                if self._state is not None:
                    self._state = record_bot_reply(self._state, text)
        audio = bytearray()
        async with self._engines.open_tts(self._engines.choice.tts, self._rate,
                                          self._usage) as tts:
            async for chunk in tts.speak(_once(text)):
                audio += chunk
        if not audio:
            return
        speaker.play(bytes(audio), final=True)
        if speech_end is not None:
            self._session.record.turn(TurnReport(
                caller_text="", bot_text=text,
                marks={"speech_end": speech_end, "first_media_sent": trio.current_time()}))


def seed_handlers(engines: Engines, playbook: Playbook) -> HandlerFactory:
    def make(session: CallSession) -> SeedHandler:
        return SeedHandler(session, engines, playbook)

    return make


async def _serve(config: ServerConfig) -> None:
    settings = EngineSettings.from_env(choose_engines("deepgram", "elevenlabs", "openai"))
    async with open_engines(settings) as engines:
        await serve_until_signalled(config, seed_handlers(engines, load_playbook()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    args = parser.parse_args(argv)
    configure_logging()
    trio.run(_serve, ServerConfig(host="127.0.0.1", port=args.port,
                                  control_port=args.control_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

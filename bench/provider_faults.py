"""Per vendor fault: what the client's consumer experiences and how long recovery
takes, measured on trio's virtual clock (``MockClock(autojump_threshold=0)``)
against the loopback simulators — part of ``python -m bench providers``.

Virtual time measures the protocol and the policies (backoff, retry-after,
deadlines, resumption), not the machine: loopback I/O costs no virtual time, so
each number is what the fault costs by design, with the simulators' latencies as
configured below (Deepgram results at once; OpenAI first token 0.3 s, then a
token every 0.05 s; ElevenLabs first byte 0.2 s, 0.25 s frames every 0.05 s, 5×
real time). A real vendor adds its round trips (DNS, TCP, TLS, upgrade) to each
reconnect. Each case runs ``runs`` times (the backoff is jittered): p50 and max.

- **gap**: Deepgram — how much later the final of the interrupted utterance
  reaches the consumer than without the fault; ElevenLabs — the longest pause
  between audio chunks of the interrupted reply; OpenAI — how much later the
  first token arrives than without the fault (or, for a break after tokens, the
  time from the last token to the typed error).
- **recovery**: from the fault (the sim's close/reset/error, or the refused
  request) until the client is live again (Deepgram: replay done; ElevenLabs:
  first audio of the resumed reply; OpenAI: first token of the retry).
"""

from __future__ import annotations

import itertools
import logging
import statistics
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import numpy as np
import trio
import trio.testing

from providers.config import DeepgramConfig, ElevenLabsConfig, OpenAIConfig, Secret
from providers.exceptions import ProviderError
from providers.groups import unwrap_sole_error
from providers.http import open_http_client
from providers.llm.base import TextDelta
from providers.llm.openai import OpenAIChat
from providers.sim.deepgram_sim import DeepgramSim, open_deepgram_sim
from providers.sim.elevenlabs_sim import ElevenLabsSim, open_elevenlabs_sim
from providers.sim.latency import Fixed
from providers.sim.openai_sim import Drop, OpenAISim, ServerFault, open_openai_sim
from providers.stt.base import Final
from providers.stt.deepgram import open_deepgram
from providers.tts.elevenlabs import open_elevenlabs
from providers.tts.elevenlabs_wire import StreamOptions

RATE = 8000
REPLY = ["Hello, this is Asha from Acme Solar.", "Do you have a minute to talk?"]


@dataclass(frozen=True)
class Outcome:
    gap: float
    recovery: float | None
    note: str


@dataclass(frozen=True)
class Case:
    vendor: str
    fault: str
    consumer: str  # what the consumer experiences, in words
    run: Callable[[], Awaitable[Outcome]]


def virtual(run: Callable[[], Awaitable[Outcome]]) -> Outcome:
    return trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))


# -- Deepgram -------------------------------------------------------------------------


def call_audio() -> bytes:
    rng = np.random.default_rng(5)
    parts = []
    for _ in range(2):
        t = np.arange(int(1.5 * RATE)) / RATE
        parts += [rng.normal(0, 3, int(0.5 * RATE)), 8000 * np.sin(2 * np.pi * 220 * t),
                  rng.normal(0, 3, int(1.5 * RATE))]
    return np.concatenate(parts).astype(np.int16).tobytes()


async def deepgram_finals(setup: Callable[[DeepgramSim], None], tail: float = 0.0
                          ) -> tuple[list[float], Any, Any]:
    """Arrival times of the finals (from the call's start), the stream, and the
    sim's fault times (trio time). ``tail``: silence kept after the audio."""
    faults: list[float] = []
    start = trio.current_time()

    def on_sent(t: float, message: dict[str, Any]) -> None:
        if message["type"] in ("_close", "_abort") and message["code"] != 1000:
            faults.append(t)

    audio = call_audio()
    async with open_deepgram_sim(on_message_sent=on_sent) as sim:
        sim.script("first thing I said", "and the second thing")
        setup(sim)
        arrivals: list[float] = []
        async with open_deepgram(DeepgramConfig(url=sim.url)) as stream, \
                trio.open_nursery() as nursery:

            async def pump() -> None:
                async for event in stream.events():
                    if isinstance(event, Final):
                        arrivals.append(trio.current_time() - start)

            nursery.start_soon(pump)
            step = 2 * RATE // 10
            for i in range(0, len(audio), step):
                await stream.send_audio(audio[i:i + step])
                await trio.sleep(0.1)
            await trio.sleep(tail)
            await stream.aclose()
        return arrivals, stream, faults


def deepgram_case(setup: Callable[[DeepgramSim], None]) -> Callable[[], Awaitable[Outcome]]:
    async def run() -> Outcome:
        base, _, _ = await deepgram_finals(lambda sim: None)
        got, stream, faults = await deepgram_finals(setup)
        gap = max(g - b for g, b in zip(got, base, strict=True))
        recovery = stream.resumed_at[0] - faults[0]
        return Outcome(gap, recovery, f"{len(got)}/{len(base)} finals, lost "
                                      f"{stream.lost_seconds:g} s of audio")
    return run


DROP_AT = 4.8  # seconds of audio: inside the second utterance (speech 4.0–5.5 s)


def drop_refused_twice(sim: DeepgramSim) -> None:
    sim.inject_drop(after_seconds=DROP_AT)
    sim.inject_refusal(429, retry_after=1, once_accepted=1)
    sim.inject_refusal(500, once_accepted=1)


def drop_refused_always(sim: DeepgramSim) -> None:
    sim.inject_drop(after_seconds=DROP_AT)
    for _ in range(40):
        sim.inject_refusal(503, once_accepted=1)


async def deepgram_deadline() -> Outcome:
    # The frame crossing DROP_AT goes out (and the close comes) 0.1 s before it.
    start = trio.current_time()
    try:
        with unwrap_sole_error():  # the simulator's nursery wraps it
            await deepgram_finals(drop_refused_always, tail=10.0)
    except ProviderError as exc:
        return Outcome(trio.current_time() - start - (DROP_AT - 0.1), None,
                       f"{type(exc).__name__}({getattr(exc, 'deadline', '')}) from "
                       f"{type(exc.__cause__).__name__}")
    raise RuntimeError("the stream did not give up")


# -- ElevenLabs ------------------------------------------------------------------------


async def eleven_reply(setup: Callable[[ElevenLabsSim], None], options: StreamOptions
                       ) -> tuple[list[float], ElevenLabsSim, int]:
    async with open_elevenlabs_sim(ttfb=Fixed(0.2), frame_gap=Fixed(0.05)) as sim:
        setup(sim)
        config = ElevenLabsConfig(url=sim.url, api_key=Secret("k"), voice_id="en-us")

        async def text() -> Any:
            for sentence in REPLY:
                yield sentence

        times: list[float] = []  # trio time of each chunk
        size = 0
        async with open_elevenlabs(config, options=options) as session:
            start = trio.current_time()
            async with aclosing(session.speak(text())) as audio:
                async for chunk in audio:
                    times.append(trio.current_time())
                    size += len(chunk)
        return [start, *times], sim, size


def eleven_case(setup: Callable[[ElevenLabsSim], None],
                options: StreamOptions | None = None) -> Callable[[], Awaitable[Outcome]]:
    async def run() -> Outcome:
        chosen = options or StreamOptions()
        base, _, base_size = await eleven_reply(lambda sim: None, chosen)
        times, sim, size = await eleven_reply(setup, chosen)
        gaps = [b - a for a, b in itertools.pairwise(times[1:])]
        fault_at = sim.connections[0].fault_at
        assert fault_at is not None
        after = [t for t in times[1:] if t > fault_at]
        again = (size - base_size) / (2 * 8000)
        later = (times[-1] - times[0]) - (base[-1] - base[0])
        usual = max(b - a for a, b in itertools.pairwise(base[1:]))
        return Outcome(max(gaps), after[0] - fault_at,
                       f"reply whole; {again:.2f} s of audio heard twice; "
                       f"ends {later:+.2f} s later (longest pause without the fault "
                       f"{usual:.2f} s)")
    return run


async def eleven_barge_in() -> Outcome:
    async with open_elevenlabs_sim(ttfb=Fixed(0.2), frame_gap=Fixed(0.05)) as sim:
        config = ElevenLabsConfig(url=sim.url, api_key=Secret("k"), voice_id="en-us")

        async def text(lines: list[str]) -> Any:
            for line in lines:
                yield line

        async with open_elevenlabs(config) as session:
            async with aclosing(session.speak(text(REPLY * 4))) as audio:
                async for _chunk in audio:
                    break
            start = trio.current_time()
            async with aclosing(session.speak(text(["Sure, go ahead."]))) as audio:
                async for _chunk in audio:
                    break
        return Outcome(trio.current_time() - start, None,
                       "next reply's first byte; the vendor stopped the old context")


def eleven_drop_refused_once(sim: ElevenLabsSim) -> None:
    sim.inject_drop(after_frames=3)
    sim.inject_rate_limit(retry_after=1, once_accepted=1)


async def eleven_deadline() -> Outcome:
    sims: list[ElevenLabsSim] = []

    def refuse(sim: ElevenLabsSim) -> None:
        sims.append(sim)
        sim.inject_drop(after_frames=3)
        for _ in range(40):
            sim.inject_rate_limit(retry_after=0.5, once_accepted=1)

    try:
        with unwrap_sole_error():  # the simulator's nursery wraps it
            await eleven_reply(refuse, StreamOptions())
    except ProviderError as exc:
        fault_at = sims[0].connections[0].fault_at
        assert fault_at is not None
        return Outcome(trio.current_time() - fault_at, None,
                       f"speak() raises {type(exc).__name__}({getattr(exc, 'deadline', '')})")
    raise RuntimeError("the reply did not fail")


# -- OpenAI ----------------------------------------------------------------------------


async def openai_stream(setup: Callable[[OpenAISim], None]) -> tuple[list[float], str]:
    reply = "Namaste! This is Asha from Acme Solar. How can I help you today?"
    async with open_openai_sim(ttft=Fixed(0.3), token_gap=Fixed(0.05),
                               canned={"hi": reply}) as sim, open_http_client() as http:
        setup(sim)
        chat = OpenAIChat(http, OpenAIConfig(base_url=sim.base_url))
        times: list[float] = []
        start = trio.current_time()
        try:
            async with aclosing(chat.stream_chat([{"role": "user", "content": "hi"}])) as s:
                async for event in s:
                    if isinstance(event, TextDelta):
                        times.append(trio.current_time() - start)
        except ProviderError as exc:
            times.append(trio.current_time() - start)
            return times, f"{type(exc).__name__} after {len(times) - 1} tokens"
        return times, "reply whole"


def openai_case(setup: Callable[[OpenAISim], None]) -> Callable[[], Awaitable[Outcome]]:
    async def run() -> Outcome:
        base, _ = await openai_stream(lambda sim: None)
        got, note = await openai_stream(setup)
        if note.startswith("reply"):
            return Outcome(got[0] - base[0], got[0] - base[0], note)
        return Outcome(got[-1] - got[-2], None, note + "; tokens streamed billed as estimate")
    return run


CASES = [
    Case("Deepgram", "1011 NET-0000 close mid-utterance", "final of that utterance later",
         deepgram_case(lambda sim: sim.inject_drop(after_seconds=DROP_AT))),
    Case("Deepgram", "TCP reset (no close frame) mid-utterance", "final later",
         deepgram_case(lambda sim: sim.inject_abort(after_seconds=DROP_AT))),
    Case("Deepgram", "drop, reconnect refused 429 (retry-after 1) then 500",
         "final later, audio buffered and replayed",
         deepgram_case(drop_refused_twice)),
    Case("Deepgram", "drop, every reconnect refused (503)", "typed error at the deadline",
         deepgram_deadline),
    Case("ElevenLabs", "in-band internal_error 1008 mid-reply", "pause, sentence restarts",
         eleven_case(lambda sim: sim.inject_internal_error(after_frames=3))),
    Case("ElevenLabs", "TCP drop mid-reply (multi)", "pause, sentence restarts",
         eleven_case(lambda sim: sim.inject_drop(after_frames=3))),
    Case("ElevenLabs", "TCP drop mid-reply (single)", "pause, sentence restarts",
         eleven_case(lambda sim: sim.inject_drop(after_frames=3),
                     StreamOptions(multi_context=False))),
    Case("ElevenLabs", "drop, reconnect refused 429 (retry-after 1)", "longer pause",
         eleven_case(eleven_drop_refused_once)),
    Case("ElevenLabs", "barge-in on a sequential socket", "next reply starts at once",
         eleven_barge_in),
    Case("ElevenLabs", "drop, every reconnect refused (429)", "typed error at the deadline",
         eleven_deadline),
    Case("OpenAI", "500 before the first token", "first token later (one retry)",
         openai_case(lambda sim: sim.inject(ServerFault(500)))),
    Case("OpenAI", "503 with retry-after 0.5", "first token later (one retry)",
         openai_case(lambda sim: sim.inject(ServerFault(503, retry_after=0.5)))),
    Case("OpenAI", "TCP reset before the first token", "first token later (one retry)",
         openai_case(lambda sim: sim.inject(Drop(after_tokens=0)))),
    Case("OpenAI", "TCP reset after 5 tokens", "typed error at once, no retry",
         openai_case(lambda sim: sim.inject(Drop(after_tokens=5)))),
]


def seconds(value: float) -> str:
    return f"{round(value, 6) + 0.0:.3f}"  # no "-0.000" for a float error below 1 µs


def table(runs: int) -> list[str]:
    logging.getLogger("providers").setLevel(logging.ERROR)  # the reconnect warnings
    lines = ["| vendor | fault | consumer experiences | gap p50 / max (s) | "
             "recovery p50 / max (s) | outcome |", "|---|---|---|---|---|---|"]
    for case in CASES:
        outcomes = [virtual(case.run) for _ in range(runs)]
        gaps = [o.gap for o in outcomes]
        recoveries = [o.recovery for o in outcomes if o.recovery is not None]
        recovery = (f"{seconds(statistics.median(recoveries))} / {seconds(max(recoveries))}"
                    if recoveries else "—")
        line = (f"| {case.vendor} | {case.fault} | {case.consumer} | "
                f"{seconds(statistics.median(gaps))} / {seconds(max(gaps))} | {recovery} | "
                f"{outcomes[0].note} |")
        print(line)
        lines.append(line)
    return lines

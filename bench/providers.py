"""``python -m bench providers``: per-client overhead beyond the simulators' own
latency, Deepgram reconnect-and-replay time, and what each injected vendor fault
costs the client's consumer (:mod:`bench.provider_faults`, virtual time).

Overhead per event = (time our client delivers the event to its caller) − (time
the simulator handed that message to its socket), both on the one trio clock of
this process, so it is the client's own cost: loopback, WebSocket/HTTP framing,
parsing, typed events. Each run is compared with a *reference* measured the
same way in the same run: a bare trio-websocket reader (Deepgram) or a bare
httpx byte stream (OpenAI) that only receives, so "ours − reference" is what our
parsing and bookkeeping add. Medians and p99 over ≥ 5 runs; the machine is shared
with other jobs, so read ratios and medians, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from collections.abc import Callable
from contextlib import aclosing, suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import trio
import trio_websocket

from bench import provider_faults
from providers.config import DeepgramConfig, OpenAIConfig
from providers.http import open_http_client
from providers.llm.base import TextDelta
from providers.llm.openai import OpenAIChat
from providers.sim.deepgram_sim import open_deepgram_sim
from providers.sim.latency import Fixed
from providers.sim.openai_sim import open_openai_sim
from providers.stt.base import Endpoint, Final, Interim, SpeechDetected, UtteranceEnd
from providers.stt.deepgram import open_deepgram

RATE = 8000
RESULTS_PATH = Path(__file__).parent / "results" / "providers.md"
REPLY = " ".join(f"word{i}" for i in range(40))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def machine() -> list[str]:
    import h11
    import wsproto

    return [
        f"platform: {platform.platform()}, python {platform.python_version()}, "
        f"cpus: {os.cpu_count()}",
        f"trio {trio.__version__}, trio-websocket {trio_websocket.__version__}, "
        f"httpx {httpx.__version__}, h11 {h11.__version__}, wsproto {wsproto.__version__}, "
        f"numpy {np.__version__}",
    ]


def turn_audio(turns: int) -> bytes:
    rng = np.random.default_rng(7)
    parts = []
    for _ in range(turns):
        t = np.arange(int(1.5 * RATE)) / RATE
        parts += [rng.normal(0, 3, int(0.5 * RATE)), 8000 * np.sin(2 * np.pi * 220 * t),
                  rng.normal(0, 3, int(1.0 * RATE))]
    return np.concatenate(parts).astype(np.int16).tobytes()


async def pace(send: Callable[[bytes], Any], audio: bytes, speedup: float) -> None:
    step = 2 * RATE // 10  # 100 ms frames
    for i in range(0, len(audio), step):
        await send(audio[i:i + step])
        await trio.sleep(0.1 / speedup)


def deliverable(message: dict[str, Any]) -> bool:
    """Server messages that become exactly one event of ours (no reconnects here)."""
    kind = message["type"]
    if kind in ("SpeechStarted", "UtteranceEnd"):
        return True
    if kind != "Results":
        return False
    text = message["channel"]["alternatives"][0]["transcript"].strip()
    return bool(text) or (message["is_final"] and (message["speech_final"]
                                                    or message["from_finalize"]))


async def deepgram_run(turns: int, speedup: float) -> tuple[list[float], list[float]]:
    """(our overheads, reference overheads) in seconds for one run."""
    sent: list[float] = []
    ours: list[float] = []

    def on_sent(t: float, message: dict[str, Any]) -> None:
        if message["type"] != "_close" and deliverable(message):
            sent.append(t)

    audio = turn_audio(turns)
    async with open_deepgram_sim(on_message_sent=on_sent) as sim:
        sim.script(*[f"this is turn number {i} of the call" for i in range(turns)])
        received: list[float] = []
        config = DeepgramConfig(url=sim.url)
        async with open_deepgram(config) as stream, trio.open_nursery() as nursery:

            async def pump() -> None:
                async for event in stream.events():
                    if isinstance(event, Interim | Final | Endpoint | SpeechDetected
                                  | UtteranceEnd):
                        received.append(trio.current_time())

            nursery.start_soon(pump)
            await pace(stream.send_audio, audio, speedup)
            await stream.aclose()
        ours = [r - s for r, s in zip(received, sent, strict=False)]

        # Reference: a bare WebSocket reader on the same sim and audio.
        sent.clear()
        sim.script(*[f"this is turn number {i} of the call" for i in range(turns)])
        raw: list[float] = []
        query = "/v1/listen?encoding=linear16&sample_rate=8000&interim_results=true" \
                "&vad_events=true&utterance_end_ms=1000&endpointing=300"
        tcp = await trio.open_tcp_stream("127.0.0.1", sim.port)
        try:
            async with trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery, tcp, f"127.0.0.1:{sim.port}", query)

                async def reader() -> None:
                    try:
                        while True:
                            text = await ws.get_message()
                            if deliverable(json.loads(text)):
                                raw.append(trio.current_time())
                    except trio_websocket.ConnectionClosed:
                        return

                nursery.start_soon(reader)
                await pace(ws.send_message, audio, speedup)
                await ws.send_message('{"type": "CloseStream"}')
        finally:
            await trio.aclose_forcefully(tcp)
        reference = [r - s for r, s in zip(raw, sent, strict=False)]
    return ours, reference


async def openai_run(requests: int) -> tuple[list[float], list[float]]:
    sent: list[float] = []
    async with open_openai_sim(ttft=Fixed(0.0), token_gap=Fixed(0.003),
                               canned={"go": REPLY},
                               on_chunk_sent=sent.append) as sim, open_http_client() as client:
        chat = OpenAIChat(client, OpenAIConfig(base_url=sim.base_url))
        messages = [{"role": "user", "content": "go"}]
        ours: list[float] = []
        for _ in range(requests):
            sent.clear()
            received: list[float] = []
            async with aclosing(chat.stream_chat(messages)) as stream:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        received.append(trio.current_time())
            # sent = [role chunk, content chunks..., finish, usage, [DONE]]
            ours += [r - s for r, s in zip(received, sent[1:], strict=False)]
        reference: list[float] = []
        body = {"model": "gpt-4o-mini", "messages": messages, "stream": True}
        for _ in range(requests):
            sent.clear()
            arrivals: list[float] = []
            async with client.stream("POST", f"{sim.base_url}/chat/completions",
                                     json=body) as response:
                async for chunk in response.aiter_bytes():
                    now = trio.current_time()
                    arrivals += [now] * chunk.count(b"data: ")
            reference += [r - s for r, s in zip(arrivals[1:], sent[1:], strict=False)]
    return ours, reference


async def reconnect_run() -> tuple[float, float]:
    """(sim close → live again, as seen by the sim clock; client's own measure)."""
    closes: list[float] = []

    def on_sent(t: float, message: dict[str, Any]) -> None:
        if message["type"] == "_close" and message["code"] == 1011:
            closes.append(t)

    audio = turn_audio(2)
    async with open_deepgram_sim(on_message_sent=on_sent) as sim:
        sim.script("first turn words here", "second turn words")
        sim.inject_drop(after_seconds=1.6)  # mid first utterance: 1.1 s to replay
        async with open_deepgram(DeepgramConfig(url=sim.url)) as stream:
            await pace(stream.send_audio, audio, 10.0)
            finals = []
            await stream.aclose()
            async for event in stream.events():
                if isinstance(event, Final):
                    finals.append(event.text)
        if finals[:1] != ["first turn words here"]:
            raise RuntimeError(f"replay lost words: {finals}")
        return stream.resumed_at[0] - closes[0], stream.reconnect_seconds[0]


async def elevenlabs_run(replies: int) -> tuple[list[float], list[float]]:
    """ElevenLabs audio frame → PCM chunk out of ``speak()`` (multi-context), against a
    bare trio-websocket reader of the same frames."""
    from providers.config import ElevenLabsConfig, Secret
    from providers.sim.elevenlabs_sim import open_elevenlabs_sim
    from providers.tts import elevenlabs_wire as el_wire
    from providers.tts.elevenlabs import open_elevenlabs

    sent: list[float] = []

    def on_sent(t: float, frame: dict[str, Any]) -> None:
        if frame.get("audio"):
            sent.append(t)

    async def text(sentence: str) -> Any:
        yield sentence

    ours: list[float] = []
    reference: list[float] = []
    async with open_elevenlabs_sim(on_frame_sent=on_sent, frame_seconds=0.1) as sim:
        config = ElevenLabsConfig(url=sim.url, api_key=Secret("k"), voice_id="en-us")
        async with open_elevenlabs(config) as session:
            for n in range(replies):
                start = len(sent)
                got: list[float] = []
                async with aclosing(session.speak(text(f"Reply number {n}, thanks."))) as audio:
                    async for _chunk in audio:
                        got.append(trio.current_time())
                ours += [g - s for g, s in zip(got, sent[start:], strict=False)]
        url = el_wire.stream_url(config, el_wire.StreamOptions())
        async with trio_websocket.open_websocket_url(url) as ws:
            await ws.send_message(el_wire.init_message(el_wire.StreamOptions(), "idle"))
            for n in range(replies):
                start = len(sent)
                context = f"r{n}"
                await ws.send_message(el_wire.text_message(
                    f"Reply number {n}, thanks. ", flush=True, context_id=context))
                await ws.send_message(el_wire.close_context_message(context))
                got = []
                while True:
                    frame = json.loads(await ws.get_message())
                    if frame.get("isFinal"):
                        break
                    got.append(trio.current_time())
                reference += [g - s for g, s in zip(got, sent[start:], strict=False)]
            await ws.send_message(el_wire.close_socket_message())
            with trio.move_on_after(2), suppress(trio_websocket.ConnectionClosed):
                while True:
                    await ws.get_message()
    return ours, reference


def summary(label: str, ours: list[float], reference: list[float]) -> str:
    return (f"| {label} | {len(ours)} | {1000 * statistics.median(ours):.3f} | "
            f"{1000 * percentile(ours, 99):.3f} | {1000 * statistics.median(reference):.3f} | "
            f"{1000 * percentile(reference, 99):.3f} |")


async def run(args: argparse.Namespace) -> list[str]:
    lines = [f"- {line}" for line in machine()]
    for line in lines:
        print(line)
    dg_ours: list[float] = []
    dg_ref: list[float] = []
    oa_ours: list[float] = []
    oa_ref: list[float] = []
    run_medians: dict[str, list[float]] = {"deepgram": [], "openai": []}
    for index in range(args.runs):
        ours, ref = await deepgram_run(args.turns, args.speedup)
        dg_ours += ours
        dg_ref += ref
        run_medians["deepgram"].append(statistics.median(ours))
        ours2, ref2 = await openai_run(args.requests)
        oa_ours += ours2
        oa_ref += ref2
        run_medians["openai"].append(statistics.median(ours2))
        print(f"run {index + 1}: deepgram median {1000 * statistics.median(ours):.3f} ms "
              f"({len(ours)} events), openai median {1000 * statistics.median(ours2):.3f} ms "
              f"({len(ours2)} deltas)")
    el_ours: list[float] = []
    el_ref: list[float] = []
    for _ in range(args.runs):
        ours3, ref3 = await elevenlabs_run(5)
        el_ours += ours3
        el_ref += ref3
    reconnects = [await reconnect_run() for _ in range(args.runs)]
    table = [
        "| client event | events | ours p50 (ms) | ours p99 (ms) | reference p50 (ms) "
        "| reference p99 (ms) |",
        "|---|---|---|---|---|---|",
        summary("Deepgram result → STT event", dg_ours, dg_ref),
        summary("OpenAI SSE chunk → TextDelta", oa_ours, oa_ref),
        summary("ElevenLabs audio frame → PCM chunk", el_ours, el_ref),
    ]
    sim_view = [r[0] for r in reconnects]
    own_view = [r[1] for r in reconnects]
    recon = [
        "",
        f"Deepgram reconnect-and-replay after a forced 1011 NET-0000 drop mid-utterance "
        f"(1.1 s of audio replayed), {args.runs} runs: median "
        f"{1000 * statistics.median(sim_view):.1f} ms from the sim's close to live audio "
        f"again (max {1000 * max(sim_view):.1f} ms); the client's own measure "
        f"(close seen → replay done) median {1000 * statistics.median(own_view):.1f} ms. "
        f"Target ≤ 500 ms. Loopback, plain ws://: a real reconnect adds DNS + TCP + TLS "
        f"+ upgrade round trips to api.deepgram.com, which this offline benchmark "
        f"cannot measure.",
        "",
        f"Per-run medians (ms): deepgram "
        f"{', '.join(f'{1000 * v:.3f}' for v in run_medians['deepgram'])}; openai "
        f"{', '.join(f'{1000 * v:.3f}' for v in run_medians['openai'])}. Target ≤ 2 ms "
        f"median overhead per event.",
    ]
    for line in table + recon:
        print(line)
    return [
        "## Providers: client overhead and reconnect (`python -m bench providers`)", "",
        *lines, "",
        f"Settings: {args.runs} runs; Deepgram {args.turns} turns/run, audio paced at "
        f"{args.speedup:g}× real time; OpenAI {args.requests} streams/run of 40 tokens, "
        "3 ms apart. Reference = bare trio-websocket reader / bare httpx byte stream on the "
        "same simulator in the same run. Shared, loaded machine: read medians and ratios.",
        "", *table, *recon, "",
    ]


def fault_section(runs: int) -> list[str]:
    """The fault table (each case runs its own trio loop on a virtual clock)."""
    print(f"fault cases, {runs} runs each on virtual time:")
    return [
        f"### Faults: consumer-visible gap and recovery ({runs} runs each, virtual time)",
        "", *(provider_faults.__doc__ or "").split("\n\n", 1)[1].strip().splitlines(), "",
        *provider_faults.table(runs), "",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench providers")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--speedup", type=float, default=10.0)
    parser.add_argument("--fault-runs", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    report = trio.run(run, args) + fault_section(args.fault_runs)
    if not args.no_write:
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_PATH.write_text("\n".join(report))
        print(f"wrote {RESULTS_PATH}")
    return 0

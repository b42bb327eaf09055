"""Shared pieces of the Deepgram client tests: call audio, real-time pacing on
the virtual clock, event collection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import trio

import dsp
from providers.config import DeepgramConfig, Secret
from providers.sim.deepgram_sim import DeepgramSim
from providers.stt.base import STTEvent
from providers.stt.deepgram import DeepgramStream

RATE = 8000
KEY = "dg-test-key"
FRAME = 0.1  # seconds of audio per send, like Exotel's 100 ms media frames


def call_audio(*segments: tuple[str, float], seed: int = 1) -> np.ndarray:
    """Silence (faint noise) and "speech" (a loud 220 Hz tone) segments, int16."""
    rng = np.random.default_rng(seed)
    parts = []
    for kind, seconds in segments:
        n = round(seconds * RATE)
        if kind == "speech":
            t = np.arange(n) / RATE
            parts.append(8000 * np.sin(2 * np.pi * 220 * t))
        else:
            parts.append(rng.normal(0, 3, n))
    return np.concatenate(parts).astype(np.int16)


def encode(pcm: np.ndarray, encoding: str) -> bytes:
    return bytes(dsp.ulaw_encode(pcm)) if encoding == "mulaw" else pcm.tobytes()


async def send_paced(stream: DeepgramStream, audio: bytes, bytes_per_second: int) -> None:
    """Send audio in 100 ms frames at real-time pace (virtual clock)."""
    step = round(FRAME * bytes_per_second)
    for i in range(0, len(audio), step):
        await stream.send_audio(audio[i:i + step])
        await trio.sleep(FRAME)


def config_for(sim: DeepgramSim, **overrides: Any) -> DeepgramConfig:
    return DeepgramConfig(url=sim.url, api_key=Secret(KEY), **overrides)


@asynccontextmanager
async def collecting(stream: DeepgramStream) -> AsyncIterator[list[STTEvent]]:
    """Collect the stream's events; closes the stream (CloseStream) on exit."""
    events: list[STTEvent] = []

    async def pump() -> None:
        async for event in stream.events():
            events.append(event)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        yield events
        await stream.aclose()  # ends the events, so the pump finishes



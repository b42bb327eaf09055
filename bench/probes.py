"""Probes for the latency-budget check (``bench/budgets.toml``).

A probe does its setup once and returns a zero-argument callable doing one unit
of a stage's work on the real code path, with realistic input.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

STREAM_SID = "9f3c2a1b0e8d7c6b5a4f3e2d1c0b9a8f"
LABELLED_SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "utterances.jsonl"


def _speechlike_pcm(seconds: float, rate: int = 8000, seed: int = 7) -> np.ndarray:
    """Amplitude-modulated noise: loud enough to drive the VAD through speech states."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (rng.normal(0, 3000, n) * envelope).clip(-32768, 32767).astype(np.int16)


def inbound_media() -> Callable[[], object]:
    import dsp
    from server.telephony import exotel

    pcm = _speechlike_pcm(0.1)
    frame = json.dumps({
        "event": "media",
        "sequence_number": "3",
        "stream_sid": STREAM_SID,
        "media": {"chunk": "2", "timestamp": "200",
                  "payload": base64.b64encode(pcm.tobytes()).decode()},
    })
    vad = dsp.EnergyVAD(sample_rate=8000)

    def step() -> object:
        event = exotel.parse_frame(frame, sample_rate=8000)
        return vad.process(dsp.pcm16_from_bytes(event.pcm))  # type: ignore[union-attr]

    return step


def websocket_frame() -> Callable[[], object]:
    """One client-masked 100 ms media frame through the call WebSocket's fast
    path (``server.ws.frames``): header, unmask, UTF-8 decode."""
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import Message

    from server.ws.frames import decode_frame, read_head

    pcm = _speechlike_pcm(0.1)
    text = json.dumps({
        "event": "media", "sequence_number": "3", "stream_sid": STREAM_SID,
        "media": {"chunk": "2", "timestamp": "200",
                  "payload": base64.b64encode(pcm.tobytes()).decode()},
    })
    wire = bytearray(Connection(ConnectionType.CLIENT).send(Message(data=text)))

    def step() -> object:
        head = read_head(wire)
        assert head is not None
        return decode_frame(wire, 0, head)

    return step


def outbound_media() -> Callable[[], object]:
    import dsp
    from server.telephony import exotel

    pcm = _speechlike_pcm(0.1).tobytes()
    chunker = dsp.Chunker(dsp.frame_bytes_for(8000, 100))

    def step() -> object:
        return [exotel.media_frame(STREAM_SID, frame) for frame in chunker.push(pcm)]

    return step


def resample_20ms() -> Callable[[], object]:
    import dsp

    chunk = _speechlike_pcm(0.02, rate=24000)
    resampler = dsp.StreamResampler(24000, 8000)

    def step() -> object:
        return resampler.process(chunk)

    return step


def analyze_decide() -> Callable[[], object]:
    import dialogue

    now = datetime(2026, 11, 24, 15, 30, tzinfo=ZoneInfo("Asia/Kolkata"))
    lines = [json.loads(line)["text"] for line in LABELLED_SET.read_text().splitlines() if line]
    playbook = dialogue.load_playbook()
    state = dialogue.new_call_state(playbook, {"lead_name": "Priya"}, now)
    state = dialogue.opening(state, now).state
    texts = itertools.cycle(lines)

    def step() -> object:
        analysis = dialogue.analyze(next(texts), state.stage, now)
        return dialogue.decide(state, analysis, now)

    return step

"""An Exotel-like caller: the peer our server meets in production, simulated.

``run_caller`` opens the WebSocket like Exotel's Voicebot applet does
(``?sample-rate=``, optional Basic auth), sends ``connected`` and ``start``
(32-char lowercase hex SIDs, masked-looking numbers), then real-time paced
``media`` frames (default 100 ms) cut from a looping PCM16 script of speech
and silence (espeak-ng sentences when available, ``default_script``), and
``stop`` at the end.

Towards the server it behaves like the far end's player:

- every inbound frame is validated (JSON, event name, ``stream_sid``, base64,
  payload a multiple of 320 bytes, at most 100 KB); each problem is counted as a
  violation with a short label;
- received ``media`` is "played" back to back: a ``mark`` is echoed only when
  all audio before it would have finished playing (wall clock), ``clear``
  drops the queued audio and forgets pending marks (Exotel echoes none);
- per outbound frame: its gap (``lateness``: arrival minus the moment the far
  end's queue ran dry; negative = lead, positive = an audible gap) and its
  ``schedule_lateness`` (arrival minus the ideal pacer's send time, see
  ``_Player.media``).

Reused by the latency benchmark: ``CallerResult`` keeps per-frame arrival data.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

ALIGN = 320
MAX_PAYLOAD = 100_000
_OUTBOUND_EVENTS = frozenset({"media", "mark", "clear"})


def speech_like_script(
    sample_rate: int = 8000, *, speech_s: float = 1.2, silence_s: float = 1.3,
    repeats: int = 4, seed: int = 7,
) -> bytes:
    """Loopable PCM16 audio: voiced bursts (harmonics, syllable-rate envelope,
    a little noise) separated by near-silence. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    for k in range(repeats):
        n = int(speech_s * sample_rate)
        t = np.arange(n) / sample_rate
        f0 = 120.0 + 25.0 * k
        voice = sum(np.sin(2 * math.pi * f0 * h * t) / h for h in range(1, 6))
        envelope = 0.55 + 0.45 * np.sin(2 * math.pi * 4.0 * t) ** 2
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.03)
        burst = 6000.0 * voice * envelope * fade + rng.normal(0, 150.0, n)
        parts.append(burst)
        parts.append(rng.normal(0, 20.0, int(silence_s * sample_rate)))
    audio = np.clip(np.concatenate(parts), -32768, 32767).astype("<i2")
    return audio.tobytes()


PROMPTS = (
    "Hello, yes, I am interested in the home loan offer.",
    "My budget is around fifty lakh rupees.",
    "Can you call me back next week on Tuesday?",
    "No, I already have a loan with another bank.",
)


def espeak_script(
    sample_rate: int = 8000, *, texts: tuple[str, ...] = PROMPTS, silence_s: float = 1.3,
) -> bytes:
    """Loopable PCM16 of real synthesized sentences (espeak-ng via
    ``providers.local.espeak``), resampled to ``sample_rate``, each followed by
    ``silence_s`` of silence. Raises ``ImportError`` or ``ProviderError`` when the
    engine is unavailable (use ``speech_like_script`` then)."""
    from dsp.resample import StreamResampler
    from providers.local.espeak import synthesize

    parts: list[np.ndarray] = []
    for text in texts:
        audio, rate = synthesize(text)
        resampler = StreamResampler(rate, sample_rate)
        parts += [resampler.process(audio), resampler.flush(),
                  np.zeros(int(silence_s * sample_rate), dtype=np.int16)]
    return np.concatenate(parts).astype("<i2").tobytes()


def default_script(sample_rate: int = 8000) -> tuple[bytes, str]:
    """espeak speech when the engine works here, else the synthetic bursts;
    returns (pcm, description)."""
    from providers.exceptions import ProviderError

    try:
        return espeak_script(sample_rate), "espeak-ng sentences + 1.3 s silences"
    except (ImportError, OSError, ProviderError):
        return speech_like_script(sample_rate), "synthetic voiced bursts + silences"


@dataclass(slots=True)
class CallerResult:
    """What one simulated call saw. ``error`` is set when the call failed."""

    stream_sid: str
    error: str | None = None
    frames_sent: int = 0
    frames_received: int = 0
    media_received: int = 0
    media_bytes: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears_received: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    lateness: list[float] = field(default_factory=list)
    schedule_lateness: list[float] = field(default_factory=list)
    max_lead: float = 0.0
    arrivals: list[tuple[float, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


class _Player:
    """The far end's playout queue, on the trio clock."""

    def __init__(self, sample_rate: int, expected_lead: float) -> None:
        self.bytes_per_second = 2 * sample_rate
        self.expected_lead = expected_lead
        self.play_end = 0.0
        self.utterance_start: float | None = None

    def media(self, now: float, nbytes: int) -> tuple[float, float]:
        """Queue ``nbytes`` arriving at ``now``; return (gap, schedule lateness).

        gap: ``now`` minus the moment the queue ran dry (positive = audible gap);
        0 for an utterance's first frame. schedule lateness: ``now`` minus the
        ideal pacer's send time, i.e. the later of the utterance's first arrival
        and the moment the queue would hold ``expected_lead`` after this frame.
        """
        duration = nbytes / self.bytes_per_second
        first = self.utterance_start is None
        if first:
            self.utterance_start = now
        assert self.utterance_start is not None
        gap = 0.0 if first else now - self.play_end
        ideal = max(self.utterance_start, self.play_end + duration - self.expected_lead)
        self.play_end = max(self.play_end, now) + duration
        return gap, now - ideal

    def boundary(self) -> None:
        self.utterance_start = None

    def clear(self, now: float) -> None:
        self.play_end = now
        self.utterance_start = None


def _validate(msg: str | bytes, stream_sid: str, result: CallerResult) -> dict[str, object] | None:
    if isinstance(msg, bytes):
        result.violations["binary frame"] += 1
        return None
    try:
        obj = json.loads(msg)
    except json.JSONDecodeError:
        result.violations["not json"] += 1
        return None
    if not isinstance(obj, dict) or obj.get("event") not in _OUTBOUND_EVENTS:
        result.violations["unknown event"] += 1
        return None
    if obj.get("stream_sid") != stream_sid:
        result.violations["wrong stream_sid"] += 1
    return obj


def _payload_size(obj: dict[str, object], result: CallerResult) -> int | None:
    media = obj.get("media")
    payload = media.get("payload") if isinstance(media, dict) else None
    if not isinstance(payload, str):
        result.violations["media without payload"] += 1
        return None
    try:
        size = len(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        result.violations["bad base64"] += 1
        return None
    if size == 0 or size % ALIGN:
        result.violations["payload not a 320-byte multiple"] += 1
    if size > MAX_PAYLOAD:
        result.violations["payload over 100 KB"] += 1
    return size


@functools.lru_cache(maxsize=8)
def _b64_frames(script: bytes, frame_bytes: int) -> tuple[str, ...]:
    """The script cut into base64 frames once (shared by every simulated call);
    the last piece wraps around to the start."""
    if not script:
        raise ValueError("empty script")
    count = -(-len(script) // frame_bytes)
    looped = script * (1 + frame_bytes // len(script) + 1)
    return tuple(base64.b64encode(looped[k * frame_bytes:(k + 1) * frame_bytes]).decode()
                 for k in range(count))


@asynccontextmanager
async def dial(url: str, *, extra_headers: list[tuple[bytes, bytes]] | None = None,
               ) -> AsyncIterator[WebSocketConnection]:
    """A call's WebSocket to ``url`` (``ws://host:port/path?query``) whose TCP
    stream is closed on exit whoever ends the call: trio-websocket's
    ``open_websocket_url`` leaves it open when the server closes first."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"expected a ws:// URL, got {url!r}")
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await trio.open_tcp_stream(parts.hostname, parts.port or 80)
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(nursery, stream, parts.hostname, resource,
                                          extra_headers=extra_headers or [])
            try:
                yield ws
            finally:
                await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await stream.aclose()


async def run_caller(
    url: str,
    script: bytes,
    *,
    seconds: float,
    sample_rate: int = 8000,
    frame_ms: int = 100,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    offset_bytes: int = 0,
    tail_seconds: float = 0.5,
    expected_lead: float = 0.3,
) -> CallerResult:
    """Place one call of ``seconds`` of audio against ``url``; never raises for
    call failures (they land in ``result.error``)."""
    stream_sid = secrets.token_hex(16)
    result = CallerResult(stream_sid=stream_sid)
    try:
        async with dial(url, extra_headers=extra_headers) as ws:
            await converse(ws, script, seconds=seconds, sample_rate=sample_rate,
                           frame_ms=frame_ms, offset_bytes=offset_bytes,
                           tail_seconds=tail_seconds, result=result,
                           expected_lead=expected_lead)
    except* HandshakeError as group:
        result.error = f"handshake: {type(group.exceptions[0]).__name__}"
    except* ConnectionClosed as group:
        closed = group.exceptions[0]
        result.error = f"closed early: {getattr(closed, 'reason', closed)}"
    except* OSError as group:
        result.error = f"socket: {group.exceptions[0]}"
    return result


async def converse(
    ws: WebSocketConnection,
    script: bytes,
    *,
    seconds: float,
    sample_rate: int = 8000,
    frame_ms: int = 100,
    offset_bytes: int = 0,
    tail_seconds: float = 0.5,
    result: CallerResult | None = None,
    expected_lead: float = 0.3,
) -> CallerResult:
    """Play Exotel's part on an open ``ws`` (any transport): the whole call,
    ``stop`` included. Connection errors propagate (``run_caller`` records them)."""
    if result is None:
        result = CallerResult(stream_sid=secrets.token_hex(16))
    sid = result.stream_sid
    call_sid, account_sid = secrets.token_hex(16), secrets.token_hex(16)
    seq = 0

    async def send(obj: dict[str, object]) -> None:
        nonlocal seq
        seq += 1
        obj["sequence_number"] = seq
        await ws.send_message(json.dumps(obj))
        result.frames_sent += 1

    await send({"event": "connected"})
    await send({"event": "start", "stream_sid": sid, "start": {
        "stream_sid": sid, "call_sid": call_sid, "account_sid": account_sid,
        "from": "09999990" + secrets.choice("0123456789") * 3, "to": "08047110000",
        "custom_parameters": {"lead_id": "bench"},
        "media_format": {"encoding": "base64", "sample_rate": str(sample_rate),
                         "bit_rate": "128kbps"}}})
    player = _Player(sample_rate, expected_lead)
    mark_send, mark_receive = trio.open_memory_channel[tuple[float, str]](1000)

    async def echo_marks() -> None:
        async for due, name in mark_receive:
            await trio.sleep_until(due)
            await send({"event": "mark", "stream_sid": sid, "mark": {"name": name}})
            result.marks_echoed += 1

    async def receive() -> None:
        while True:
            msg = await ws.get_message()
            now = trio.current_time()
            result.frames_received += 1
            obj = _validate(msg, sid, result)
            if obj is None:
                continue
            event = obj["event"]
            if event == "media":
                size = _payload_size(obj, result)
                if size:
                    result.media_received += 1
                    result.media_bytes += size
                    late, scheduled = player.media(now, size)
                    result.lateness.append(late)
                    result.schedule_lateness.append(scheduled)
                    result.max_lead = max(result.max_lead, player.play_end - now)
                    result.arrivals.append((now, size))
            elif event == "mark":
                result.marks_received += 1
                player.boundary()
                mark = obj.get("mark")
                name = mark.get("name") if isinstance(mark, dict) else None
                if not isinstance(name, str):
                    result.violations["mark without name"] += 1
                    continue
                mark_send.send_nowait((player.play_end, name))
            else:  # clear: queued audio and pending marks are gone
                result.clears_received += 1
                player.clear(now)
                while True:
                    try:
                        mark_receive.receive_nowait()
                    except trio.WouldBlock:
                        break

    payloads = _b64_frames(script, sample_rate * 2 * frame_ms // 1000)
    first = offset_bytes * len(payloads) // len(script)
    frames = int(seconds * 1000 / frame_ms)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo_marks)
        nursery.start_soon(receive)
        t0 = trio.current_time()
        for i in range(frames):
            await trio.sleep_until(t0 + i * frame_ms / 1000)
            payload = payloads[(first + i) % len(payloads)]
            seq += 1  # built by hand: this is the load generator's hot path
            await ws.send_message(
                f'{{"event":"media","sequence_number":{seq},"stream_sid":"{sid}",'
                f'"media":{{"chunk":{i + 1},"timestamp":"{i * frame_ms}",'
                f'"payload":"{payload}"}}}}')
            result.frames_sent += 1
        # Let the last echoes and marks arrive before hanging up.
        await trio.sleep(tail_seconds)
        await send({"event": "stop", "stream_sid": sid, "stop": {
            "call_sid": call_sid, "account_sid": account_sid, "reason": "callended"}})
        nursery.cancel_scope.cancel()
    return result

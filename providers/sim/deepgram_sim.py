"""Loopback Deepgram live-transcription server (trio-websocket).

Speaks ``/v1/listen`` as the real service does: checks ``Authorization: Token
KEY`` (401 with ``dg-error`` and a JSON body otherwise) and the query (400 for an
unsupported ``encoding``/``sample_rate``), decodes ``linear16``/``mulaw`` audio
and runs :class:`dsp.EnergyVAD` on it (``endpointing`` ms becomes the VAD's
silence hangover). From the VAD it produces ``SpeechStarted`` (``vad_events``),
interim ``Results`` every ``interim_every`` s of speech (``interim_results``), a
final ``Results`` with ``speech_final: true`` at each endpoint, ``UtteranceEnd``
``utterance_end_ms`` after the last word, a ``from_finalize: true`` final for
``Finalize`` (an empty one when nothing is pending), and on ``CloseStream`` the
pending final, ``Metadata`` and close 1000. ``start``/``duration`` are seconds
of this connection's audio.

It does not recognise speech: what the caller "said" comes from a script the
test registers with :meth:`DeepgramSim.script`, one text per utterance, keyed by
the ``tag`` query parameter (Deepgram's usage label; ``None`` = untagged). A text
is consumed only when its final is sent, so an utterance cut off by a dropped
connection is transcribed again from the replayed audio.

Faults: ``idle_timeout`` (10 s) without audio or KeepAlive → close 1011
``NET-0001``; :meth:`DeepgramSim.inject_drop` closes the next connection with
1011 ``NET-0000`` after N s of audio; :meth:`DeepgramSim.inject_bad_audio` makes
the next connection close 1008 ``DATA-0000`` at its first audio frame. Every
server message waits ``latency.sample()`` (order is kept).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

import dsp
from providers.sim.latency import Fixed, Latency

NET_0001 = ("NET-0001: Deepgram did not receive audio data or a text message within the "
            "timeout window. See https://dpgr.am/net0001")
NET_0000 = "NET-0000: The service has encountered an internal error."
DATA_0000 = "DATA-0000: The payload cannot be decoded as audio."
WORDS_PER_SECOND = 3.0  # pace at which interim text grows


@dataclass
class ConnectionLog:
    """What one connection did, for assertions."""

    query: dict[str, list[str]]
    request_id: str
    audio_bytes: int = 0
    keepalives: int = 0
    finalizes: int = 0
    close_streams: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None  # ours, or the client's if it closed first
    closed_by_client: bool = False


class DeepgramSim:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency: Latency | None = None,
        idle_timeout: float = 10.0,
        interim_every: float = 0.5,
        on_message_sent: Callable[[float, dict[str, Any]], None] | None = None,
    ) -> None:
        """``on_message_sent(t, message)`` is called just before each message goes
        out (and with ``{"type": "_close", "code": …}`` before a close): the
        benchmark's reference point."""
        self.api_key = api_key
        self.latency = latency or Fixed(0.0)
        self.idle_timeout = idle_timeout
        self.interim_every = interim_every
        self.on_message_sent = on_message_sent
        self.connections: list[ConnectionLog] = []
        self.port = 0
        self._scripts: defaultdict[str | None, deque[str]] = defaultdict(deque)
        self._drops: deque[float] = deque()
        self._bad_audio = 0
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def script(self, *texts: str, tag: str | None = None) -> None:
        """Queue what the caller says in their next utterances (one text each)."""
        self._scripts[tag].extend(texts)

    def remaining_script(self, tag: str | None = None) -> list[str]:
        return list(self._scripts[tag])

    def inject_drop(self, after_seconds: float) -> None:
        """The next connection fails with 1011 NET-0000 after this much audio."""
        self._drops.append(after_seconds)

    def inject_bad_audio(self) -> None:
        """The next connection rejects its first audio frame with 1008 DATA-0000."""
        self._bad_audio += 1

    async def serve(
        self, host: str = "127.0.0.1", port: int = 0,
        *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, self._handle, host, port, None)
            self.port = server.port
            task_status.started(self.port)

    async def _handle(self, request: WebSocketRequest) -> None:
        target = urlsplit(request.path)
        query = parse_qs(target.query)
        request_id = str(uuid.UUID(int=next(self._ids)))
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        if target.path.rstrip("/") != "/v1/listen":
            await _reject(request, 404, "Bad Request", "Unknown endpoint.", request_id)
            return
        if self.api_key is not None and headers.get("authorization") != f"Token {self.api_key}":
            await _reject(request, 401, "INVALID_AUTH", "Invalid credentials.", request_id)
            return
        encoding = query.get("encoding", ["linear16"])[0]
        rate_text = query.get("sample_rate", ["8000"])[0]
        if encoding not in ("linear16", "mulaw") or rate_text not in ("8000", "16000"):
            await _reject(request, 400, "Bad Request",
                          f"Unsupported encoding/sample_rate: {encoding}/{rate_text}.",
                          request_id)
            return
        log = ConnectionLog(query=query, request_id=request_id)
        self.connections.append(log)
        drop_after = self._drops.popleft() if self._drops else None
        bad_audio = self._bad_audio > 0
        self._bad_audio -= int(bad_audio)
        ws = await request.accept(extra_headers=[(b"dg-request-id", request_id.encode())])
        session = _Session(self, ws, log, encoding, int(rate_text), drop_after, bad_audio)
        await session.run()


async def _reject(
    request: WebSocketRequest, status: int, code: str, message: str, request_id: str
) -> None:
    body = json.dumps({"err_code": code, "err_msg": message, "request_id": request_id})
    await request.reject(status, extra_headers=[
        (b"dg-error", message.encode()), (b"dg-request-id", request_id.encode()),
        (b"content-type", b"application/json"),
    ], body=body.encode())


class _Session:
    """One accepted connection: audio in, VAD, scripted transcripts out."""

    def __init__(
        self, sim: DeepgramSim, ws: WebSocketConnection, log: ConnectionLog, encoding: str,
        sample_rate: int, drop_after: float | None, bad_audio: bool,
    ) -> None:
        self.sim = sim
        self.ws = ws
        self.log = log
        self.encoding = encoding
        self.rate = sample_rate
        self.drop_after = drop_after
        self.bad_audio = bad_audio
        query = log.query
        self.tag = query.get("tag", [None])[0]
        self.interim = query.get("interim_results", ["false"])[0] == "true"
        self.vad_events = query.get("vad_events", ["false"])[0] == "true"
        endpointing = query.get("endpointing", ["10"])[0]
        silence_ms = 300 if endpointing == "false" else max(10, int(endpointing) // 10 * 10)
        utterance_end = query.get("utterance_end_ms", [None])[0]
        self.utterance_end = int(utterance_end) / 1000 if utterance_end else None
        self.vad = dsp.EnergyVAD(dsp.VADConfig(min_silence_ms=silence_ms), sample_rate)
        self.samples = 0
        self.odd_byte = b""
        self.segment_start = 0.0  # end of the last final
        self.speech_start: float | None = None  # current utterance, not yet finalized
        self.next_interim = 0.0
        self.pending_utterance_end: float | None = None
        self.outbox_send, self.outbox = trio.open_memory_channel[tuple[float, Any]](1000)
        self.last_due = 0.0
        self.closing = False
        self.scope = trio.CancelScope()

    @property
    def now(self) -> float:
        return self.samples / self.rate

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.scope = nursery.cancel_scope
            nursery.start_soon(self._sender)
            try:
                await self._receive()
            except ConnectionClosed as exc:
                if not self.closing:
                    self.log.closed_by_client = True
                    self.log.close_code = exc.reason.code if exc.reason else None
            nursery.cancel_scope.cancel()

    async def _receive(self) -> None:
        while not self.closing:
            with trio.move_on_after(self.sim.idle_timeout) as idle:
                message = await self.ws.get_message()
            if idle.cancelled_caught:
                self._queue_close(1011, NET_0001, delay=False)
                await trio.sleep_forever()  # the sender closes; run() cancels us
            if isinstance(message, bytes):
                self._audio(message)
            else:
                self._control(message)
        await trio.sleep_forever()

    def _control(self, text: str) -> None:
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind == "KeepAlive":
            self.log.keepalives += 1
        elif kind == "Finalize":
            self.log.finalizes += 1
            self._final(speech_final=False, from_finalize=True, end=self.now)
        elif kind == "CloseStream":
            self.log.close_streams += 1
            if self.speech_start is not None:
                self._final(speech_final=False, from_finalize=False, end=self.now)
            self._queue({"type": "Metadata", "transaction_key": "deprecated",
                         "request_id": self.log.request_id, "sha256": "0" * 64,
                         "created": "2026-01-01T00:00:00.000Z", "duration": round(self.now, 3),
                         "channels": 1, "models": [_MODEL["uuid"]],
                         "model_info": {_MODEL["uuid"]: _MODEL}})
            self._queue_close(1000, None)

    def _audio(self, data: bytes) -> None:
        if not data:
            return
        self.log.audio_bytes += len(data)
        if self.bad_audio:
            self._queue_close(1008, DATA_0000, delay=False)
            return
        if self.encoding == "mulaw":
            pcm = dsp.ulaw_decode(data)
        else:
            data = self.odd_byte + data
            cut = len(data) - len(data) % 2
            self.odd_byte = data[cut:]
            pcm = dsp.pcm16_from_bytes(data[:cut])
        start_samples = self.samples
        self.samples += len(pcm)
        for event in self.vad.process(np.asarray(pcm, dtype=np.int16)):
            if isinstance(event, dsp.SpeechStarted):
                self.speech_start = event.t
                self.next_interim = event.t + self.sim.interim_every
                self.pending_utterance_end = None
                if self.vad_events:
                    self._queue({"type": "SpeechStarted", "channel": [0],
                                 "timestamp": round(event.t, 3)})
            elif self.speech_start is not None:
                voiced_until = event.voiced_until if event.voiced_until >= 0 else event.t
                self._final(speech_final=True, from_finalize=False, end=event.t,
                            voiced_until=voiced_until)
        if self.speech_start is not None and self.interim and self.now >= self.next_interim:
            self.next_interim = self.now + self.sim.interim_every
            words = self._peek().split()
            count = min(len(words), 1 + int((self.now - self.speech_start) * WORDS_PER_SECOND))
            self._results(" ".join(words[:count]), self.now, is_final=False,
                          speech_final=False, from_finalize=False)
        if self.pending_utterance_end is not None and self.now >= self.pending_utterance_end:
            self._queue({"type": "UtteranceEnd", "channel": [0, 1],
                         "last_word_end": round(self.pending_utterance_end
                                                - (self.utterance_end or 0.0), 3)})
            self.pending_utterance_end = None
        if (self.drop_after is not None and start_samples / self.rate < self.drop_after
                <= self.now):
            self._queue_close(1011, NET_0000, delay=False)

    def _peek(self) -> str:
        queue = self.sim._scripts[self.tag]
        return queue[0] if queue else ""

    def _final(
        self, *, speech_final: bool, from_finalize: bool, end: float,
        voiced_until: float | None = None,
    ) -> None:
        text = ""
        if self.speech_start is not None:
            queue = self.sim._scripts[self.tag]
            text = queue.popleft() if queue else ""
            if text and self.utterance_end is not None:
                self.pending_utterance_end = (voiced_until or end) + self.utterance_end
        self._results(text, end, is_final=True, speech_final=speech_final,
                      from_finalize=from_finalize, voiced_until=voiced_until)
        self.segment_start = end
        self.speech_start = None

    def _results(
        self, text: str, end: float, *, is_final: bool, speech_final: bool,
        from_finalize: bool, voiced_until: float | None = None,
    ) -> None:
        words = text.split()
        begin = self.speech_start if self.speech_start is not None else self.segment_start
        last = voiced_until if voiced_until is not None else end
        step = (last - begin) / len(words) if words else 0.0
        self._queue({
            "type": "Results", "channel_index": [0, 1],
            "duration": round(end - self.segment_start, 3), "start": round(self.segment_start, 3),
            "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
            "channel": {"alternatives": [{
                "transcript": text, "confidence": 0.98 if words else 0.0,
                "words": [{"word": w.lower().strip(".,!?"), "start": round(begin + i * step, 3),
                           "end": round(begin + (i + 1) * step, 3), "confidence": 0.98,
                           "punctuated_word": w} for i, w in enumerate(words)],
            }]},
            "metadata": {"request_id": self.log.request_id, "model_info": _MODEL,
                         "model_uuid": _MODEL["uuid"]},
        })

    def _queue(self, message: dict[str, Any]) -> None:
        due = max(self.last_due, trio.current_time() + self.sim.latency.sample())
        self.last_due = due
        self.outbox_send.send_nowait((due, message))

    def _queue_close(self, code: int, reason: str | None, *, delay: bool = True) -> None:
        if self.closing:
            return
        self.closing = True
        due = self.last_due if delay else trio.current_time()
        self.outbox_send.send_nowait((max(due, trio.current_time()), ("close", code, reason)))

    async def _sender(self) -> None:
        async for due, item in self.outbox:
            await trio.sleep_until(due)
            if isinstance(item, tuple):
                _, code, reason = item
                self.log.close_code = code
                if self.sim.on_message_sent is not None:
                    self.sim.on_message_sent(trio.current_time(), {"type": "_close", "code": code})
                with trio.move_on_after(5):
                    await self.ws.aclose(code, reason)
                self.scope.cancel()
                return
            if self.sim.on_message_sent is not None:
                self.sim.on_message_sent(trio.current_time(), item)
            try:
                await self.ws.send_message(json.dumps(item))
            except ConnectionClosed:
                return
            self.log.sent.append(item)


_MODEL = {"name": "2-general-nova", "version": "2024-01-09.29447", "arch": "nova-2",
          "uuid": "c0d1a568-ce81-4fea-97e7-bd45cb1fdf3c"}


@asynccontextmanager
async def open_deepgram_sim(**options: Any) -> AsyncIterator[DeepgramSim]:
    """Start a :class:`DeepgramSim` on a free loopback port; stop it on exit."""
    sim = DeepgramSim(**options)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve)
        yield sim
        nursery.cancel_scope.cancel()

"""Loopback ElevenLabs text-to-speech server (trio-websocket + h11, one port).

Endpoints, as the real service speaks them:

- ``GET /v1/text-to-speech/{voice}/stream-input`` (WebSocket): the first message
  must be ``{"text": " ", …}`` (voice settings, ``generation_config``); later text
  is buffered and generated when the buffer reaches the next
  ``chunk_length_schedule`` entry (default 120/160/250/290 characters), on
  ``flush: true``, or at EOS ``{"text": ""}``, which also sends ``{"isFinal":
  true}`` and closes 1000.
- ``GET /v1/text-to-speech/{voice}/multi-stream-input`` (WebSocket): the same per
  ``context_id`` (at most ``max_contexts`` open); ``{"text": "", "context_id"}``
  is a keep-alive, ``close_context`` drops the context's unflushed text and, once
  its flushed text is spoken (the vendor finishes what was flushed), sends
  ``{"isFinal": true, "contextId"}``; ``close_socket`` finishes everything and
  closes 1000. Frames carry ``contextId``.
- ``POST /v1/text-to-speech/{voice}/stream?output_format=…`` (HTTP): body
  ``{text, model_id, voice_settings}``, chunked audio.

Rules enforced with an error frame ``{"message", "error", "code": 1008}`` then
close 1008: wrong or missing ``xi-api-key`` (``invalid_api_key``), a first
message that is not the single-space init, bad JSON or binary frames
(``invalid_message``), too many contexts, and ``inactivity_timeout`` (query, 20 s
default) without any client message (``input_timeout_exceeded``).
:meth:`ElevenLabsSim.inject_rate_limit` makes the next handshake or request
answer HTTP 429.

Audio is real speech from espeak-ng (:mod:`providers.local.espeak`, called
synchronously: it runs ~1000x faster than real time), resampled to the requested
format (pcm_8000/16000/22050/24000/44100, ulaw_8000 and alaw_8000 through
``dsp``), sent in frames of ``frame_seconds`` after ``ttfb.sample()`` per
generation; the first frame of a generation carries the alignment.
"""

from __future__ import annotations

import base64
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest

import dsp
from dsp.resample import resample_oneshot
from providers.local import espeak
from providers.sim.http11 import HttpRequest, HttpResponse, Replay, read_head, serve_http
from providers.sim.latency import Fixed, Latency
from providers.tts import elevenlabs_wire as wire

DEFAULT_SCHEDULE = (120, 160, 250, 290)
_PREFIX = "/v1/text-to-speech/"
_WEBSOCKET_UPGRADE = re.compile(rb"\r\nupgrade:[ \t]*websocket", re.IGNORECASE)


@dataclass
class ConnectionLog:
    """What one WebSocket connection did, for assertions."""

    endpoint: str  # "stream-input" | "multi-stream-input"
    voice_id: str
    query: dict[str, str]
    received: list[dict[str, Any]] = field(default_factory=list)
    generations: list[tuple[str | None, str]] = field(default_factory=list)
    audio: dict[str | None, bytearray] = field(default_factory=dict)  # raw bytes sent
    finals: list[str | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    close_code: int | None = None
    closed_by_client: bool = False


@dataclass
class _Context:
    buffer: str = ""
    generations: int = 0
    schedule: tuple[int, ...] = DEFAULT_SCHEDULE


class _Fatal(Exception):
    """A rule was broken: send the error frame, close 1008."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


class ElevenLabsSim:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        ttfb: Latency | None = None,
        frame_gap: Latency | None = None,
        frame_seconds: float = 0.25,
        max_contexts: int = 5,
        idle_timeout: float | None = None,
        on_frame_sent: Callable[[float, dict[str, Any]], None] | None = None,
    ) -> None:
        self.api_key = api_key
        self.ttfb = ttfb or Fixed(0.0)
        self.frame_gap = frame_gap or Fixed(0.0)
        self.frame_seconds = frame_seconds
        self.max_contexts = max_contexts
        self.idle_timeout = idle_timeout  # overrides the query's inactivity_timeout
        self.on_frame_sent = on_frame_sent
        self.connections: list[ConnectionLog] = []
        self.http_requests: list[dict[str, Any]] = []
        self.port = 0
        self._rate_limits: deque[float] = deque()

    @property
    def url(self) -> str:
        """The HTTP base URL (``ELEVENLABS_URL``); WebSocket URLs derive from it."""
        return f"http://127.0.0.1:{self.port}"

    def inject_rate_limit(self, retry_after: float = 1.0) -> None:
        """The next handshake or HTTP request is answered 429."""
        self._rate_limits.append(retry_after)

    async def serve(
        self, host: str = "127.0.0.1", port: int = 0,
        *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle_tcp, listeners)
            task_status.started(self.port)

    async def _handle_tcp(self, stream: trio.SocketStream) -> None:
        async with stream:
            head = await read_head(stream)
            if head is None:
                return
            replay = Replay(stream, head)
            if _WEBSOCKET_UPGRADE.search(head.split(b"\r\n\r\n", 1)[0]):
                async with trio.open_nursery() as nursery:
                    request = await trio_websocket.wrap_server_stream(nursery, replay)
                    await self._handle_ws(request)
                    nursery.cancel_scope.cancel()
            else:
                await serve_http(replay, self._handle_http)

    # -- WebSocket ----------------------------------------------------------------

    async def _handle_ws(self, request: WebSocketRequest) -> None:
        target = urlsplit(request.path)
        voice_id, _, endpoint = target.path.removeprefix(_PREFIX).partition("/")
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        output_format = query.get("output_format", "pcm_8000")
        if not target.path.startswith(_PREFIX) or endpoint not in ("stream-input",
                                                                  "multi-stream-input"):
            await _reject(request, 404, "not_found", "Unknown endpoint.")
            return
        if output_format not in wire.FORMATS:
            await _reject(request, 400, "invalid_output_format",
                          f"Unsupported output_format {output_format}.")
            return
        if self._rate_limits:
            retry_after = self._rate_limits.popleft()
            await _reject(request, 429, "too_many_concurrent_requests",
                          "Too many concurrent requests.",
                          [(b"retry-after", f"{retry_after:g}".encode())])
            return
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        log = ConnectionLog(endpoint, voice_id, query)
        self.connections.append(log)
        ws = await request.accept()
        session = _Session(self, ws, log, output_format, headers.get("xi-api-key"))
        await session.run()

    # -- HTTP -----------------------------------------------------------------------

    async def _handle_http(self, request: HttpRequest) -> HttpResponse:
        target = urlsplit(request.target)
        voice_id, _, endpoint = target.path.removeprefix(_PREFIX).partition("/")
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        output_format = query.get("output_format", "pcm_8000")
        if request.method != "POST" or endpoint != "stream":
            return _json_response(404, "not_found", "Unknown endpoint.")
        if self._rate_limits:
            retry_after = self._rate_limits.popleft()
            return _json_response(429, "too_many_concurrent_requests",
                                  "Too many concurrent requests.",
                                  [("retry-after", f"{retry_after:g}")])
        if self.api_key is not None and request.headers.get("xi-api-key") != self.api_key:
            return _json_response(401, "invalid_api_key", "Invalid API key")
        if output_format not in wire.FORMATS:
            return _json_response(400, "invalid_output_format", "Unsupported output_format.")
        try:
            body = json.loads(request.body)
            text = str(body["text"])
        except (ValueError, KeyError, TypeError):
            return _json_response(400, "invalid_request", "Body must be JSON with 'text'.")
        self.http_requests.append(body)

        async def chunks() -> AsyncIterator[bytes]:
            await trio.sleep(self.ttfb.sample())
            audio = render(text, output_format, voice_id)
            step = _frame_bytes(self.frame_seconds, output_format)
            for i in range(0, len(audio), step):
                if i:
                    await trio.sleep(self.frame_gap.sample())
                yield audio[i:i + step]

        return HttpResponse(200, [("content-type", "audio/basic")], chunks())


class _Session:
    """One accepted WebSocket: messages in, generations queued, frames out."""

    def __init__(self, sim: ElevenLabsSim, ws: WebSocketConnection, log: ConnectionLog,
                 output_format: str, header_key: str | None) -> None:
        self.sim = sim
        self.ws = ws
        self.log = log
        self.format = output_format
        self.header_key = header_key
        self.multi = log.endpoint == "multi-stream-input"
        self.idle = sim.idle_timeout or min(180.0, float(log.query.get("inactivity_timeout",
                                                                       "20")))
        self.contexts: dict[str | None, _Context] = {}
        # One generation queue and task per context: contexts speak concurrently.
        self.queues: dict[str | None, trio.MemorySendChannel[tuple[str, str]]] = {}
        self.generators_done: list[trio.Event] = []
        self.nursery: trio.Nursery | None = None
        self.started = False
        self.schedule = DEFAULT_SCHEDULE
        self.scope = trio.CancelScope()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.scope = nursery.cancel_scope
            self.nursery = nursery
            try:
                await self._receive()
            except _Fatal as fatal:
                self.log.errors.append(fatal.error)
                for queue in self.queues.values():
                    queue.close()
                with suppress(ConnectionClosed):
                    await self.ws.send_message(json.dumps(
                        {"message": fatal.message, "error": fatal.error, "code": 1008}))
                await self._close(1008, fatal.message[:120])
            except ConnectionClosed as exc:
                self._client_closed(exc)
            nursery.cancel_scope.cancel()

    def _client_closed(self, exc: ConnectionClosed) -> None:
        if self.log.close_code is None:
            self.log.closed_by_client = True
            self.log.close_code = exc.reason.code if exc.reason else None
        self.scope.cancel()

    async def _receive(self) -> None:
        while True:
            message: str | bytes | None = None
            with trio.move_on_after(self.idle):
                message = await self.ws.get_message()
            if message is None:
                raise _Fatal("input_timeout_exceeded", f"Have not received new text for "
                             f"{self.idle:g} seconds. Closing the connection.")
            if isinstance(message, bytes):
                raise _Fatal("invalid_message", "Binary messages are not supported.")
            try:
                data = json.loads(message)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise _Fatal("invalid_message", "Message must be a JSON object.")
            self.log.received.append(data)
            if not self._handle(data):
                await trio.sleep_forever()  # the generator closes the socket

    def _handle(self, data: dict[str, Any]) -> bool:
        """Apply one client message; False once the stream is ending."""
        if not self.started:
            key = self.header_key or data.get("xi_api_key")
            if self.sim.api_key is not None and key != self.sim.api_key:
                raise _Fatal("invalid_api_key", "Invalid API key")
            if data.get("text") != " ":
                raise _Fatal("invalid_message", "The first message must be the "
                             "initialisation message with text ' '.")
            self.started = True
            schedule = (data.get("generation_config") or {}).get("chunk_length_schedule")
            self.schedule = tuple(schedule) if schedule else DEFAULT_SCHEDULE
            self.contexts[data.get("context_id") if self.multi else None] = _Context(
                schedule=self.schedule)
            return True
        if self.multi:
            return self._handle_multi(data)
        text = data.get("text")
        if not isinstance(text, str):
            raise _Fatal("invalid_message", "Field 'text' is required.")
        if text == "":  # EOS
            self._generate_buffer(None)
            self._queue("final", None)
            self._queue("close", None)
            return False
        self._append(None, text, bool(data.get("flush")))
        return True

    def _handle_multi(self, data: dict[str, Any]) -> bool:
        if data.get("close_socket"):
            for open_id in list(self.contexts):
                self._generate_buffer(open_id)
                self._queue("final", open_id)
            self._queue("close", None)
            return False
        context_id = data.get("context_id")
        context = self.contexts.get(context_id)
        if data.get("close_context"):
            if context is not None:
                # Unflushed text is dropped; flushed text is still spoken, then isFinal.
                del self.contexts[context_id]
                self._queue("final", context_id)
            return True
        text = data.get("text")
        if text == "" and not data.get("flush"):
            return True  # keep-alive for the context
        if context is None:
            if len(self.contexts) >= self.sim.max_contexts:
                raise _Fatal("max_active_conversations",
                             f"At most {self.sim.max_contexts} contexts may be open.")
            config = data.get("generation_config") or {}
            schedule = config.get("chunk_length_schedule")
            self.contexts[context_id] = context = _Context(
                schedule=tuple(schedule) if schedule else self.schedule)
        self._append(context_id, text if isinstance(text, str) else "",
                     bool(data.get("flush")))
        return True

    def _append(self, context_id: str | None, text: str, flush: bool) -> None:
        context = self.contexts[context_id]
        context.buffer += text
        if flush:
            self._generate_buffer(context_id)
            return
        schedule = context.schedule
        threshold = schedule[min(context.generations, len(schedule) - 1)]
        if len(context.buffer) >= threshold:
            self._generate_buffer(context_id)

    def _generate_buffer(self, context_id: str | None) -> None:
        context = self.contexts[context_id]
        text, context.buffer = context.buffer, ""
        if text.strip():
            context.generations += 1
            self.log.generations.append((context_id, text))
            self._queue("speak", context_id, text)

    def _queue(self, kind: str, context_id: str | None, text: str = "") -> None:
        """Queue ``speak``/``final`` work for a context, or ``close`` the socket once
        every context has finished."""
        assert self.nursery is not None
        if kind == "close":
            for queue in self.queues.values():
                queue.close()
            self.nursery.start_soon(self._close_when_done)
            return
        if context_id not in self.queues:
            self.queues[context_id], jobs = trio.open_memory_channel[tuple[str, str]](1000)
            done = trio.Event()
            self.generators_done.append(done)
            self.nursery.start_soon(self._generate, context_id, jobs, done)
        queue = self.queues[context_id]
        queue.send_nowait((kind, text))
        if kind == "final":
            queue.close()  # a reused context id starts a new queue
            del self.queues[context_id]

    async def _generate(self, context_id: str | None,
                        jobs: trio.MemoryReceiveChannel[tuple[str, str]], done: trio.Event) -> None:
        try:
            async for kind, text in jobs:
                if kind == "speak":
                    await self._speak(context_id, text)
                else:
                    self.log.finals.append(context_id)
                    await self._send({"isFinal": True} if not self.multi else
                                     {"isFinal": True, "contextId": context_id})
        except ConnectionClosed as exc:
            self._client_closed(exc)
        finally:
            done.set()

    async def _close_when_done(self) -> None:
        for done in list(self.generators_done):
            await done.wait()
        await self._close(1000, None)
        self.scope.cancel()

    async def _speak(self, context_id: str | None, text: str) -> None:
        await trio.sleep(self.sim.ttfb.sample())
        audio = render(text, self.format, self.log.voice_id)
        step = _frame_bytes(self.sim.frame_seconds, self.format)
        seconds = wire.audio_seconds(len(audio), self.format)
        for i in range(0, len(audio), step):
            if i:
                await trio.sleep(self.sim.frame_gap.sample())
            frame: dict[str, Any] = {"audio": base64.b64encode(audio[i:i + step]).decode(),
                                     "isFinal": None}
            alignment = _alignment(text, seconds) if i == 0 else None
            frame["normalizedAlignment"] = alignment
            frame["alignment"] = alignment
            if self.multi:
                frame["contextId"] = context_id
            await self._send(frame)
            self.log.audio.setdefault(context_id, bytearray()).extend(audio[i:i + step])

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_message(json.dumps(frame))
        if self.sim.on_frame_sent is not None:
            self.sim.on_frame_sent(trio.current_time(), frame)

    async def _close(self, code: int, reason: str | None) -> None:
        self.log.close_code = code
        with trio.move_on_after(5):
            await self.ws.aclose(code, reason)


def render(text: str, output_format: str, voice_id: str = "") -> bytes:
    """``text`` spoken by espeak-ng, in ``output_format``'s bytes."""
    voice = voice_id if voice_id in ("en", "en-us", "hi") else "en-us"
    samples, source_rate = espeak.synthesize(text, voice=voice)
    rate, encoding = wire.audio_format(output_format)
    pcm = resample_oneshot(samples, source_rate, rate, quality="HQ")
    if encoding == "ulaw":
        return bytes(dsp.ulaw_encode(pcm))
    if encoding == "alaw":
        return bytes(dsp.alaw_encode(pcm))
    return np.asarray(pcm, dtype="<i2").tobytes()


def _frame_bytes(seconds: float, output_format: str) -> int:
    per_second = wire.bytes_per_second(output_format)
    step = max(2, round(seconds * per_second))
    return step - step % 2


def _alignment(text: str, seconds: float) -> dict[str, Any]:
    """Characters spread evenly over the audio: the shape the API sends."""
    chars = list(text)
    each = int(seconds * 1000 / max(1, len(chars)))
    return {"chars": chars, "charStartTimesMs": [i * each for i in range(len(chars))],
            "charDurationsMs": [each] * len(chars)}


async def _reject(request: WebSocketRequest, status: int, code: str, message: str,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": {"status": code, "message": message}}).encode()
    await request.reject(status, extra_headers=[(b"content-type", b"application/json"),
                                                *(extra or [])], body=body)


def _json_response(status: int, code: str, message: str,
                   extra: list[tuple[str, str]] | None = None) -> HttpResponse:
    body = json.dumps({"detail": {"status": code, "message": message}}).encode()
    return HttpResponse(status, [("content-type", "application/json"), *(extra or [])],
                               body)


@asynccontextmanager
async def open_elevenlabs_sim(**options: Any) -> AsyncIterator[ElevenLabsSim]:
    """Start an :class:`ElevenLabsSim` on a free loopback port; stop it on exit."""
    sim = ElevenLabsSim(**options)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve)
        yield sim
        nursery.cancel_scope.cancel()

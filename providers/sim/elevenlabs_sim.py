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
  closes 1000. Frames carry ``contextId``. Whether a bare ``flush`` is answered
  with ``isFinal`` too is a knob (``finals_per_flush``, below).
- ``POST /v1/text-to-speech/{voice}/stream?output_format=…`` (HTTP): body
  ``{text, model_id, voice_settings}``, chunked audio.

Rules enforced with an error frame ``{"message", "error", "code": 1008}`` then
close 1008: wrong or missing ``xi-api-key`` (``invalid_api_key``), a first
message that is not the single-space init, bad JSON or binary frames
(``invalid_message``), too many contexts, and ``inactivity_timeout`` (query, 20 s
default) without any client message (``input_timeout_exceeded``). Generation
is sequential per socket, ``isFinal`` follows every flush (by default) and
every closed context, and ``close_context`` stops a speaking context (details
in :mod:`providers.sim.elevenlabs_ws`).

Fault knobs (constructor options, or ``inject_*`` calls that each apply to the
next connection or request, in order — the server-level call tests use the same):

- ``sequential`` (True): one generation at a time per socket, as the live
  service does; False lets contexts speak concurrently;
- ``close_context_discards`` (False): ``close_context`` on a context that has
  not sent audio yet drops its flushed-but-unsent audio (an empty reply);
- ``finals_per_flush`` (True): multi-stream-input answers every ``flush`` with
  ``isFinal`` once its audio is out; False: only a context's end
  (``close_context``, ``close_socket``) is answered, once its remaining audio
  is out — the live-like behaviour (see :mod:`providers.sim.elevenlabs_ws`);
  ``python -m providers.sim --elevenlabs-finals flush|close``;
- :meth:`ElevenLabsSim.inject_missing_final` ``(count)``: the next ``count``
  ``isFinal`` frames (any connection) are never sent — a close the vendor
  does not answer;
- :meth:`ElevenLabsSim.inject_internal_error` ``(after_frames)``: the next
  WebSocket connection sends ``{"message": "…not charged…", "error":
  "internal_error", "code": 1008}`` and closes 1008 just before its
  ``after_frames``-th audio frame (mid-reply);
- :meth:`ElevenLabsSim.inject_drop` ``(after_frames)``: the next WebSocket
  connection (either endpoint) or HTTP ``/stream`` request has its TCP
  connection reset at that point — no close frame, a body cut off mid-way;
- :meth:`ElevenLabsSim.inject_rate_limit` ``(retry_after, once_accepted)``: the
  next handshake or HTTP request (once ``once_accepted`` WebSocket connections
  have been accepted in all: 1 = a reconnect, not the first connect) answers
  429 ``too_many_concurrent_requests`` with ``retry-after``;
- :meth:`ElevenLabsSim.inject_silent_generation` ``(count)``: the next
  ``count`` generations (any connection) send no audio, their isFinal still
  comes — the vendor dropped the audio of a flushed text;
- :meth:`ElevenLabsSim.inject_stall` ``(seconds)``: the next generation (any
  connection) starts ``seconds`` late — the vendor accepted the text and sends
  nothing meanwhile, the socket stays open (then it speaks as usual);
- ``ttfb`` / ``frame_gap`` / ``frame_seconds`` / ``idle_timeout``: timing.

Audio is real speech from espeak-ng in the requested format
(:mod:`providers.sim.elevenlabs_audio`), sent in frames of ``frame_seconds``
after ``ttfb.sample()`` per generation; the first frame of a generation carries
the alignment.

This module is the server: the shared port (HTTP and WebSocket upgrades on one
listener), the handshake checks (endpoint, output format, injected 429s), the
HTTP endpoint, and the knobs and logs tests read. What happens on an accepted
WebSocket (both protocols, message rules, generation and framing) is
:mod:`providers.sim.elevenlabs_ws`.
"""

from __future__ import annotations

import json
import re
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
import trio_websocket
from trio_websocket import WebSocketRequest

from providers.sim.elevenlabs_audio import frame_bytes, render
from providers.sim.elevenlabs_ws import ConnectionLog, Fault, WebSocketSession
from providers.sim.http11 import HttpRequest, HttpResponse, Replay, read_head, serve_http
from providers.sim.latency import Fixed, Latency
from providers.tts import elevenlabs_wire as wire

_PREFIX = "/v1/text-to-speech/"
_WEBSOCKET_UPGRADE = re.compile(rb"\r\nupgrade:[ \t]*websocket", re.IGNORECASE)


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
        sequential: bool = True,
        close_context_discards: bool = False,
        finals_per_flush: bool = True,
        on_frame_sent: Callable[[float, dict[str, Any]], None] | None = None,
    ) -> None:
        self.api_key = api_key
        self.ttfb = ttfb or Fixed(0.0)
        self.frame_gap = frame_gap or Fixed(0.0)
        self.frame_seconds = frame_seconds
        self.max_contexts = max_contexts
        self.idle_timeout = idle_timeout  # overrides the query's inactivity_timeout
        self.sequential = sequential
        self.close_context_discards = close_context_discards
        self.finals_per_flush = finals_per_flush
        self.on_frame_sent = on_frame_sent
        self.connections: list[ConnectionLog] = []
        self.http_requests: list[dict[str, Any]] = []
        #: Every handshake or request answered 429 by an injected rate limit: trio times.
        self.rate_limited: list[float] = []
        self.port = 0
        self._rate_limits: deque[tuple[float, int]] = deque()
        self._faults: deque[Fault] = deque()
        self.silent_generations = 0  # see inject_silent_generation
        self.missing_finals = 0  # see inject_missing_final
        self._stalls: deque[float] = deque()

    @property
    def url(self) -> str:
        """The HTTP base URL (``ELEVENLABS_URL``); WebSocket URLs derive from it."""
        return f"http://127.0.0.1:{self.port}"

    def inject_rate_limit(self, retry_after: float = 1.0, *, once_accepted: int = 0) -> None:
        """The next handshake or HTTP request is answered 429 — once
        ``once_accepted`` WebSocket connections have been accepted in all."""
        self._rate_limits.append((retry_after, once_accepted))

    def inject_internal_error(self, after_frames: int = 0) -> None:
        """The next WebSocket connection fails with the in-band ``internal_error``
        frame and close 1008 just before its ``after_frames``-th audio frame."""
        self._faults.append(Fault("internal_error", after_frames))

    def inject_drop(self, after_frames: int = 0) -> None:
        """The next WebSocket connection or HTTP request is reset (TCP RST, no
        close frame) just before its ``after_frames``-th audio frame or chunk."""
        self._faults.append(Fault("drop", after_frames))

    def inject_silent_generation(self, count: int = 1) -> None:
        """The next ``count`` generations produce no audio (isFinal still follows)."""
        self.silent_generations += count

    def inject_missing_final(self, count: int = 1) -> None:
        """The next ``count`` isFinal frames (any connection) are not sent."""
        self.missing_finals += count

    def inject_stall(self, seconds: float) -> None:
        """The next generation waits ``seconds`` more before its first audio
        (several calls stall that many generations, in order)."""
        if seconds < 0:
            raise ValueError("a stall must be >= 0 s")
        self._stalls.append(seconds)

    def stall_nowait(self) -> float:
        """The extra delay of the generation starting now (an injected stall, consumed)."""
        return self._stalls.popleft() if self._stalls else 0.0

    def _rate_limit(self) -> float | None:
        """The retry-after of an injected 429 due now, if any (consumed)."""
        if self._rate_limits and len(self.connections) >= self._rate_limits[0][1]:
            self.rate_limited.append(trio.current_time())
            return self._rate_limits.popleft()[0]
        return None

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

            async def abort() -> None:
                # SO_LINGER 0: close() sends RST, as a dead network path does.
                stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         struct.pack("ii", 1, 0))
                await trio.aclose_forcefully(stream)

            if _WEBSOCKET_UPGRADE.search(head.split(b"\r\n\r\n", 1)[0]):
                async with trio.open_nursery() as nursery:
                    request = await trio_websocket.wrap_server_stream(nursery, replay)
                    await self._handle_ws(request, abort)
                    nursery.cancel_scope.cancel()
            else:
                await serve_http(replay, partial(self._handle_http, abort=abort))

    # -- WebSocket ----------------------------------------------------------------

    async def _handle_ws(self, request: WebSocketRequest,
                         abort: Callable[[], Awaitable[None]]) -> None:
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
        retry_after = self._rate_limit()
        if retry_after is not None:
            await _reject(request, 429, "too_many_concurrent_requests",
                          "Too many concurrent requests.",
                          [(b"retry-after", f"{retry_after:g}".encode())])
            return
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        log = ConnectionLog(endpoint, voice_id, query)
        self.connections.append(log)
        fault = self._faults.popleft() if self._faults else None
        ws = await request.accept()
        session = WebSocketSession(self, ws, log, output_format, headers.get("xi-api-key"),
                                   fault, abort)
        await session.run()

    # -- HTTP -----------------------------------------------------------------------

    async def _handle_http(self, request: HttpRequest, *,
                           abort: Callable[[], Awaitable[None]]) -> HttpResponse:
        target = urlsplit(request.target)
        voice_id, _, endpoint = target.path.removeprefix(_PREFIX).partition("/")
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        output_format = query.get("output_format", "pcm_8000")
        if request.method != "POST" or endpoint != "stream":
            return _json_response(404, "not_found", "Unknown endpoint.")
        retry_after = self._rate_limit()
        if retry_after is not None:
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
        fault = self._faults.popleft() if self._faults else None

        async def chunks() -> AsyncIterator[bytes]:
            await trio.sleep(self.ttfb.sample())
            audio = render(text, output_format, voice_id)
            step = frame_bytes(self.frame_seconds, output_format)
            for n, i in enumerate(range(0, len(audio), step)):
                if i:
                    await trio.sleep(self.frame_gap.sample())
                if fault is not None and n == fault.after_frames:
                    await abort()  # the body breaks off here
                    return
                yield audio[i:i + step]

        return HttpResponse(200, [("content-type", "audio/basic")], chunks())


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

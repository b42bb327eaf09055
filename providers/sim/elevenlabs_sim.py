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
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
import trio_websocket
from trio_websocket import WebSocketRequest

from providers.sim.elevenlabs_audio import frame_bytes, render
from providers.sim.elevenlabs_ws import ConnectionLog, WebSocketSession
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
        session = WebSocketSession(self, ws, log, output_format, headers.get("xi-api-key"))
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
            step = frame_bytes(self.frame_seconds, output_format)
            for i in range(0, len(audio), step):
                if i:
                    await trio.sleep(self.frame_gap.sample())
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

"""One accepted WebSocket of the loopback ElevenLabs server: the ``stream-input``
and ``multi-stream-input`` protocols, server side.

:class:`WebSocketSession` (made by :class:`~providers.sim.elevenlabs_sim.ElevenLabsSim`
after the handshake checks) reads client messages, buffers text per context
until the ``chunk_length_schedule`` threshold, ``flush`` or EOS / ``close_context``
/ ``close_socket``, and queues generations; one generator task per context
speaks them (contexts speak concurrently) as base64 audio frames with alignment
on the first frame of each generation, then ``isFinal``. A broken rule
(:class:`Fatal`) sends the error frame ``{"message", "error", "code": 1008}`` and
closes 1008; an idle stream (no client message for ``inactivity_timeout``) is one
such rule. Everything the connection did is recorded in its :class:`ConnectionLog`.
"""

from __future__ import annotations

import base64
import json
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from providers.sim.elevenlabs_audio import frame_bytes, render
from providers.tts import elevenlabs_wire as wire

if TYPE_CHECKING:
    from providers.sim.elevenlabs_sim import ElevenLabsSim

DEFAULT_SCHEDULE = (120, 160, 250, 290)


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


class Fatal(Exception):
    """A rule was broken: send the error frame, close 1008."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


class WebSocketSession:
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
            except Fatal as fatal:
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
                raise Fatal("input_timeout_exceeded", f"Have not received new text for "
                             f"{self.idle:g} seconds. Closing the connection.")
            if isinstance(message, bytes):
                raise Fatal("invalid_message", "Binary messages are not supported.")
            try:
                data = json.loads(message)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise Fatal("invalid_message", "Message must be a JSON object.")
            self.log.received.append(data)
            if not self._handle(data):
                await trio.sleep_forever()  # the generator closes the socket

    def _handle(self, data: dict[str, Any]) -> bool:
        """Apply one client message; False once the stream is ending."""
        if not self.started:
            key = self.header_key or data.get("xi_api_key")
            if self.sim.api_key is not None and key != self.sim.api_key:
                raise Fatal("invalid_api_key", "Invalid API key")
            if data.get("text") != " ":
                raise Fatal("invalid_message", "The first message must be the "
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
            raise Fatal("invalid_message", "Field 'text' is required.")
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
                raise Fatal("max_active_conversations",
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
        step = frame_bytes(self.sim.frame_seconds, self.format)
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


def _alignment(text: str, seconds: float) -> dict[str, Any]:
    """Characters spread evenly over the audio: the shape the API sends."""
    chars = list(text)
    each = int(seconds * 1000 / max(1, len(chars)))
    return {"chars": chars, "charStartTimesMs": [i * each for i in range(len(chars))],
            "charDurationsMs": [each] * len(chars)}

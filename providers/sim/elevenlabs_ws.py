"""One accepted WebSocket of the loopback ElevenLabs server: the ``stream-input``
and ``multi-stream-input`` protocols, server side.

:class:`WebSocketSession` (made by :class:`~providers.sim.elevenlabs_sim.ElevenLabsSim`
after the handshake checks) reads client messages, buffers text per context
until the ``chunk_length_schedule`` threshold, ``flush`` or EOS / ``close_context``
/ ``close_socket``, and queues generation jobs. Generation is **sequential per
socket** by default, as the live service behaves: one worker speaks the jobs of
every context in arrival order, so a context that keeps generating delays the
next one (``sequential=False``: one worker per context, contexts speak
concurrently). A job speaks base64 audio frames with alignment on the first
frame of each generation.

``isFinal`` (multi-stream-input), one of two behaviours (``ElevenLabsSim.
finals_per_flush``), because both are reported and a client must handle either:

- per flush (the default, our reading of the API so far): after each ``flush``
  of a context, once the audio of everything flushed so far has gone out,
  ``{"isFinal": true, "contextId"}`` — one per flush, in order (the context
  stays open); and once more when the context is closed;
- at the context's end only (``finals_per_flush=False``, live-like): a bare
  ``flush`` is not answered; ``close_context`` (or ``close_socket``) is, with
  one ``isFinal`` once the context's remaining audio has gone out. The
  vendor's AsyncAPI for ``multi-stream-input`` describes ``FinalOutputMulti``
  ``{isFinal: true, contextId}`` as "the final message for the context", and an
  integrator verified on the live API (bolna-ai/bolna PR #790, 2026-06) that
  "flush alone yields no isFinal; flush + close_context yields exactly one
  isFinal with complete audio".

stream-input sends ``{"isFinal": true}`` after EOS either way. An injected
missing final (``ElevenLabsSim.inject_missing_final``) is never sent.

``close_context`` (what the live service does depends on timing; the sim makes
it deterministic):

- on a context whose audio has started: the context **stops** — the rest of the
  generation in progress and its queued generations are dropped — then isFinal
  (barge-in without reconnecting);
- on a context that has not sent audio yet: by default its flushed text is still
  spoken, then isFinal (what the live service usually does when a close follows
  a flush at once: integrations see audio of a context arrive after they closed
  it before its first byte) — and, generation being sequential, a context sent
  after it waits until it is spoken; with ``close_context_discards`` the
  flushed-but-unsent audio is dropped and isFinal comes at once — a reply
  closed right after its flush comes back empty (what the live service does
  under load);
- on a context already closed: ignored (a closed context cannot be stopped).

A broken rule (:class:`Fatal`) sends the error frame ``{"message", "error",
"code": 1008}`` and closes 1008; an idle stream (no client message for
``inactivity_timeout``) is one such rule. An injected :class:`Fault` trips when
the connection is about to send its ``after_frames``-th audio frame: an in-band
``internal_error`` then close 1008, or a TCP reset with no close frame.
Everything the connection did is recorded in its :class:`ConnectionLog`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from providers.sim.elevenlabs_audio import frame_bytes, render
from providers.tts import elevenlabs_wire as wire

if TYPE_CHECKING:
    from providers.sim.elevenlabs_sim import ElevenLabsSim

DEFAULT_SCHEDULE = (120, 160, 250, 290)
INTERNAL_ERROR = ("An internal server error occurred while generating audio. Please try "
                  "again. You were not charged for this request.")


@dataclass(frozen=True)
class Fault:
    """A fault for one connection (or HTTP request), tripped before its
    ``after_frames``-th audio frame (0: before the first)."""

    kind: Literal["internal_error", "drop"]
    after_frames: int = 0


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
    missing_finals: list[str | None] = field(default_factory=list)  # injected, not sent
    errors: list[str] = field(default_factory=list)
    close_code: int | None = None
    closed_by_client: bool = False
    fault: str | None = None  # the injected fault that tripped, if any
    fault_at: float | None = None  # and when (trio time)
    discarded: list[str | None] = field(default_factory=list)  # contexts stopped or dropped
    stalled: list[str | None] = field(default_factory=list)  # contexts whose generation stalled


@dataclass
class _Context:
    buffer: str = ""
    generations: int = 0
    schedule: tuple[int, ...] = DEFAULT_SCHEDULE
    sent_audio: bool = False
    pending: int = 0  # generations queued or in progress
    stopped: bool = False  # closed while speaking (or dropped): skip its remaining work


class Fatal(Exception):
    """A rule was broken: send the error frame, close 1008."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


Job = tuple[Literal["speak", "final"], _Context, str | None, str]


class WebSocketSession:
    """One accepted WebSocket: messages in, generations queued, frames out."""

    def __init__(self, sim: ElevenLabsSim, ws: WebSocketConnection, log: ConnectionLog,
                 output_format: str, header_key: str | None, fault: Fault | None,
                 abort: Callable[[], Awaitable[None]]) -> None:
        self.sim = sim
        self.ws = ws
        self.log = log
        self.format = output_format
        self.header_key = header_key
        self.fault = fault
        self.abort = abort
        self.multi = log.endpoint == "multi-stream-input"
        self.idle = sim.idle_timeout or min(180.0, float(log.query.get("inactivity_timeout",
                                                                       "20")))
        self.contexts: dict[str | None, _Context] = {}
        # One job queue and worker per socket (sequential) or per context.
        self.queues: dict[object, trio.MemorySendChannel[Job]] = {}
        self.workers_done: list[trio.Event] = []
        self.nursery: trio.Nursery | None = None
        self.started = False
        self.schedule = DEFAULT_SCHEDULE
        self.frames_sent = 0
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
                await self._fail(fatal.error, fatal.message)
            except ConnectionClosed as exc:
                self._client_closed(exc)
            nursery.cancel_scope.cancel()

    def _client_closed(self, exc: ConnectionClosed) -> None:
        if self.log.close_code is None:
            self.log.closed_by_client = True
            self.log.close_code = exc.reason.code if exc.reason else None
        self.scope.cancel()

    async def _fail(self, error: str, message: str) -> None:
        with suppress(ConnectionClosed):
            await self.ws.send_message(json.dumps({"message": message, "error": error,
                                                   "code": 1008}))
        await self._close(1008, message[:120])

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
                await trio.sleep_forever()  # the worker closes the socket

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
            self._close_when_done()
            return False
        self._append(None, text, bool(data.get("flush")))
        return True

    def _handle_multi(self, data: dict[str, Any]) -> bool:
        if data.get("close_socket"):
            for open_id in list(self.contexts):
                self._generate_buffer(open_id)
                self._queue("final", open_id)
            self._close_when_done()
            return False
        context_id = data.get("context_id")
        context = self.contexts.get(context_id)
        if data.get("close_context"):
            if context is not None:  # a context already closed is not found: ignored
                self._close_context(context_id, context)
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
        if data.get("flush") and self.sim.finals_per_flush:
            self._queue("final", context_id)  # the end of this flush's audio
        return True

    def _close_context(self, context_id: str | None, context: _Context) -> None:
        del self.contexts[context_id]  # unflushed text is dropped with it
        if context.pending and (context.sent_audio or self.sim.close_context_discards):
            context.stopped = True
            self.log.discarded.append(context_id)
        self._queue("final", context_id, context, closing=True)

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
            self._queue("speak", context_id, text=text)

    # -- generation ------------------------------------------------------------------

    def _queue(self, kind: Literal["speak", "final"], context_id: str | None,
               context: _Context | None = None, *, text: str = "",
               closing: bool = False) -> None:
        assert self.nursery is not None
        context = context or self.contexts[context_id]
        key: object = "socket" if self.sim.sequential else id(context)
        if key not in self.queues:
            self.queues[key], jobs = trio.open_memory_channel[Job](1000)
            done = trio.Event()
            self.workers_done.append(done)
            self.nursery.start_soon(self._work, jobs, done)
        context.pending += kind == "speak"
        job: Job = (kind, context, context_id, "closing" if closing else text)
        self.queues[key].send_nowait(job)

    def _close_when_done(self) -> None:
        """Close 1000 once every queued job has been done."""
        assert self.nursery is not None
        for queue in self.queues.values():
            queue.close()
        self.nursery.start_soon(self._close_after_workers)

    async def _close_after_workers(self) -> None:
        for done in list(self.workers_done):
            await done.wait()
        await self._close(1000, None)
        self.scope.cancel()

    async def _work(self, jobs: trio.MemoryReceiveChannel[Job], done: trio.Event) -> None:
        try:
            async for kind, context, context_id, text in jobs:
                closing = kind == "final" and text == "closing"
                if kind == "speak":
                    if not context.stopped:
                        await self._speak(context, context_id, text)
                    context.pending -= 1
                elif context.stopped and not closing:
                    continue
                elif self.sim.missing_finals > 0:  # an injected loss of this isFinal
                    self.sim.missing_finals -= 1
                    self.log.missing_finals.append(context_id)
                else:  # an isFinal
                    self.log.finals.append(context_id)
                    await self._send({"isFinal": True} if not self.multi else
                                     {"isFinal": True, "contextId": context_id})
        except ConnectionClosed as exc:
            self._client_closed(exc)
        finally:
            done.set()

    async def _speak(self, context: _Context, context_id: str | None, text: str) -> None:
        stall = self.sim.stall_nowait()
        if stall:
            self.log.stalled.append(context_id)
        await trio.sleep(self.sim.ttfb.sample() + stall)
        if self.sim.silent_generations > 0:  # an injected loss: no audio at all
            self.sim.silent_generations -= 1
            self.log.discarded.append(context_id)
            return
        audio = render(text, self.format, self.log.voice_id)
        step = frame_bytes(self.sim.frame_seconds, self.format)
        seconds = wire.audio_seconds(len(audio), self.format)
        for i in range(0, len(audio), step):
            if i:
                await trio.sleep(self.sim.frame_gap.sample())
            if context.stopped:
                return  # closed mid-generation: the rest is never sent
            if self.fault is not None and self.frames_sent == self.fault.after_frames:
                await self._trip(self.fault)
            frame: dict[str, Any] = {"audio": base64.b64encode(audio[i:i + step]).decode(),
                                     "isFinal": None}
            alignment = _alignment(text, seconds) if i == 0 else None
            frame["normalizedAlignment"] = alignment
            frame["alignment"] = alignment
            if self.multi:
                frame["contextId"] = context_id
            await self._send(frame)
            context.sent_audio = True
            self.frames_sent += 1
            self.log.audio.setdefault(context_id, bytearray()).extend(audio[i:i + step])

    async def _trip(self, fault: Fault) -> None:
        """Fail the connection as injected, mid-reply; never returns."""
        self.log.fault = fault.kind
        self.log.fault_at = trio.current_time()
        if fault.kind == "internal_error":
            await self._fail("internal_error", INTERNAL_ERROR)
        else:
            self.log.close_code = 1006
            await self.abort()
        self.scope.cancel()
        await trio.sleep_forever()

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

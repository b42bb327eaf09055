"""Loopback OpenAI chat-completions server (trio + h11).

Answers ``POST /v1/chat/completions`` (and ``/chat/completions``) the way the real
API does: with ``stream: true`` an SSE body of ``chat.completion.chunk`` objects —
a first delta carrying the role, content deltas, a chunk with ``finish_reason``, a
``choices: []`` chunk with ``usage`` when ``stream_options.include_usage`` is set,
then ``data: [DONE]`` — and otherwise one ``chat.completion`` JSON object.

Timing: the first token waits ``ttft.sample()``; each later token waits
``token_gap.sample()`` (default 1/50 s, i.e. 50 tokens/s). The waits make a
schedule from the request's arrival, as a vendor generates at its own pace: a
simulator process running late (a load test) sends the tokens that are due at
once rather than shifting every later one. Replies come from a
deterministic responder: ``canned`` replies keyed by the last user message, else
``responder(request_body)``, else an echo. A "token" here is a word with its
trailing space, which is what the per-token timing and usage counts are based on.

Fault knobs: faults are queued with :meth:`OpenAISim.inject` (``sim.inject(
ServerFault(500), Drop(after_tokens=3))``) and each applies to one request, in
order: :class:`RateLimit` (429 with ``retry-after``, code
``rate_limit_exceeded`` or ``insufficient_quota``), :class:`ServerFault`
(500/502/503 before any token, optional ``retry-after``), :class:`Stall` (stop
sending after N tokens, keep the socket open), :class:`StreamError` (a
mid-stream ``data: {"error": …}`` after N tokens), :class:`Drop` (reset the TCP
connection after N tokens: the body breaks off with no ``[DONE]`` and no usage).
``requests`` logs every request body; ``disconnects`` counts streams that ended
before ``[DONE]`` (the client left, or a ``Drop``); ``connections`` counts the
TCP connections accepted (a client that keeps its connections alive opens
fewer than it sends requests).
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import h11
import trio

from providers.sim.http11 import read_request
from providers.sim.latency import Fixed, Latency

Responder = Callable[[Mapping[str, Any]], str]
MODEL_SNAPSHOT = "gpt-4o-mini-2024-07-18"
_TOKEN = re.compile(r"\s*\S+\s*|\s+")


@dataclass(frozen=True)
class RateLimit:
    retry_after: float = 1.0
    code: str = "rate_limit_exceeded"  # or "insufficient_quota"


@dataclass(frozen=True)
class ServerFault:
    status: int = 500
    retry_after: float | None = None


@dataclass(frozen=True)
class Drop:
    """Reset the connection after ``after_tokens`` content tokens (0: before any)."""

    after_tokens: int = 2


@dataclass(frozen=True)
class Stall:
    after_tokens: int = 2


@dataclass(frozen=True)
class StreamError:
    after_tokens: int = 2
    message: str = "The server had an error while processing your request."


Fault = RateLimit | ServerFault | Stall | StreamError | Drop


def split_tokens(text: str) -> list[str]:
    """The sim's tokenizer: words with their surrounding whitespace kept."""
    return _TOKEN.findall(text)


def count_prompt_tokens(messages: list[Mapping[str, Any]]) -> int:
    """A stable stand-in for the vendor's count: words plus 4 per message."""
    return sum(4 + len(str(message.get("content", "")).split()) for message in messages)


class OpenAISim:
    def __init__(
        self,
        *,
        ttft: Latency | None = None,
        token_gap: Latency | None = None,
        responder: Responder | None = None,
        canned: Mapping[str, str] | None = None,
        api_key: str | None = None,
        on_chunk_sent: Callable[[float], None] | None = None,
        honour_include_usage: bool = True,
    ) -> None:
        """``honour_include_usage=False`` plays an OpenAI-compatible server that
        never sends the usage chunk of a stream."""
        self.ttft = ttft or Fixed(0.0)
        self.token_gap = token_gap or Fixed(0.02)
        self.responder = responder
        self.canned = dict(canned or {})
        self.api_key = api_key
        self.on_chunk_sent = on_chunk_sent
        self.honour_include_usage = honour_include_usage
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self.disconnects = 0  # streams the client abandoned before [DONE]
        self.connections = 0  # TCP connections accepted
        self._faults: deque[Fault] = deque()
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def inject(self, *faults: Fault) -> None:
        self._faults.extend(faults)

    def reply_for(self, body: Mapping[str, Any]) -> str:
        messages = list(body.get("messages", []))
        last_user = next(
            (str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"),
            "",
        )
        if last_user in self.canned:
            return self.canned[last_user]
        if self.responder is not None:
            return self.responder(body)
        return f"You said: {last_user}"

    async def serve(
        self, host: str = "127.0.0.1", port: int = 0,
        *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.port)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        connection = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                request = await read_request(connection, stream)
                if request is None:
                    return
                if request.method == "HEAD":  # a warm-up probe: headers only
                    await stream.send_all(connection.send(h11.Response(
                        status_code=404, headers=[("content-length", "0")])))
                    await stream.send_all(connection.send(h11.EndOfMessage()))
                elif not await self._respond(connection, stream, request.target, request.headers,
                                             request.body):
                    return
                if connection.our_state is not h11.DONE:
                    return
                try:
                    connection.start_next_cycle()
                except h11.LocalProtocolError:
                    return

    async def _respond(
        self, connection: h11.Connection, stream: trio.SocketStream, target: str,
        headers: dict[str, str], raw: bytes,
    ) -> bool:
        """Answer one request; False when the connection must be dropped."""
        path = target.split("?", 1)[0]
        if path not in ("/v1/chat/completions", "/chat/completions"):
            await _send_json(connection, stream, 404, _error("Not found", "invalid_request_error",
                                                             None))
            return True
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await _send_json(connection, stream, 401, _error(
                "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
            return True
        try:
            body = json.loads(raw)
        except ValueError:
            await _send_json(connection, stream, 400, _error(
                "We could not parse the JSON body of your request.", "invalid_request_error",
                None))
            return True
        self.requests.append(body)
        fault = self._faults.popleft() if self._faults else None
        if isinstance(fault, RateLimit):
            kind = "insufficient_quota" if fault.code == "insufficient_quota" else "requests"
            message = ("You exceeded your current quota, please check your plan and billing "
                       "details." if kind == "insufficient_quota" else
                       "Rate limit reached for requests.")
            extra = [("retry-after", f"{fault.retry_after:g}"),
                     ("retry-after-ms", str(int(fault.retry_after * 1000)))]
            await _send_json(connection, stream, 429, _error(message, kind, fault.code), extra)
            return True
        if isinstance(fault, ServerFault):
            extra = [] if fault.retry_after is None else [
                ("retry-after", f"{fault.retry_after:g}")]
            await _send_json(connection, stream, fault.status, _error(
                "The server had an error while processing your request.", "server_error", None),
                extra)
            return True
        reply = self.reply_for(body)
        tokens = split_tokens(reply)
        prompt_tokens = count_prompt_tokens(list(body.get("messages", [])))
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(tokens),
            "total_tokens": prompt_tokens + len(tokens),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        }
        ident = f"chatcmpl-sim{next(self._ids):06d}"
        model = str(body.get("model") or "gpt-4o-mini")
        model = MODEL_SNAPSHOT if model == "gpt-4o-mini" else model
        if not body.get("stream"):
            await trio.sleep(self.ttft.sample() + sum(self.token_gap.sample() for _ in tokens[1:]))
            await _send_json(connection, stream, 200, {
                "id": ident, "object": "chat.completion", "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply,
                                                     "refusal": None, "annotations": []},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": usage, "service_tier": "default", "system_fingerprint": "fp_sim",
            })
            return True
        include_usage = self.honour_include_usage and bool(
            (body.get("stream_options") or {}).get("include_usage"))
        return await self._stream(connection, stream, ident, model, tokens, usage,
                                  include_usage, fault)

    async def _stream(
        self, connection: h11.Connection, stream: trio.SocketStream, ident: str, model: str,
        tokens: list[str], usage: dict[str, Any], include_usage: bool, fault: Fault | None,
    ) -> bool:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": ident, "object": "chat.completion.chunk", "created": created,
                "model": model, "service_tier": "default", "system_fingerprint": "fp_sim",
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}],
            }
            if include_usage:
                data["usage"] = None
            return data

        await stream.send_all(connection.send(h11.Response(status_code=200, headers=[
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"), ("x-request-id", f"req_{ident[-6:]}"),
        ])))
        try:
            due = trio.current_time() + self.ttft.sample()
            await trio.sleep_until(due)
            await self._event(connection, stream, chunk({"role": "assistant", "content": "",
                                                          "refusal": None}))
            for index, token in enumerate(tokens):
                if isinstance(fault, Stall) and index == fault.after_tokens:
                    await _wait_for_disconnect(stream)
                    self.disconnects += 1
                    return False
                if isinstance(fault, Drop) and index == fault.after_tokens:
                    await _reset(stream)
                    self.disconnects += 1
                    return False
                if isinstance(fault, StreamError) and index == fault.after_tokens:
                    await self._event(connection, stream, {"error": {
                        "message": fault.message, "type": "server_error", "param": None,
                        "code": None}})
                    await stream.send_all(connection.send(h11.EndOfMessage()))
                    return True
                if index:
                    due += self.token_gap.sample()
                    await trio.sleep_until(due)
                await self._event(connection, stream, chunk({"content": token}))
            await self._event(connection, stream, chunk({}, "stop"))
            if include_usage:
                final = chunk({})
                final["choices"] = []
                final["usage"] = usage
                await self._event(connection, stream, final)
            await self._raw(connection, stream, b"data: [DONE]\n\n")
            await stream.send_all(connection.send(h11.EndOfMessage()))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.disconnects += 1
            return False
        return True

    async def _event(
        self, connection: h11.Connection, stream: trio.SocketStream, data: dict[str, Any]
    ) -> None:
        await self._raw(connection, stream, b"data: " + json.dumps(data).encode() + b"\n\n")

    async def _raw(
        self, connection: h11.Connection, stream: trio.SocketStream, data: bytes
    ) -> None:
        if self.on_chunk_sent is not None:
            self.on_chunk_sent(trio.current_time())
        await stream.send_all(connection.send(h11.Data(data=data)))


def _error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


async def _send_json(
    connection: h11.Connection, stream: trio.SocketStream, status: int, payload: object,
    extra_headers: list[tuple[str, str]] | None = None,
) -> None:
    body = json.dumps(payload).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(body))),
               *(extra_headers or [])]
    try:
        await stream.send_all(connection.send(h11.Response(status_code=status, headers=headers)))
        await stream.send_all(connection.send(h11.Data(data=body)))
        await stream.send_all(connection.send(h11.EndOfMessage()))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def _reset(stream: trio.SocketStream) -> None:
    """Drop the connection with a TCP reset (SO_LINGER 0), as a failed upstream does."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await trio.aclose_forcefully(stream)


async def _wait_for_disconnect(stream: trio.SocketStream) -> None:
    """Hold the response open (a stalled upstream) until the client hangs up."""
    try:
        while await stream.receive_some(65536):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


@asynccontextmanager
async def open_openai_sim(**options: Any) -> AsyncIterator[OpenAISim]:
    """Start an :class:`OpenAISim` on a free loopback port; stop it on exit."""
    sim = OpenAISim(**options)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve)
        yield sim
        nursery.cancel_scope.cancel()

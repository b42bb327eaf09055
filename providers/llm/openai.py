"""OpenAI chat completions (and any compatible server) over raw httpx + SSE.

Why not the ``openai`` SDK on the hot path: its defaults (600 s timeout, two
silent retries with backoff) are wrong for a phone turn, where a reply that is
not under way within a few seconds must fall back to a template line; under trio
its streams leave async generators unfinalised (ResourceWarning); and its
deadlines are per-request ``timeout=`` values rather than the named phases we
need (response headers, first token, gap between tokens). A small SSE client
over the shared :mod:`providers.http` client gives all of that with one place
for each deadline; the wire format is :mod:`providers.llm.openai_wire`. A stream
is read to the end of its body after ``[DONE]``, so the next turn reuses its
connection (no new TCP and TLS handshake per reply). The
simulator is checked against the SDK in the tests, so both speak the same wire
format.

Deadlines (from :class:`providers.config.OpenAIConfig`): ``connect_deadline``
request → response headers; ``first_token_deadline`` request → first content
delta (retries included); ``idle_deadline`` any later gap between SSE events;
``json_deadline`` a whole :meth:`OpenAIChat.complete_json`. Each raises
:class:`~providers.exceptions.DeadlineExceeded` naming the phase. The caller's
cancel scope bounds everything from outside.

Errors and retries: 401/403 → ``AuthError``; 429 ``insufficient_quota`` →
``QuotaExceeded`` (never retried); 429 otherwise → ``RateLimited``, retried at
most ``rate_limit_retries`` times and only when ``retry-after`` fits inside the
caller's deadline; 5xx → ``VendorUnavailable`` and transport failures before the
first token (``ConnectError`` before the head, ``StreamClosed`` in the body) are
retried ``server_error_retries`` times (once by default, as the SDK does) after
``retry-after`` or a short jittered pause — only if that leaves time before both
the caller's deadline and ``first_token_deadline``. Once text has been yielded
nothing is retried: a broken stream raises ``StreamClosed``, a mid-stream
``data: {"error": …}`` ``VendorError``.

Usage: the vendor's own counts when its usage chunk arrives. A stream that never
gets there (barge-in, a broken connection) is still billed for what it streamed,
so its tokens are counted as an estimate — one per streamed delta plus
:func:`~providers.llm.openai_wire.estimate_prompt_tokens` — and marked in
:attr:`providers.usage.UsageCounter.llm_tokens_estimated` (and in
``ChatUsage.estimated`` when ``[DONE]`` came without usage).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import suppress
from typing import Any

import httpx
import trio

from providers.config import OpenAIConfig
from providers.exceptions import (
    ConnectError,
    DeadlineExceeded,
    ProtocolError,
    RateLimited,
    StreamClosed,
    VendorError,
    VendorUnavailable,
)
from providers.http import map_transport_errors
from providers.llm.base import ChatEvent, ChatUsage, Message, TextDelta
from providers.llm.openai_wire import (
    VENDOR,
    ChatStream,
    estimate_prompt_tokens,
    status_error,
    usage_of,
)
from providers.reconnect import backoff_delay, retry_after_of
from providers.usage import UsageCounter
from providers.wire import json_object

#: How long a stream's body may take to end after ``[DONE]`` (``_finish_body``).
BODY_END_S = 0.1


class _Retries:
    """What one request may still retry, and until when (``until``: our own
    deadline for the phase; the caller's effective deadline also applies)."""

    def __init__(self, config: OpenAIConfig, until: float) -> None:
        self.rate_limits = config.rate_limit_retries
        self.server_errors = config.server_error_retries
        self.until = until

    def fits(self, delay: float) -> bool:
        deadline = min(self.until, trio.current_effective_deadline())
        return math.isinf(deadline) or trio.current_time() + delay < deadline

    async def after_server_error(self, error: VendorError) -> bool:
        """Wait and return True if ``error`` (a 5xx or a broken connection before
        the first token) may be retried; False to give up."""
        delay = retry_after_of(error)
        if delay is None:
            delay = backoff_delay(1, random.Random())
        if self.server_errors <= 0 or not self.fits(delay):
            return False
        self.server_errors -= 1
        await trio.sleep(delay)
        return True


class OpenAIChat:
    """A :class:`providers.llm.base.ChatModel` for one call (usage is per call)."""

    def __init__(
        self, client: httpx.AsyncClient, config: OpenAIConfig, usage: UsageCounter | None = None
    ) -> None:
        self._client = client
        self._config = config
        self.usage = usage if usage is not None else UsageCounter()

    async def stream_chat(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncGenerator[ChatEvent, None]:
        """Yield reply pieces as they arrive, then one :class:`ChatUsage`. Use inside
        ``contextlib.aclosing`` (see :mod:`providers.llm.base`)."""
        body: dict[str, Any] = {
            "model": model or self._config.model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if max_tokens is not None:
            body["max_completion_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        config = self._config
        retries = _Retries(config, trio.current_time() + config.first_token_deadline)
        while True:
            response = await self._post_with_retries(body, stream=True, retries=retries)
            reply = ChatStream()
            chunks = response.aiter_bytes()
            try:
                while not reply.done:
                    chunk = await self._next_chunk(chunks, reply, retries.until)
                    if chunk is None:
                        raise StreamClosed("stream ended before [DONE]", vendor=VENDOR)
                    for text in reply.feed(chunk):
                        yield TextDelta(text)
                await _finish_body(chunks)
            except StreamClosed as exc:
                if reply.deltas or not await retries.after_server_error(exc):
                    raise
                continue  # broke before the first token: nothing was said yet
            finally:
                await _release(response, chunks)
                if not reply.done:
                    self._count(messages, reply)  # cut off: what streamed is billed
            yield self._count(messages, reply)
            return

    async def _next_chunk(self, chunks: AsyncIterator[bytes], reply: ChatStream,
                          first_token_by: float) -> bytes | None:
        """The next body chunk, within the first-token or idle deadline."""
        config = self._config
        if reply.deltas:
            phase, seconds = "idle", config.idle_deadline
            deadline = trio.current_time() + seconds
        else:
            phase, seconds, deadline = "first_token", config.first_token_deadline, first_token_by
        with trio.move_on_at(deadline), map_transport_errors(VENDOR, phase="body"):
            return await anext(chunks, None)
        raise DeadlineExceeded(f"no {phase.replace('_', ' ')} within {seconds:g} s",
                               vendor=VENDOR, deadline=phase, seconds=seconds)

    def _count(self, messages: Sequence[Message], reply: ChatStream) -> ChatUsage:
        """Add the stream's tokens to the usage counter and return them: the
        vendor's report, else (when text was streamed) our estimate."""
        if reply.reported is not None:
            used = reply.reported
            self.usage.add_llm_tokens(input_tokens=used.input_tokens,
                                      output_tokens=used.output_tokens)
            return ChatUsage(used.input_tokens, used.output_tokens, reply.finish_reason)
        if not reply.deltas:
            return ChatUsage(0, 0, reply.finish_reason, estimated=True)
        prompt = estimate_prompt_tokens(messages)
        self.usage.add_llm_tokens(input_tokens=prompt, output_tokens=reply.deltas,
                                  estimated=True)
        return ChatUsage(prompt, reply.deltas, reply.finish_reason, estimated=True)

    async def complete_json(
        self,
        messages: Sequence[Message],
        schema: Mapping[str, Any],
        *,
        model: str | None = None,
        name: str = "result",
    ) -> Mapping[str, Any]:
        """One non-streaming request constrained by ``schema`` (strict JSON schema
        mode); returns the parsed object. A reply that is not a JSON object raises
        :class:`ProtocolError`; a refusal raises :class:`VendorError` code "refusal"."""
        body: dict[str, Any] = {
            "model": model or self._config.model,
            "messages": list(messages),
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": dict(schema), "strict": True},
            },
        }
        seconds = self._config.json_deadline
        retries = _Retries(self._config, trio.current_time() + seconds)
        with trio.move_on_after(seconds) as scope:
            response = await self._post_with_retries(body, stream=False, retries=retries)
            try:
                with map_transport_errors(VENDOR, phase="body"):
                    raw = await response.aread()
            finally:
                await response.aclose()
        if scope.cancelled_caught:
            raise DeadlineExceeded(
                f"no JSON reply within {seconds:g} s", vendor=VENDOR, deadline="json",
                seconds=seconds,
            )
        payload = json_object(raw.decode("utf-8", errors="replace"), vendor=VENDOR)
        if payload.get("usage"):
            used = usage_of(payload["usage"])
            self.usage.add_llm_tokens(
                input_tokens=used.input_tokens, output_tokens=used.output_tokens
            )
        try:
            message = payload["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ProtocolError("completion without a message", vendor=VENDOR) from exc
        if message.get("refusal"):
            raise VendorError("model refused", vendor=VENDOR, code="refusal",
                              detail=str(message["refusal"]))
        return json_object(str(message.get("content") or ""), vendor=VENDOR)

    async def _post_with_retries(self, body: dict[str, Any], *, stream: bool,
                                 retries: _Retries) -> httpx.Response:
        while True:
            try:
                return await self._post(body, stream=stream)
            except RateLimited as exc:
                wait = exc.retry_after
                if retries.rate_limits <= 0 or wait is None or not retries.fits(wait):
                    raise
                retries.rate_limits -= 1
                await trio.sleep(wait)
            except (VendorUnavailable, ConnectError) as exc:
                if not await retries.after_server_error(exc):
                    raise

    async def _post(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        """Send one request and return a response with a 2xx status (body unread)."""
        config = self._config
        headers = {"content-type": "application/json", "accept": "text/event-stream"
                   if stream else "application/json"}
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key.reveal()}"
        request = self._client.build_request(
            "POST", f"{config.base_url}/chat/completions", headers=headers,
            content=json.dumps(body).encode(),
        )
        self.usage.add_llm_request()
        with trio.move_on_after(config.connect_deadline) as scope, \
                map_transport_errors(VENDOR, phase="request"):
            response = await self._client.send(request, stream=True)
        if scope.cancelled_caught:
            raise DeadlineExceeded(
                f"no response headers within {config.connect_deadline:g} s",
                vendor=VENDOR, deadline="connect", seconds=config.connect_deadline,
            )
        if response.is_success:
            return response
        raw = b""  # an error body that breaks off still leaves the status to report
        try:
            with suppress(StreamClosed), map_transport_errors(VENDOR, phase="body"):
                raw = await response.aread()
        finally:
            await response.aclose()
        raise status_error(response.status_code, response.headers, raw)


async def _finish_body(chunks: AsyncIterator[bytes]) -> None:
    """Read the end of a body past ``[DONE]`` (the chunked terminator, in the
    same packet or the next), so that the connection goes back to the pool:
    httpx closes the connection of a response closed before its end, and every
    turn would then pay a new TCP and TLS handshake to the vendor (100–300 ms),
    and under load a burst of them. Bounded by ``BODY_END_S``: a server that
    holds the body open past ``[DONE]`` costs only its connection."""
    with trio.move_on_after(BODY_END_S), suppress(httpx.TransportError, httpx.StreamError):
        async for _ in chunks:
            pass  # nothing follows [DONE] but the body's end


async def _release(response: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
    """Close the response and finish httpx's chain of nested body generators.

    Closing only the outermost generator leaves the inner ones (httpx → httpcore)
    suspended; trio then warns about each when they are garbage-collected. Once
    the connection is closed, one more read makes every layer raise and finish."""
    with trio.CancelScope(shield=True):
        await response.aclose()
        try:
            await chunks.__anext__()
        except (StopAsyncIteration, httpx.HTTPError, httpx.StreamError):
            return

"""OpenAI chat completions (and any compatible server) over raw httpx + SSE.

Why not the ``openai`` SDK on the hot path: its defaults (600 s timeout, two
silent retries with backoff) are wrong for a phone turn, where a reply that is
not under way within a few seconds must fall back to a template line; under trio
its streams leave async generators unfinalised (ResourceWarning); and its
deadlines are per-request ``timeout=`` values rather than the named phases we
need (response headers, first token, gap between tokens). A 150-line SSE client
over the shared :mod:`providers.http` client gives all of that with one place
for each deadline. The simulator is checked against the SDK in the tests, so
both speak the same wire format.

Deadlines (from :class:`providers.config.OpenAIConfig`): ``connect_deadline``
request → response headers; ``first_token_deadline`` request → first content
delta; ``idle_deadline`` any later gap between SSE events; ``json_deadline`` a
whole :meth:`OpenAIChat.complete_json`. Each raises
:class:`~providers.exceptions.DeadlineExceeded` naming the phase. The caller's
cancel scope bounds everything from outside.

Errors: 401/403 → ``AuthError``; 429 ``insufficient_quota`` → ``QuotaExceeded``
(never retried); 429 otherwise → ``RateLimited``, retried at most
``rate_limit_retries`` times and only when ``retry-after`` fits inside the
caller's deadline (``trio.current_effective_deadline()``), never blindly; other
statuses and a mid-stream ``data: {"error": …}`` → ``VendorError``; transport
failures → ``ConnectError`` (before headers) or ``StreamClosed`` (mid-body).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import suppress
from typing import Any

import httpx
import trio

from providers.config import OpenAIConfig
from providers.exceptions import (
    AuthError,
    DeadlineExceeded,
    ProtocolError,
    QuotaExceeded,
    RateLimited,
    StreamClosed,
    VendorError,
)
from providers.http import map_transport_errors
from providers.llm.base import ChatEvent, ChatUsage, Message, TextDelta
from providers.llm.sse import SSEDecoder
from providers.usage import UsageCounter
from providers.wire import json_object, retry_after

VENDOR = "openai"


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
        start = trio.current_time()
        first_deadline = start + config.first_token_deadline
        response = await self._post_with_retries(body, stream=True)
        decoder = SSEDecoder()
        finish_reason: str | None = None
        reported: ChatUsage | None = None
        got_text = False
        done = False
        chunks = response.aiter_bytes()
        try:
            while not done:
                phase = "idle" if got_text else "first_token"
                deadline = (
                    trio.current_time() + config.idle_deadline if got_text else first_deadline
                )
                with trio.move_on_at(deadline) as scope:
                    chunk = await _next_chunk(chunks)
                if scope.cancelled_caught:
                    seconds = config.idle_deadline if got_text else config.first_token_deadline
                    raise DeadlineExceeded(
                        f"no {phase.replace('_', ' ')} within {seconds:g} s",
                        vendor=VENDOR, deadline=phase, seconds=seconds,
                    )
                if chunk is None:
                    break
                for event in decoder.feed(chunk):
                    if event.data.strip() == "[DONE]":
                        done = True
                        break
                    payload = json_object(event.data, vendor=VENDOR)
                    if "error" in payload:
                        raise _stream_error(payload["error"])
                    for delta, reason in _choices(payload):
                        if reason is not None:
                            finish_reason = reason
                        if delta:
                            got_text = True
                            yield TextDelta(delta)
                    if payload.get("usage"):
                        reported = _usage(payload["usage"])
        finally:
            await _release(response, chunks)
        if not done:
            raise StreamClosed("stream ended before [DONE]", vendor=VENDOR)
        reported = reported or ChatUsage(0, 0)
        self.usage.add_llm_tokens(
            input_tokens=reported.input_tokens, output_tokens=reported.output_tokens
        )
        yield ChatUsage(reported.input_tokens, reported.output_tokens, finish_reason)

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
        with trio.move_on_after(seconds) as scope:
            response = await self._post_with_retries(body, stream=False)
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
            used = _usage(payload["usage"])
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

    async def _post_with_retries(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            try:
                return await self._post(body, stream=stream)
            except RateLimited as exc:
                if attempt >= self._config.rate_limit_retries or not _fits(exc.retry_after):
                    raise
                attempt += 1
                await trio.sleep(exc.retry_after or 0.0)

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
        raise _status_error(response, raw)


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    with map_transport_errors(VENDOR, phase="body"):
        return await anext(chunks, None)


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


def _fits(retry_after: float | None) -> bool:
    """True if waiting ``retry_after`` still leaves time before the caller's deadline."""
    if retry_after is None:
        return False
    deadline = trio.current_effective_deadline()
    return math.isinf(deadline) or trio.current_time() + retry_after < deadline


def _choices(payload: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(content delta, finish_reason) for choice 0 of a chunk; usage chunks have none."""
    result: list[tuple[str, str | None]] = []
    for choice in payload.get("choices") or []:
        if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        result.append((str(delta.get("content") or ""), choice.get("finish_reason")))
    return result


def _usage(raw: Mapping[str, Any]) -> ChatUsage:
    return ChatUsage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))


def _error_fields(raw: bytes) -> tuple[str | None, str | None, str]:
    """(code, type, message) from an OpenAI error body, tolerant of anything."""
    try:
        error = json.loads(raw).get("error") or {}
    except (ValueError, AttributeError):
        return None, None, raw[:200].decode("utf-8", errors="replace")
    if not isinstance(error, Mapping):
        return None, None, str(error)
    return error.get("code"), error.get("type"), str(error.get("message") or "")


def _status_error(response: httpx.Response, raw: bytes) -> VendorError:
    status = response.status_code
    code, kind, message = _error_fields(raw)
    request_id = response.headers.get("x-request-id")
    text = f"HTTP {status}: {message}"
    if status in (401, 403):
        return AuthError(text, vendor=VENDOR, status=status, code=code, detail=message,
                         request_id=request_id)
    if status == 429:
        if code == "insufficient_quota" or kind == "insufficient_quota":
            return QuotaExceeded(text, vendor=VENDOR, status=status, code=code, detail=message)
        return RateLimited(text, vendor=VENDOR, retry_after=retry_after(response.headers),
                           code=code, detail=message)
    return VendorError(text, vendor=VENDOR, status=status, code=code, detail=message)


def _stream_error(error: object) -> VendorError:
    if isinstance(error, Mapping):
        message = str(error.get("message") or "stream error")
        return VendorError(f"error mid-stream: {message}", vendor=VENDOR,
                           code=error.get("code") or error.get("type"), detail=message)
    return VendorError(f"error mid-stream: {error}", vendor=VENDOR, detail=str(error))

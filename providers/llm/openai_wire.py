"""OpenAI chat-completions wire format (sans-IO): the streamed reply's SSE
payloads, error bodies, and the token estimate used when the vendor's usage
never arrives.

- :class:`ChatStream` consumes the SSE body of a streaming completion chunk by
  chunk: content deltas out, ``finish_reason``, the usage chunk, ``[DONE]``; a
  mid-stream ``data: {"error": …}`` raises :class:`VendorError`.
- :func:`status_error` translates a non-2xx answer: 401/403 → ``AuthError``;
  429 ``insufficient_quota`` → ``QuotaExceeded``, other 429 → ``RateLimited``;
  5xx → ``VendorUnavailable`` (with ``retry-after``); anything else
  ``VendorError``.
- :func:`estimate_prompt_tokens`: ~4 characters per token plus 4 per message
  (OpenAI's rule of thumb), for streams cut off before the usage chunk.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from providers.exceptions import (
    AuthError,
    QuotaExceeded,
    RateLimited,
    VendorError,
    VendorUnavailable,
)
from providers.llm.base import ChatUsage, Message
from providers.llm.sse import SSEDecoder
from providers.wire import json_object, retry_after

VENDOR: Final = "openai"


class ChatStream:
    """The state of one streamed completion. :meth:`feed` returns the content
    deltas in a chunk of body bytes; ``done`` is set at ``[DONE]``. ``deltas``
    counts the non-empty deltas so far (about one token each); ``reported`` is
    the vendor's usage once its chunk arrived."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self.done = False
        self.deltas = 0
        self.finish_reason: str | None = None
        self.reported: ChatUsage | None = None

    def feed(self, chunk: bytes) -> list[str]:
        texts: list[str] = []
        for event in self._decoder.feed(chunk):
            if event.data.strip() == "[DONE]":
                self.done = True
                break
            payload = json_object(event.data, vendor=VENDOR)
            if "error" in payload:
                raise stream_error(payload["error"])
            for delta, reason in choices(payload):
                if reason is not None:
                    self.finish_reason = reason
                if delta:
                    self.deltas += 1
                    texts.append(delta)
            if payload.get("usage"):
                self.reported = usage_of(payload["usage"])
        return texts


def choices(payload: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(content delta, finish_reason) for choice 0 of a chunk; usage chunks have none."""
    result: list[tuple[str, str | None]] = []
    for choice in payload.get("choices") or []:
        if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        result.append((str(delta.get("content") or ""), choice.get("finish_reason")))
    return result


def usage_of(raw: Mapping[str, Any]) -> ChatUsage:
    return ChatUsage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """About what the vendor bills for ``messages``: ⌈characters / 4⌉ of each
    message's content plus 4 tokens of framing per message. An estimate."""
    return sum(4 + math.ceil(len(str(message.get("content") or "")) / 4)
               for message in messages)


def _error_fields(raw: bytes) -> tuple[str | None, str | None, str]:
    """(code, type, message) from an OpenAI error body, tolerant of anything."""
    try:
        error = json.loads(raw).get("error") or {}
    except (ValueError, AttributeError):
        return None, None, raw[:200].decode("utf-8", errors="replace")
    if not isinstance(error, Mapping):
        return None, None, str(error)
    return error.get("code"), error.get("type"), str(error.get("message") or "")


def status_error(status: int, headers: Mapping[str, str], raw: bytes) -> VendorError:
    code, kind, message = _error_fields(raw)
    request_id = headers.get("x-request-id")
    text = f"HTTP {status}: {message}"
    if status in (401, 403):
        return AuthError(text, vendor=VENDOR, status=status, code=code, detail=message,
                         request_id=request_id)
    if status == 429:
        if code == "insufficient_quota" or kind == "insufficient_quota":
            return QuotaExceeded(text, vendor=VENDOR, status=status, code=code, detail=message)
        return RateLimited(text, vendor=VENDOR, retry_after=retry_after(headers), code=code,
                           detail=message, request_id=request_id)
    if 500 <= status <= 599:
        return VendorUnavailable(text, vendor=VENDOR, status=status, code=code, detail=message,
                                 retry_after=retry_after(headers), request_id=request_id)
    return VendorError(text, vendor=VENDOR, status=status, code=code, detail=message)


def stream_error(error: object) -> VendorError:
    if isinstance(error, Mapping):
        message = str(error.get("message") or "stream error")
        return VendorError(f"error mid-stream: {message}", vendor=VENDOR,
                           code=error.get("code") or error.get("type"), detail=message)
    return VendorError(f"error mid-stream: {error}", vendor=VENDOR, detail=str(error))

"""The chat-model interface (OpenAI and compatible servers).

:meth:`ChatModel.stream_chat` yields :class:`TextDelta` pieces of the reply as they
arrive and exactly one :class:`ChatUsage` last (token counts as the vendor reports
them, plus why generation stopped). A stream that ends early (barge-in, a broken
connection) yields no ``ChatUsage``, but what it streamed is still counted in the
call's usage counter, as an estimate. It is an async generator: consume it inside
``contextlib.aclosing(...)`` so that breaking out early (barge-in) closes the HTTP
stream at once instead of when the generator is garbage-collected.

:meth:`ChatModel.complete_json` asks for a reply constrained by a JSON schema and
returns the parsed object (always a JSON object/mapping).

Messages are OpenAI-style dicts: ``{"role": "system"|"user"|"assistant",
"content": str}``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Message = Mapping[str, Any]


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ChatUsage:
    """Last event of a stream. ``finish_reason`` is the vendor's ("stop", "length",
    "content_filter", ...) or None if it never said. ``estimated``: the vendor
    sent no usage (a compatible server that ignores ``include_usage``), so the
    counts are ours — the streamed deltas and a prompt estimate."""

    input_tokens: int
    output_tokens: int
    finish_reason: str | None = None
    estimated: bool = False


ChatEvent = TextDelta | ChatUsage


class ChatModel(Protocol):
    def stream_chat(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> AsyncGenerator[ChatEvent, None]: ...

    async def complete_json(
        self,
        messages: Sequence[Message],
        schema: Mapping[str, Any],
        *,
        model: str | None = None,
        name: str = "result",
    ) -> Mapping[str, Any]: ...

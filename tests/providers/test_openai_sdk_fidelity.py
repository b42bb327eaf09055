"""Fidelity: the official ``openai`` SDK, pointed at the simulator, parses its
streams, non-streaming replies and errors exactly as it would the real API's."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from providers.sim.latency import Fixed
from providers.sim.openai_sim import RateLimit, ServerFault, open_openai_sim

REPLY = "Haan ji, the plan starts at five lakh rupees."

# openai>=2 streams wrap httpx's body iterators (vendored as httpx2/httpcore2 in
# openai 3) in async generators that the SDK never closes when the stream ends at
# ``[DONE]``; trio's async-generator finalizer then issues a ResourceWarning for
# each when it is garbage-collected. That is the SDK's behaviour (one reason our
# client parses SSE itself), so it is ignored here, for exactly those generators
# and in this module only.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Async generator '(httpx2?|httpcore2?|openai)\.[\w.]+' was garbage collected"
    ":ResourceWarning",
)


async def test_sdk_streams_deltas_and_usage_from_the_sim() -> None:
    async with open_openai_sim(ttft=Fixed(0.0), token_gap=Fixed(0.0),
                               canned={"price?": REPLY}) as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "price?"}],
                stream=True,
                stream_options={"include_usage": True},
                max_completion_tokens=50,
            )
            chunks = [chunk async for chunk in stream]
        finally:
            await client.close()
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert finishes[:-1] == [None] * (len(finishes) - 1)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(REPLY.split())
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1


async def test_sdk_reads_non_streaming_reply_and_typed_errors() -> None:
    async with open_openai_sim(canned={"hi": "Hello!"}) as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
        try:
            completion = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            )
            sim.inject(RateLimit(retry_after=2.0))
            with pytest.raises(openai.RateLimitError) as limited:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            sim.inject(RateLimit(code="insufficient_quota"))
            with pytest.raises(openai.RateLimitError) as quota:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            sim.inject(ServerFault(503))
            with pytest.raises(openai.InternalServerError) as server:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        finally:
            await client.close()
    assert completion.choices[0].message.content == "Hello!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 1
    limited_body: Any = limited.value.body
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["retry-after"] == "2"
    assert limited_body["code"] == "rate_limit_exceeded"
    assert quota.value.code == "insufficient_quota"
    assert server.value.status_code == 503

"""OpenAIChat against the loopback OpenAI simulator, on virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from providers.config import OpenAIConfig, Secret
from providers.exceptions import (
    AuthError,
    ConnectError,
    DeadlineExceeded,
    ProtocolError,
    QuotaExceeded,
    RateLimited,
    VendorError,
    VendorUnavailable,
)
from providers.http import open_http_client, warm_up
from providers.llm.base import ChatEvent, ChatUsage, TextDelta
from providers.llm.openai import OpenAIChat
from providers.sim.latency import Fixed
from providers.sim.openai_sim import (
    OpenAISim,
    RateLimit,
    ServerFault,
    Stall,
    StreamError,
    open_openai_sim,
)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
REPLY = "Namaste! This is Asha from Acme Solar."


@asynccontextmanager
async def chat_against(sim_options: dict[str, Any] | None = None, **config: Any
                       ) -> AsyncIterator[tuple[OpenAISim, OpenAIChat]]:
    options = {"ttft": Fixed(0.3), "token_gap": Fixed(0.05), "canned": {"hello": REPLY}}
    options.update(sim_options or {})
    async with open_openai_sim(**options) as sim, open_http_client() as client:
        yield sim, OpenAIChat(client, OpenAIConfig(base_url=sim.base_url, **config))


async def collect(chat: OpenAIChat, **kwargs: Any) -> list[tuple[float, ChatEvent]]:
    events = []
    async with aclosing(chat.stream_chat(MESSAGES, **kwargs)) as stream:
        async for event in stream:
            events.append((trio.current_time(), event))
    return events


async def test_stream_yields_deltas_then_usage_with_sim_timing(autojump_clock: Any) -> None:
    async with chat_against() as (sim, chat):
        start = trio.current_time()
        events = await collect(chat, max_tokens=64, temperature=0.2)
    deltas = [e for _, e in events if isinstance(e, TextDelta)]
    assert "".join(d.text for d in deltas) == REPLY
    assert len(deltas) == 7
    assert events[0][0] - start == pytest.approx(0.3, abs=1e-6)
    assert events[-2][0] - start == pytest.approx(0.3 + 6 * 0.05, abs=1e-6)
    usage = events[-1][1]
    assert usage == ChatUsage(input_tokens=4 + 2 + 4 + 1, output_tokens=7, finish_reason="stop")
    snapshot = chat.usage.statistics()
    assert (snapshot.llm_input_tokens, snapshot.llm_output_tokens) == (11, 7)
    assert snapshot.llm_requests == 1
    body = sim.requests[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["model"], body["max_completion_tokens"], body["temperature"]) == (
        "gpt-4o-mini", 64, 0.2)


async def test_replies_in_a_row_reuse_one_connection(autojump_clock: Any) -> None:
    """Each stream is read to the end of its body, so the next turn reuses its
    connection (against the vendor: no new TCP and TLS handshake per reply)."""
    async with chat_against() as (sim, chat):
        for _ in range(3):
            events = await collect(chat)
            assert "".join(e.text for _, e in events if isinstance(e, TextDelta)) == REPLY
            assert isinstance(events[-1][1], ChatUsage)
    assert len(sim.requests) == 3
    assert sim.connections == 1


async def test_rate_limit_is_retried_only_when_the_callers_deadline_allows(
    autojump_clock: Any,
) -> None:
    async with chat_against() as (sim, chat):
        sim.inject(RateLimit(retry_after=1.0))
        start = trio.current_time()
        with trio.fail_after(5):
            events = await collect(chat)
        assert isinstance(events[-1][1], ChatUsage)
        assert events[0][0] - start == pytest.approx(1.3, abs=1e-6)
        assert len(sim.requests) == 2

        sim.inject(RateLimit(retry_after=1.0))
        with trio.fail_after(0.9), pytest.raises(RateLimited) as caught:
            await collect(chat)
        assert caught.value.retry_after == pytest.approx(1.0)
        assert caught.value.code == "rate_limit_exceeded"
        assert len(sim.requests) == 3


async def test_insufficient_quota_is_never_retried(autojump_clock: Any) -> None:
    async with chat_against(rate_limit_retries=5) as (sim, chat):
        sim.inject(RateLimit(retry_after=0.1, code="insufficient_quota"))
        with pytest.raises(QuotaExceeded) as caught:
            await collect(chat)
    assert caught.value.status == 429
    assert len(sim.requests) == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_vendor_errors(autojump_clock: Any, status: int) -> None:
    async with chat_against(server_error_retries=0) as (sim, chat):
        sim.inject(ServerFault(status))
        with pytest.raises(VendorUnavailable) as caught:
            await collect(chat)
        assert caught.value.status == status
        assert "server had an error" in (caught.value.detail or "")
        # The connection pool is still good for the next turn.
        assert isinstance((await collect(chat))[-1][1], ChatUsage)


async def collect_text(chat: OpenAIChat, seen: list[str]) -> None:
    async with aclosing(chat.stream_chat(MESSAGES)) as stream:
        async for event in stream:
            assert isinstance(event, TextDelta)
            seen.append(event.text)


async def test_mid_stream_error_event_raises_after_the_text_so_far(autojump_clock: Any) -> None:
    async with chat_against() as (sim, chat):
        sim.inject(StreamError(after_tokens=2))
        seen: list[str] = []
        with pytest.raises(VendorError, match="mid-stream") as caught:
            await collect_text(chat, seen)
    assert "".join(seen) == "Namaste! This "
    assert not isinstance(caught.value, (RateLimited, QuotaExceeded))


async def test_stall_mid_stream_hits_the_idle_deadline_and_drops_the_socket(
    autojump_clock: Any,
) -> None:
    async with chat_against(idle_deadline=0.5) as (sim, chat):
        sim.inject(Stall(after_tokens=3))
        start = trio.current_time()
        with pytest.raises(DeadlineExceeded) as caught:
            await collect(chat)
        assert caught.value.deadline == "idle"
        assert trio.current_time() - start == pytest.approx(0.3 + 2 * 0.05 + 0.5, abs=1e-6)
        await trio.testing.wait_all_tasks_blocked()
        assert sim.disconnects == 1


async def test_slow_first_token_hits_the_first_token_deadline(autojump_clock: Any) -> None:
    async with chat_against({"ttft": Fixed(10.0)}, first_token_deadline=2.0) as (_, chat):
        start = trio.current_time()
        with pytest.raises(DeadlineExceeded) as caught:
            await collect(chat)
    assert caught.value.deadline == "first_token"
    assert trio.current_time() - start == pytest.approx(2.0, abs=1e-6)


async def test_cancel_mid_stream_leaves_no_task_and_closes_the_socket(autojump_clock: Any) -> None:
    async with chat_against() as (sim, chat):
        tasks_before = len(trio.lowlevel.current_task().child_nurseries)
        got: list[ChatEvent] = []
        with trio.move_on_after(0.42):
            async with aclosing(chat.stream_chat(MESSAGES)) as stream:
                async for event in stream:
                    got.append(event)
        assert len(got) == 3  # tokens at 0.30, 0.35, 0.40
        await trio.sleep(1)  # virtual: the sim's next sends find the socket closed
        assert sim.disconnects == 1
        tasks_after = len(trio.lowlevel.current_task().child_nurseries)
        assert tasks_after == tasks_before


async def test_breaking_out_early_releases_the_stream(autojump_clock: Any) -> None:
    async with chat_against() as (sim, chat):
        async with aclosing(chat.stream_chat(MESSAGES)) as stream:
            async for _ in stream:
                break
        await trio.sleep(1)  # virtual: the sim's next sends find the socket closed
        assert sim.disconnects == 1
        assert chat.usage.statistics().llm_output_tokens == 1  # the one delta, estimated


async def test_complete_json_sends_the_schema_and_returns_an_object(autojump_clock: Any) -> None:
    schema = {"type": "object", "properties": {"budget": {"type": "integer"}},
              "required": ["budget"], "additionalProperties": False}

    def responder(body: Mapping[str, Any]) -> str:
        assert body["response_format"]["json_schema"]["schema"] == schema
        return '{"budget": 500000}'

    async with chat_against({"responder": responder, "canned": {}}) as (sim, chat):
        result = await chat.complete_json(MESSAGES, schema, name="slots")
        assert result == {"budget": 500000}
        assert sim.requests[0]["response_format"]["type"] == "json_schema"
        assert sim.requests[0]["response_format"]["json_schema"]["name"] == "slots"
        assert "stream" not in sim.requests[0]
        assert chat.usage.statistics().llm_output_tokens == 2  # two "words"

        sim.responder = lambda body: "[1, 2]"
        with pytest.raises(ProtocolError, match="not a JSON object"):
            await chat.complete_json(MESSAGES, schema)


async def test_wrong_key_is_an_auth_error(autojump_clock: Any) -> None:
    async with open_openai_sim(api_key="sk-right") as sim, open_http_client() as client:
        chat = OpenAIChat(client, OpenAIConfig(base_url=sim.base_url, api_key=Secret("sk-bad")))
        with pytest.raises(AuthError) as caught:
            await collect(chat)
        assert caught.value.status == 401
        assert caught.value.code == "invalid_api_key"
        good = OpenAIChat(client, OpenAIConfig(base_url=sim.base_url, api_key=Secret("sk-right")))
        assert isinstance((await collect(good))[-1][1], ChatUsage)


async def test_unreachable_server_is_a_connect_error(autojump_clock: Any) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there any more
    async with open_http_client() as client:
        chat = OpenAIChat(client, OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1"))
        with pytest.raises(ConnectError):
            await collect(chat)


async def test_garbage_chunk_is_a_protocol_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"data: {not json\n\n",
                              headers={"content-type": "text/event-stream"})

    async with open_http_client(transport=httpx.MockTransport(handler)) as client:
        chat = OpenAIChat(client, OpenAIConfig(base_url="http://vendor.test/v1"))
        with pytest.raises(ProtocolError):
            await collect(chat)


async def test_warm_up_opens_a_pooled_connection(autojump_clock: Any) -> None:
    async with open_openai_sim(canned={"hello": REPLY}) as sim, open_http_client() as client:
        assert await warm_up(client, sim.base_url) is True
        chat = OpenAIChat(client, OpenAIConfig(base_url=sim.base_url))
        assert isinstance((await collect(chat))[-1][1], ChatUsage)
    assert sim.connections == 1  # the reply went out on the warmed connection
    async with open_http_client() as client:
        assert await warm_up(client, "http://127.0.0.1:1/") is False

"""The OpenAI client under the faults the live API produces (issue 15): 5xx before
the first token (retried once within the caller's deadline), a TCP reset
mid-stream, and usage for streams whose vendor usage never arrives."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from providers.exceptions import StreamClosed, VendorUnavailable
from providers.llm.base import ChatUsage, TextDelta
from providers.sim.openai_sim import Drop, ServerFault, count_prompt_tokens, open_openai_sim
from tests.providers.test_openai_client import MESSAGES, REPLY, chat_against, collect, collect_text


async def test_500_before_the_first_token_is_retried_once_within_the_deadline(
    autojump_clock: Any,
) -> None:
    async with chat_against() as (sim, chat):
        sim.inject(ServerFault(500))
        start = trio.current_time()
        with trio.fail_after(5):
            events = await collect(chat)
        assert "".join(e.text for _, e in events if isinstance(e, TextDelta)) == REPLY
        # The retry waits 0.05–0.1 s (jittered), then the sim's 0.3 s to first token.
        assert 0.35 <= events[0][0] - start <= 0.4 + 1e-6
        assert len(sim.requests) == 2
        assert chat.usage.statistics().llm_requests == 2
        assert chat.usage.llm_tokens_estimated == 0  # the vendor reported this one

        sim.inject(ServerFault(503, retry_after=0.5))  # retry-after is a floor
        start = trio.current_time()
        events = await collect(chat)
        assert events[0][0] - start == pytest.approx(0.5 + 0.3)

        sim.inject(ServerFault(500), ServerFault(502))  # only once
        with pytest.raises(VendorUnavailable) as caught:
            await collect(chat)
        assert caught.value.status == 502
        assert len(sim.requests) == 6


async def test_no_retry_when_it_cannot_start_before_the_callers_deadline(
    autojump_clock: Any,
) -> None:
    async with chat_against() as (sim, chat):
        sim.inject(ServerFault(500, retry_after=2.0))
        with trio.fail_after(1.0), pytest.raises(VendorUnavailable) as caught:
            await collect(chat)
        assert caught.value.retry_after == 2.0
        assert len(sim.requests) == 1


async def test_reset_before_the_first_token_is_retried(autojump_clock: Any) -> None:
    async with chat_against() as (sim, chat):
        sim.inject(Drop(after_tokens=0))
        events = await collect(chat)
        assert "".join(e.text for _, e in events if isinstance(e, TextDelta)) == REPLY
        assert len(sim.requests) == 2


async def test_reset_mid_stream_is_stream_closed_and_usage_is_estimated(
    autojump_clock: Any,
) -> None:
    async with chat_against() as (sim, chat):
        sim.inject(Drop(after_tokens=3))
        seen: list[str] = []
        with pytest.raises(StreamClosed) as caught:
            await collect_text(chat, seen)
        assert "".join(seen) == "Namaste! This is "
        assert caught.value.vendor == "openai"
        assert len(sim.requests) == 1  # text went out already: no retry
        usage = chat.usage.statistics()
        prompt = count_prompt_tokens(MESSAGES)
    # Billed by the vendor but never reported: three streamed tokens, and the
    # prompt estimated at ~4 characters per token (+4 per message).
    assert usage.llm_output_tokens == 3
    assert prompt - 4 <= usage.llm_input_tokens <= prompt + 4
    assert chat.usage.llm_tokens_estimated == usage.llm_input_tokens + 3


async def test_barge_in_counts_what_was_streamed(autojump_clock: Any) -> None:
    async with chat_against() as (sim, chat):
        async with aclosing(chat.stream_chat(MESSAGES)) as stream:
            got = 0
            async for event in stream:
                got += isinstance(event, TextDelta)
                if got == 2:
                    break  # the caller spoke
        await trio.sleep(1)
        assert sim.disconnects == 1
        usage = chat.usage.statistics()
    assert usage.llm_output_tokens == 2
    assert usage.llm_input_tokens > 0
    assert chat.usage.llm_tokens_estimated == usage.llm_input_tokens + 2


async def test_missing_usage_chunk_is_estimated_and_marked(autojump_clock: Any) -> None:
    # An OpenAI-compatible server that ignores stream_options.include_usage.
    async with chat_against({"honour_include_usage": False}) as (_, chat):
        events = [e for _, e in await collect(chat)]
    last = events[-1]
    assert isinstance(last, ChatUsage)
    assert last.estimated
    assert last.output_tokens == 7  # one per streamed delta
    assert last.finish_reason == "stop"
    assert chat.usage.statistics().llm_output_tokens == 7
    assert chat.usage.llm_tokens_estimated == last.input_tokens + 7


async def test_a_client_leaving_in_the_middle_of_its_request_body_leaves_the_sim_serving(
    autojump_clock: Any,
) -> None:
    """A client whose call is cancelled while httpx is still sending the request
    (its deadline passed) closes the socket mid-body: the sim drops that
    connection, as a server does, and goes on answering everyone else."""
    async with open_openai_sim(api_key="sk-sim", canned={}) as sim:
        stream = await trio.open_tcp_stream("127.0.0.1", sim.port)
        await stream.send_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: sim\r\n"
                              b"content-type: application/json\r\ncontent-length: 2718\r\n"
                              b"\r\n{\"model\": ")
        await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{sim.base_url}/chat/completions", json={
                "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": "Bearer sk-sim"})
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "You said: hi"
    assert len(sim.requests) == 1  # the broken request never reached the responder

"""Seeded simulator latency distributions (used by the OpenAI and Deepgram sims)."""

from __future__ import annotations

import statistics
from contextlib import aclosing
from typing import Any

import pytest
import trio
import trio.testing

from providers.config import OpenAIConfig
from providers.http import open_http_client
from providers.llm.base import TextDelta
from providers.llm.openai import OpenAIChat
from providers.sim.latency import Fixed, LogNormal, Uniform, parse_latency
from providers.sim.openai_sim import open_openai_sim


def test_parse_and_seeded_reproducibility() -> None:
    assert parse_latency("fixed:0.25").sample() == 0.25
    a = parse_latency("lognormal:0.3,0.5@7")
    b = LogNormal(0.3, 0.5, seed=7)
    assert [a.sample() for _ in range(5)] == [b.sample() for _ in range(5)]
    draws = [LogNormal(0.3, 0.5, seed=1).sample() for _ in range(1)]
    other = [LogNormal(0.3, 0.5, seed=2).sample() for _ in range(1)]
    assert draws != other
    many = LogNormal(0.3, 0.4, seed=3)
    assert statistics.median(many.sample() for _ in range(2001)) == pytest.approx(0.3, rel=0.05)
    uniform = Uniform(0.1, 0.2, seed=4)
    assert all(0.1 <= uniform.sample() <= 0.2 for _ in range(100))
    for bad in ("fixed", "uniform:0.2", "gauss:1,2", "fixed:-1", "uniform:0.3,0.1"):
        with pytest.raises(ValueError, match="latency"):
            parse_latency(bad)
    with pytest.raises(ValueError, match=">= 0"):
        Fixed(-0.1)


async def test_openai_sim_ttft_and_token_gap_follow_the_seeded_draws(autojump_clock: Any) -> None:
    expected_ttft = LogNormal(0.35, 0.4, seed=11).sample()
    async with open_openai_sim(ttft=LogNormal(0.35, 0.4, seed=11), token_gap=Fixed(0.04),
                               canned={"q": "one two three"}) as sim, open_http_client() as c:
        chat = OpenAIChat(c, OpenAIConfig(base_url=sim.base_url))
        start = trio.current_time()
        times = []
        async with aclosing(chat.stream_chat([{"role": "user", "content": "q"}])) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    times.append(trio.current_time() - start)
    assert times == pytest.approx([expected_ttft, expected_ttft + 0.04, expected_ttft + 0.08],
                                  abs=1e-6)


async def test_openai_sim_tokens_keep_their_schedule_when_the_sim_runs_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A simulator process stalled for 0.25 s (a load test's busy loop) sends the
    tokens due meanwhile at once and the rest on time, as a vendor that kept
    generating would; relative waits would push every later token back."""
    sent: list[float] = []

    def stall_at_second_token(_at: float) -> None:
        sent.append(_at)
        if len(sent) == 3:  # the role chunk, the first token, then the second
            autojump_clock.jump(0.25)

    async with open_openai_sim(ttft=Fixed(0.3), token_gap=Fixed(0.1),
                               canned={"q": "one two three four five six"},
                               on_chunk_sent=stall_at_second_token) as sim, \
            open_http_client() as client:
        chat = OpenAIChat(client, OpenAIConfig(base_url=sim.base_url))
        start = trio.current_time()
        times = []
        async with aclosing(chat.stream_chat([{"role": "user", "content": "q"}])) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    times.append(trio.current_time() - start)
    assert times == pytest.approx([0.3, 0.65, 0.65, 0.65, 0.7, 0.8], abs=1e-6)

"""The greeting rendered when ``/exotel/url`` announces the call (issue 13): the
control app's answer starts the render, the call's ``start`` finds it cached.

Whole calls through the real handler against the simulators, on virtual time;
the lead comes from a real redis-server (its worker threads take no virtual
time: ``threads_take_no_virtual_time``). The announce goes through the real
``ControlApp`` (the HTTP shell is tested in ``tests/server/test_control.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio
import trio.testing

from server.calls.recording import lead_lookup, store_call_record
from server.config import ServerConfig
from server.control.app import ControlApp
from server.handlers.pipeline import AudioCache, CacheKey, Pipeline, PipelineOptions
from server.handlers.pipeline.announce import (
    AnnounceConfig,
    LeadLookup,
    open_announce_hook,
    open_announcer,
    params_lead,
)
from server.metrics import ServerMetrics
from server.store import StoreService, open_store_service
from server.store.connection import StoreConfig, connect
from server.store.spill import SpillFile
from tests.handlers.pipeline_harness import CallRun, Sims, run_call, simulators

KAVITA = "Namaste, am I speaking with Kavita?"
GENERIC = "Namaste, am I speaking with sir?"
REST = ["This is Priya from SuryaKiran Solar, calling about rooftop solar for your home.",
        "Do you have two minutes?"]
CONFIG = ServerConfig(our_base_url="https://bot.example.com")

pytestmark = pytest.mark.usefixtures("threads_take_no_virtual_time")


@pytest.fixture
def kavita(redis_url: str, store_config: StoreConfig) -> Iterator[str]:
    """Lead ``L7`` in the CRM's hash is Kavita; its id."""
    client = connect(redis_url, store_config)
    client.hset(f"{store_config.prefix}lead:L7", mapping={"name": "Kavita"})
    try:
        yield "L7"
    finally:
        client.delete(f"{store_config.prefix}lead:L7")
        client.close()


def key(text: str) -> CacheKey:
    """Where the call's voice looks for a greeting sentence (ElevenLabs sim, 8 kHz)."""
    return CacheKey("elevenlabs", "en-us", 8000, text)


def generated(sims: Sims) -> list[str]:
    """Every text the ElevenLabs sim generated audio for, over all connections."""
    return [text.strip() for log in sims.elevenlabs.connections
            for context, text in log.generations if log.audio.get(context)]


def announces(metrics: ServerMetrics, result: str) -> float:
    value = metrics.registry.get_sample_value("voicebot_announce_renders_total",
                                              {"result": result})
    return value or 0.0


class Announcing:
    """``run_call``'s ``around_call``: ``/exotel/url`` answers ``query`` (the
    announce), waits for its render, and notes what the cache and the TTS
    sim held before the caller dials."""

    def __init__(self, sims: Sims, query: str, lookup: LeadLookup, *,
                 config: ServerConfig = CONFIG, gap: float | None = None) -> None:
        """``gap``: the caller dials this long after the announce, whether
        the render is done or not (default: once it is done)."""
        self.sims, self.query, self.lookup, self.config = sims, query, lookup, config
        self.gap = gap
        self.metrics = ServerMetrics()
        self.resource = ""
        self.cached: dict[str, bool] = {}
        self.generated_before: list[str] = []

    def __call__(self, pipeline: Pipeline) -> AbstractAsyncContextManager[object]:
        return self._around(pipeline)

    @asynccontextmanager
    async def _around(self, pipeline: Pipeline) -> AsyncIterator[None]:
        async with open_announce_hook(self.config, pipeline, self.metrics,
                                      self.lookup) as announcer:
            app = ControlApp(self.config, self.metrics, lambda: True,
                             on_announce=announcer.announce_nowait if announcer else None)
            answer = app.respond("GET", f"/exotel/url?{self.query}", {}, b"")
            assert answer.status == 200
            url = urlsplit(json.loads(answer.body)["url"])
            self.resource = f"{url.path}?{url.query}"
            if self.gap is not None:
                await trio.sleep(self.gap)
            elif announcer is not None:
                with trio.fail_after(10):
                    await announcer.wait_idle()
            cache = pipeline.engines.cache
            self.cached = {text: cache.peek(key(text)) is not None
                           for text in (KAVITA, GENERIC, *REST)}
            self.generated_before = generated(self.sims)
            yield


async def call(sims: Sims, announcing: Announcing, resource: str,
               service: StoreService | None, cache: AudioCache | None = None) -> CallRun:
    """A call dialled to ``resource`` after ``announcing``; ``cache``: the
    process's audio cache (default: a new one)."""
    record = store_call_record(service) if service is not None else None
    run = await run_call(sims, [], call_record=record, resource=resource,
                         around_call=announcing, cache=cache)
    assert announcing.resource == resource  # the URL Exotel was answered is the one dialled
    return run


@asynccontextmanager
async def store(redis_url: str, store_config: StoreConfig,
                tmp_path: Path) -> AsyncIterator[StoreService]:
    async with open_store_service(redis_url, config=store_config,
                                  spill=SpillFile(tmp_path / "spill.jsonl")) as service:
        yield service


async def test_an_announced_leads_greeting_is_cached_before_start_and_said_without_tts(
    autojump_clock: trio.testing.MockClock, redis_url: str, store_config: StoreConfig,
    kavita: str, tmp_path: Path,
) -> None:
    async with store(redis_url, store_config, tmp_path) as service, simulators() as sims:
        announcing = Announcing(sims, f"CallSid=CA1&CustomField={kavita}", lead_lookup(service))
        run = await call(sims, announcing,
                         f"/media?sample-rate=8000&call_sid=CA1&lead_id={kavita}", service)
    # Before the caller dialled: Kavita's opening, every sentence of it, was cached.
    assert announcing.cached == {KAVITA: True, GENERIC: False, REST[0]: True, REST[1]: True}
    assert announcing.generated_before == [KAVITA, *REST]
    assert announces(announcing.metrics, "rendered") == 1
    # The call greeted Kavita from the cache: no TTS request for it at start, the
    # first audio at once.
    greeting = run.record.turns[0]
    assert greeting.bot_text == " ".join([KAVITA, *REST])
    assert greeting.marks["tts_first_audio"] == greeting.marks["decided"]
    assert generated(sims) == [KAVITA, *REST]  # the sim saw one render of each
    assert run.report.greeting_at is not None
    assert run.report.greeting_at - run.report.started_at == 0.0


async def test_a_call_that_starts_while_its_greeting_renders_waits_for_that_render(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Exotel may open the socket before the render is done: the call's greeting
    waits for the render under way (the TTS's 200 ms first byte, 80 ms of it
    left) instead of starting its own."""
    async with simulators() as sims:
        announcing = Announcing(sims, "CallSid=CA6", params_lead, gap=0.12)
        run = await run_call(sims, [], around_call=announcing,
                             resource="/media?sample-rate=8000&call_sid=CA6")
    assert announcing.generated_before == []
    assert not any(announcing.cached.values())
    greeting = run.record.turns[0]
    assert greeting.marks["tts_first_audio"] - greeting.marks["decided"] == pytest.approx(0.08)
    assert run.report.greeting_at is not None
    assert run.report.greeting_at - run.report.started_at == pytest.approx(0.08)
    assert generated(sims) == [GENERIC, *REST]  # one render of each, the announce's
    assert announces(announcing.metrics, "rendered") == 1


async def test_an_announce_without_a_known_lead_renders_the_generic_opening(
    autojump_clock: trio.testing.MockClock, redis_url: str, store_config: StoreConfig,
    tmp_path: Path,
) -> None:
    cache = AudioCache()  # one process: its two calls share it
    async with store(redis_url, store_config, tmp_path) as service, simulators() as sims:
        no_lead = Announcing(sims, "CallSid=CA2", lead_lookup(service))
        first = await call(sims, no_lead, "/media?sample-rate=8000&call_sid=CA2", service,
                           cache)
        unknown = Announcing(sims, "CallSid=CA3&lead_id=L404", lead_lookup(service))
        second = await call(sims, unknown, "/media?sample-rate=8000&call_sid=CA3&lead_id=L404",
                            service, cache)
    assert no_lead.cached == {KAVITA: False, GENERIC: True, REST[0]: True, REST[1]: True}
    assert announces(no_lead.metrics, "rendered") == 1
    # No lead:L404 hash: the same generic line, already cached.
    assert announces(unknown.metrics, "cached") == 1
    for run in (first, second):
        greeting = run.record.turns[0]
        assert greeting.bot_text.startswith(GENERIC)
        assert greeting.marks["tts_first_audio"] == greeting.marks["decided"]
    assert generated(sims) == [GENERIC, *REST]


async def test_with_redis_down_the_url_is_answered_the_announce_skipped_and_the_call_greets(
    autojump_clock: trio.testing.MockClock, store_config: StoreConfig, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    nowhere = f"unix://{tmp_path}/no-redis.sock"
    async with store(nowhere, store_config, tmp_path) as service, simulators() as sims:
        announcing = Announcing(sims, "CallSid=CA4&lead_id=L7", lead_lookup(service))
        run = await call(sims, announcing, "/media?sample-rate=8000&call_sid=CA4&lead_id=L7",
                         service)
    assert announces(announcing.metrics, "skipped") == 1
    assert announcing.generated_before == []  # nothing rendered at the announce
    # Logged once, with the call's id (the call's own lookup logs its own line).
    assert len([r for r in caplog.records if "CA4" in r.getMessage()
                and "not enriched" in r.getMessage()]) == 1
    greeting = run.record.turns[0]
    assert greeting.bot_text.startswith(GENERIC)  # the call's own lookup failed too
    assert run.report.greeting_at is not None
    assert generated(sims) == [GENERIC, *REST]  # rendered at start, as without announces


@pytest.mark.parametrize("config", [
    ServerConfig(our_base_url="https://bot.example.com", announce_render=False),
    ServerConfig(our_base_url="https://bot.example.com", audio_cache=False),
], ids=["no-announce-render", "no-audio-cache"])
async def test_switched_off_nothing_is_rendered_at_the_announce(
    autojump_clock: trio.testing.MockClock, config: ServerConfig,
) -> None:
    async with simulators() as sims:
        announcing = Announcing(sims, "CallSid=CA5", params_lead, config=config)
        options = PipelineOptions(audio_cache=config.audio_cache)
        run = await run_call(sims, [], options=options, around_call=announcing,
                             resource="/media?sample-rate=8000&call_sid=CA5")
    assert announcing.resource == "/media?sample-rate=8000&call_sid=CA5"
    assert announcing.generated_before == []
    assert not any(announcing.cached.values())
    assert announcing.metrics.registry.get_sample_value(
        "voicebot_announce_renders_total", {"result": "rendered"}) is None
    assert run.record.turns[0].bot_text.startswith(GENERIC)
    greeting = run.record.turns[0]
    assert greeting.marks["tts_first_audio"] - greeting.marks["decided"] == pytest.approx(0.2)


async def test_at_most_max_in_flight_announces_run_and_the_rest_are_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cap = AnnounceConfig(max_in_flight=3)
    metrics = ServerMetrics()

    @asynccontextmanager
    async def around(pipeline: Pipeline) -> AsyncIterator[None]:
        async with open_announcer(pipeline, metrics, params_lead, cap) as announcer:
            for n in range(5):
                announcer.announce_nowait({"call_sid": f"CA{n}"}, 8000)
            assert announcer.in_flight == 3
            assert announces(metrics, "dropped") == 2
            with trio.fail_after(10):
                await announcer.wait_idle()
            assert announcer.in_flight == 0
            announcer.announce_nowait({"call_sid": "CA9"}, 8000)  # a slot is free again
            with trio.fail_after(10):
                await announcer.wait_idle()
            yield

    hook: Callable[[Pipeline], AbstractAsyncContextManager[object]] = around
    async with simulators(tts_first_byte=1.0) as sims:
        await run_call(sims, [], around_call=hook)
    # The three in flight shared one render (the cache's); the later one found it.
    assert announces(metrics, "rendered") == 1
    assert announces(metrics, "cached") == 3
    assert announces(metrics, "dropped") == 2
    assert generated(sims) == [GENERIC, *REST]

"""The greeting rendered when the call is announced, before its socket opens.

Exotel fetches the dynamic URL (``/exotel/url``, ``server.control.app``) for a
call just before it opens the call's WebSocket, and the request names the call
(``CallSid``) and the lead (``lead_id``). ``Announcer.announce_nowait`` is the
control app's ``on_announce``: it returns at once (the HTTP answer never waits
for it) and, in the background, does what the call would do first at
``start``:

1. look the lead up as the call does (``server.calls.recording.look_up_lead``:
   ``lead:{lead_id}`` in Redis within the store's deadline and the call's
   guard; ``LeadLookup``); without the store, the custom parameters alone;
2. build the opening line as the call does (``conversation.greeting``: the
   same playbook, lead values and clock);
3. render each of its sentences into the process's ``AudioCache`` under the
   key the call's voice reads (engine, voice, the URL's sample rate, exact
   text), through a TTS session of its own.

The call's ``start`` then finds its greeting cached; a render still running
is waited for, not started twice (``AudioCache.get``). A call that never comes
leaves cache entries and nothing else (the cache is bounded in bytes, least
recently used first). Only playbook and CRM text is ever rendered: the
request's values choose the lead, never the words. The TTS characters are
counted in no call's usage (as with any cache hit).

Bounds: at most ``AnnounceConfig.max_in_flight`` announces are worked on at
once, more are dropped (their calls render the greeting at ``start``, as
without announces); each is bounded by ``deadline_s``, lookup and render
together. Each is its own error boundary: nothing it does reaches Exotel or
the server.

``voicebot_announce_renders_total{result}`` counts each announce once:
``rendered`` (a sentence was synthesized), ``cached`` (every sentence was in
the cache, or being rendered for another), ``dropped`` (over the cap),
``skipped`` (the lead lookup failed or was late, e.g. Redis down: the store
logs it once with the call id; the call looks the lead up again itself),
``failed`` (the TTS failed or the deadline passed; logged).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from dialogue.engine import Template
from providers.exceptions import ProviderError
from providers.groups import unwrap_sole_error
from providers.usage import UsageCounter
from server.config import ServerConfig
from server.handlers.pipeline.audio_cache import CacheKey
from server.handlers.pipeline.conversation import greeting
from server.handlers.pipeline.handler import Pipeline
from server.handlers.pipeline.replies import sentences_of
from server.handlers.pipeline.voice import render_sentence
from server.logs import log_event
from server.metrics import ServerMetrics
from server.store.records import LeadContext

__all__ = ["AnnounceConfig", "Announcer", "LeadLookup", "open_announce_hook", "open_announcer",
           "params_lead"]

log = logging.getLogger(__name__)

#: ``(custom parameters, call_sid)`` → the lead, or ``None`` when the lookup
#: failed (the announce is then skipped).
LeadLookup = Callable[[Mapping[str, str], str], Awaitable[LeadContext | None]]


async def params_lead(params: Mapping[str, str], call_sid: str) -> LeadContext:
    """The lead without a store: the custom parameters alone (as ``NoCallRecord``)."""
    return LeadContext(params=dict(params))


@dataclass(frozen=True, slots=True)
class AnnounceConfig:
    """Bounds of the announce-time greeting (module docstring)."""

    #: each holds a TTS session while it renders, beside the live calls' (a
    #: vendor's concurrency limit counts them too)
    max_in_flight: int = 4
    deadline_s: float = 5.0


class Announcer:
    """Renders announced calls' greetings in ``nursery`` (``open_announcer``)."""

    def __init__(self, pipeline: Pipeline, nursery: trio.Nursery, metrics: ServerMetrics,
                 lookup: LeadLookup, config: AnnounceConfig) -> None:
        self._pipeline = pipeline
        self._nursery = nursery
        self._metrics = metrics
        self._lookup = lookup
        self.config = config
        self._in_flight = 0
        self._idle = trio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def announce_nowait(self, parameters: Mapping[str, str], sample_rate: int) -> None:
        """A call was announced with these custom parameters (checked ids) at
        ``sample_rate``: start rendering its greeting, or drop it over the cap."""
        if self._in_flight >= self.config.max_in_flight:
            self._count("dropped")
            return
        self._in_flight += 1
        if self._in_flight == 1:
            self._idle = trio.Event()
        self._nursery.start_soon(self._announce, dict(parameters), sample_rate)

    async def wait_idle(self) -> None:
        """Return once no announce is being worked on."""
        await self._idle.wait()

    def _count(self, result: str) -> None:
        self._metrics.announce_renders.labels(result=result).inc()

    async def _announce(self, params: dict[str, str], rate: int) -> None:
        call_sid = params.get("call_sid", "-")
        result: str | None = None  # stays None when cancelled (shutdown): not counted
        try:
            with trio.move_on_after(self.config.deadline_s) as deadline:
                result = await self._render_greeting(params, rate, call_sid)
            if deadline.cancelled_caught:
                result = "failed"
                log_event(log, logging.INFO, "announced greeting not rendered in time",
                          call_sid=call_sid, deadline_s=self.config.deadline_s)
        except ProviderError as exc:
            result = "failed"
            log_event(log, logging.INFO, "announced greeting not rendered", call_sid=call_sid,
                      error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # one announce's error boundary: the server goes on
            result = "failed"
            log_event(log, logging.ERROR, "announced greeting failed", call_sid=call_sid,
                      error=type(exc).__name__, exc_info=exc)
        finally:
            if result is not None:
                self._count(result)
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _render_greeting(self, params: Mapping[str, str], rate: int,
                               call_sid: str) -> str:
        lead = await self._lookup(params, call_sid)
        if lead is None:
            return "skipped"
        pipeline = self._pipeline
        reply = greeting(pipeline.playbook, lead, pipeline.clock).reply
        assert isinstance(reply, Template)  # the opening is a playbook line
        engines = pipeline.engines
        name = engines.choice.tts
        cache = engines.cache
        missing = [key for key in (CacheKey(name, engines.voice(name), rate, sentence)
                                   for sentence in sentences_of(reply.text))
                   if cache.peek(key) is None]
        if not missing:
            return "cached"
        rendered = False
        async with engines.open_tts(name, rate, UsageCounter()) as tts:
            for key in missing:
                async def render(text: str = key.text) -> bytes:
                    nonlocal rendered
                    rendered = True
                    return await render_sentence(tts, text, rate)

                await cache.get(key, render)
        return "rendered" if rendered else "cached"


@asynccontextmanager
async def open_announcer(pipeline: Pipeline, metrics: ServerMetrics,
                         lookup: LeadLookup = params_lead,
                         config: AnnounceConfig | None = None) -> AsyncIterator[Announcer]:
    """An ``Announcer`` for the block; announces still running at its end are
    cancelled (their calls render at ``start``)."""
    with unwrap_sole_error():  # the block's own error leaves as itself
        async with trio.open_nursery() as nursery:
            yield Announcer(pipeline, nursery, metrics, lookup, config or AnnounceConfig())
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_announce_hook(config: ServerConfig, pipeline: Pipeline | None,
                             metrics: ServerMetrics,
                             lookup: LeadLookup = params_lead) -> AsyncIterator[Announcer | None]:
    """The announcer ``voicebot serve``'s ``/exotel/url`` tells of each call it
    answers (``Announcer.announce_nowait``) while ``config.renders_at_announce``
    (``--announce-render``, the pipeline with its audio cache); else ``None``:
    the greeting is rendered at ``start``, as without announces."""
    if pipeline is None or not config.renders_at_announce:
        if pipeline is not None:
            log_event(log, logging.INFO, "greeting rendered at start only",
                      announce_render=config.announce_render, audio_cache=config.audio_cache)
        yield None
        return
    async with open_announcer(pipeline, metrics, lookup) as announcer:
        yield announcer

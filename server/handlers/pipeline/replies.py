"""Saying one decision: a template's sentences, or the LLM's answer as it streams.

Templates are split into sentences (``SentenceSplitter``) and spoken from the
audio cache. An ``LLMRequest`` streams from the call's chat model: each text
delta goes through the splitter, each finished sentence to the TTS at once
(the model keeps streaming meanwhile: a producer task and a speaking task
joined by a channel). The first token must come within ``llm_first_token_s``
(1.5 s); an LLM error or that deadline before anything was said speaks the
request's fallback template instead (``fallbacks_total{component="llm"}``);
after something was said, the reply just stops there. With no LLM configured
the fallback template is the reply. An LLM reply is recorded in the dialogue's
history (``record_bot_reply``) once streamed — the whole text, or what was
said of it; a reply cut before that is recorded as far as it was heard (the
conversation does it, at the cut).
"""

from __future__ import annotations

import logging
import math
from contextlib import aclosing
from dataclasses import dataclass

import trio

from dialogue.engine import Decision, LLMRequest, Template
from dialogue.splitter import SentenceSplitter
from providers.exceptions import ProviderError
from providers.llm.base import ChatModel, TextDelta
from server.handlers.pipeline.reply import Reply
from server.handlers.pipeline.voice import Voice
from server.logs import log_event
from server.metrics import ServerMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """Named deadlines and switches of the conversation pipeline."""

    llm_first_token_s: float = 1.5
    #: after a reply's audio, how long past its length to wait for its last mark
    played_margin_s: float = 2.0
    #: short speech over the bot with no words within this is a backchannel
    barge_decision_s: float = 1.0
    #: speech over the bot past the voiced threshold with no words yet: how long
    #: to wait for them before it counts as an interruption (playout is paused)
    barge_words_wait_s: float = 0.5
    #: backchannel words said for longer than this are an interruption
    backchannel_max_speech_s: float = 1.5
    #: our VAD's end of speech sends the STT ``finalize()`` at once
    vad_finalize: bool = True
    #: quiet inside the caller's speech (before our VAD's end of it) that is a pause
    pause_ms: float = 150.0
    #: a streaming STT's ``finalize()`` goes out at the pause; its answer is held
    #: until our end of speech confirms the turn (``Listener``)
    pause_finalize: bool = True
    #: preemptive generation: at a pause, an LLM reply to the transcript so far
    #: starts (unheard until the turn is confirmed with the same words)
    preempt: bool = True
    #: adaptive endpointing (``dialogue.endpoint_hint``): a complete short answer
    #: to a question ends the turn at the pause; words stopping mid-phrase get
    #: ``late_end_extra_ms`` more silence past our VAD's end of speech
    adaptive_endpointing: bool = True
    late_end_extra_ms: float = 300.0
    #: template sentences' audio is cached per process
    audio_cache: bool = True
    #: the splitter may release a first clause at a comma after this many words
    first_clause_min_words: int | None = None
    #: log what the caller said (off: only lengths and intents)
    log_transcripts: bool = False
    #: a vendor TTS sentence with no audio this long is said by the local engine
    tts_first_audio_s: float = 1.0
    #: a vendor TTS that could not open at the call's start is tried again in the
    #: background this long after, then twice as long each time up to
    #: ``tts_reopen_max_s`` (never sooner than its ``retry-after``)
    tts_reopen_s: float = 1.0
    tts_reopen_max_s: float = 30.0
    #: an uncertain turn's LLM reading (slots for the outcome) must answer within this
    refine_deadline_s: float = 2.0


@dataclass(frozen=True, slots=True)
class ReplyContext:
    voice: Voice
    chat: ChatModel | None
    options: PipelineOptions
    metrics: ServerMetrics
    nursery: trio.Nursery

    def prefetch(self, text: str) -> None:
        """Render ``text``'s sentences into the audio cache in the background."""
        for sentence in sentences_of(text):
            self.nursery.start_soon(self.voice.prefetch, sentence)


class _NoFirstToken(Exception):
    """The LLM sent no text within ``llm_first_token_s``."""


def sentences_of(text: str) -> list[str]:
    splitter = SentenceSplitter()
    return [*splitter.push(text), *splitter.flush()]


async def speak_reply(ctx: ReplyContext, reply: Reply, decision: Decision) -> str | None:
    """Say ``decision``'s reply; return the text to record in the history with
    ``record_bot_reply`` (``None`` for a template, which ``decide`` recorded)."""
    if isinstance(decision.reply, Template):
        await _say_text(ctx, reply, decision.reply.text, cached=ctx.options.audio_cache)
        return None
    request = decision.reply
    if ctx.chat is not None and ctx.options.audio_cache:
        # Should the LLM fail, its fallback must be ready at once: render it now
        # (once per process: the cache keeps it).
        ctx.prefetch(request.fallback_text)
    if ctx.chat is None:
        reply.kind = "template"
        await _say_text(ctx, reply, request.fallback_text, cached=ctx.options.audio_cache)
        return request.fallback_text
    said = await _say_llm(ctx, reply, request, ctx.chat)
    if said is None:  # nothing was said: the fallback template speaks
        reply.llm_fallback = True
        reply.kind = "template"
        await _say_text(ctx, reply, request.fallback_text, cached=ctx.options.audio_cache)
        return request.fallback_text
    return said


async def _say_text(ctx: ReplyContext, reply: Reply, text: str, *, cached: bool) -> None:
    for sentence in sentences_of(text):
        await ctx.voice.say(reply, sentence, cached=cached)


async def _say_llm(ctx: ReplyContext, reply: Reply, request: LLMRequest,
                   chat: ChatModel) -> str | None:
    """Stream the LLM's answer into the voice; the text said, or ``None`` when it
    failed before a sentence was spoken (the caller then says the fallback)."""
    send, receive = trio.open_memory_channel[str](32)
    streamed: list[str] = []
    splitter = SentenceSplitter(first_clause_min_words=ctx.options.first_clause_min_words)

    async def produce() -> None:
        async with send:
            deadline = trio.current_time() + ctx.options.llm_first_token_s
            with trio.CancelScope(deadline=deadline) as first:
                stream = chat.stream_chat(list(request.messages), max_tokens=request.max_tokens,
                                          temperature=request.temperature)
                async with aclosing(stream) as events:
                    async for event in events:
                        if not isinstance(event, TextDelta) or not event.text:
                            continue
                        if "llm_first_token" not in reply.marks:
                            reply.marks["llm_first_token"] = trio.current_time()
                            first.deadline = math.inf
                        streamed.append(event.text)
                        for sentence in splitter.push(event.text):
                            reply.marks.setdefault("first_sentence", trio.current_time())
                            await send.send(sentence)
                for sentence in splitter.flush():
                    reply.marks.setdefault("first_sentence", trio.current_time())
                    await send.send(sentence)
            if first.cancelled_caught:
                raise _NoFirstToken

    async def speak() -> None:
        async for sentence in receive:
            await ctx.voice.say(reply, sentence, cached=False)

    failures: list[Exception] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            await speak()
    except* (ProviderError, _NoFirstToken) as group:
        failures = list(group.exceptions)
    if not failures:
        return "".join(streamed).strip()
    ctx.metrics.component_errors.labels(component="llm").inc()
    log_event(log, logging.WARNING, "llm reply failed", said_sentences=len(reply.sentences),
              error=type(failures[0]).__name__)
    if not reply.text:
        ctx.metrics.fallbacks.labels(component="llm").inc()
        return None
    return reply.text

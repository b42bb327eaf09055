"""The conversation handler: one per call, what ``voicebot serve`` runs without ``--echo``.

On ``start`` it builds the call's parts and runs them in the call's nursery:

* the ``Listener`` (created at once, so no audio is missed while the STT connects);
* the paced ``Speaker`` at the call's rate;
* the call's TTS session (the chosen engine) and chat model, wrapped by a
  ``Voice``. A vendor TTS that cannot open leaves the call in the local voice
  while a background task opens it again, with backoff (``tts_reopen_s``
  doubling up to ``tts_reopen_max_s``, at least its ``retry-after``); once it
  is open the next reply speaks with it;
* the ``Conversation``, which greets the caller as soon as the lead is known.

Events go where they belong: ``media`` to the listener (never blocking),
``mark`` to the speaker and the conversation, ``dtmf`` to the conversation.
Everything a call opened is closed with the call's nursery.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

import trio

from dialogue.endpointing import EndpointHint
from dialogue.playbook import Playbook
from providers.exceptions import ProviderError
from providers.reconnect import retry_after_of
from providers.stt.turns import Turn
from providers.tts.base import TTSSession
from providers.usage import UsageCounter
from server.calls.hook import CallSession, HandlerFactory
from server.handlers.pipeline.conversation import Conversation
from server.handlers.pipeline.engines import Engines, TtsName
from server.handlers.pipeline.listener import Listener
from server.handlers.pipeline.replies import PipelineOptions, ReplyContext
from server.handlers.pipeline.reporting import TurnReporter
from server.handlers.pipeline.voice import Voice
from server.logs import log_event
from server.playout.speaker import open_speaker
from server.telephony.events import Dtmf, Mark, Media, Start, StreamEvent

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """What every call of the process shares."""

    engines: Engines
    playbook: Playbook
    options: PipelineOptions = field(default_factory=PipelineOptions)
    clock: Callable[[], datetime] = _utc_now

    def handler_factory(self) -> HandlerFactory:
        def make(session: CallSession) -> PipelineHandler:
            return PipelineHandler(session, self)

        return make


_USAGE_TAG = re.compile(r"[\w.-]{1,64}")


def usage_tag(params: Mapping[str, str]) -> str | None:
    """The call's campaign as the vendors' usage label, when it is a plain short id
    (custom parameters come from the caller's side: nothing else is passed on)."""
    campaign = params.get("campaign_id", "")
    return campaign if _USAGE_TAG.fullmatch(campaign) else None


class _Relay:
    """The listener's ears until the conversation exists (then: the conversation)."""

    def __init__(self) -> None:
        self.to: Conversation | None = None

    def speech_started(self, at: float) -> None:
        if self.to is not None:
            self.to.speech_started(at)

    def voiced(self, ms: float) -> None:
        if self.to is not None:
            self.to.voiced(ms)

    def speech_ended(self, voiced_until: float) -> None:
        if self.to is not None:
            self.to.speech_ended(voiced_until)

    def words(self, text: str) -> None:
        if self.to is not None:
            self.to.words(text)

    def turn(self, turn: Turn, speech_end: float | None) -> None:
        if self.to is not None:
            self.to.turn(turn, speech_end)

    def paused(self, transcript: str) -> None:
        if self.to is not None:
            self.to.paused(transcript)

    def resumed(self) -> None:
        if self.to is not None:
            self.to.resumed()

    def endpoint_hint(self, transcript: str) -> EndpointHint:
        return self.to.endpoint_hint(transcript) if self.to is not None \
            else EndpointHint.NORMAL


class PipelineHandler:
    """One call (module docstring); a ``server.calls.CallHandler``."""

    def __init__(self, session: CallSession, pipeline: Pipeline) -> None:
        self.session = session
        self.pipeline = pipeline
        self.usage = UsageCounter()
        self.relay = _Relay()
        self.listener: Listener | None = None
        self.conversation: Conversation | None = None
        self._speaker_marks: Callable[[str], None] | None = None

    async def on_event(self, event: StreamEvent) -> None:
        if isinstance(event, Media):
            if self.listener is not None:
                self.listener.feed(event.pcm)
        elif isinstance(event, Mark):
            if self._speaker_marks is not None:
                self._speaker_marks(event.name)
            if self.conversation is not None:
                self.conversation.mark_played(event.name)
        elif isinstance(event, Dtmf):
            if self.conversation is not None:
                self.conversation.dtmf(event.digit)
        elif isinstance(event, Start) and self.listener is None:
            engines = self.pipeline.engines
            self.listener = Listener(
                engines, engines.choice.stt, self.session.sample_rate, self.usage,
                self.session.metrics, self.relay,
                vad_finalize=self.pipeline.options.vad_finalize,
                pause_ms=self.pipeline.options.pause_ms,
                adaptive=self.pipeline.options.adaptive_endpointing,
                late_end_extra_ms=self.pipeline.options.late_end_extra_ms,
                pause_finalize=self.pipeline.options.pause_finalize,
                usage_tag=usage_tag(self.session.custom_parameters))
            self.session.nursery.start_soon(self._run, event, trio.current_time())

    async def _run(self, start: Start, started: float) -> None:
        session, pipeline = self.session, self.pipeline
        engines, config = pipeline.engines, session.config
        rate = session.sample_rate
        reporter = TurnReporter(session, pipeline.playbook, self.usage, session.metrics,
                                log_transcripts=pipeline.options.log_transcripts,
                                call_started=started)
        assert self.listener is not None
        # The stack holds what is opened in this task (speaker, TTS sessions); the
        # nursery inside it runs the listener and the conversation, and is gone
        # before the stack closes them.
        async with AsyncExitStack() as stack:
            speaker = await stack.enter_async_context(open_speaker(
                session.send, session.dialect, start.stream_sid, rate,
                frame_ms=config.frame_ms, max_lead_ms=config.max_lead_ms,
                lateness_observer=session.metrics.outbound_lateness.observe,
                on_utterance_started=self._utterance_started))
            self._speaker_marks = speaker.on_mark
            tts_name = engines.choice.tts
            failure: ProviderError | None = None
            try:
                tts: TTSSession | None = await self._open_tts(stack, tts_name, rate)
            except ProviderError as exc:
                if tts_name == "local":
                    raise
                tts, failure = None, exc

            async def open_local() -> TTSSession:
                # Local sessions own no tasks, so any task may open one into the stack.
                return await stack.enter_async_context(
                    engines.open_tts("local", rate, self.usage))

            voice = Voice(tts, tts_name, engines.voice(tts_name), rate, speaker,
                          engines.cache if pipeline.options.audio_cache else None,
                          session.metrics, open_local,
                          first_audio_s=pipeline.options.tts_first_audio_s)
            if failure is not None:
                await voice.local_session()  # the greeting is said locally
            async with trio.open_nursery() as nursery:
                if failure is not None:
                    nursery.start_soon(self._reopen_tts, voice, tts_name, failure)
                context = ReplyContext(voice, engines.chat(self.usage), pipeline.options,
                                       session.metrics, nursery)
                conversation = Conversation(session, pipeline.playbook, speaker, context,
                                            reporter, clock=pipeline.clock)
                self.conversation = conversation
                self.relay.to = conversation
                nursery.start_soon(self.listener.run)
                try:
                    await conversation.run()
                finally:
                    reporter.call_ended()
                    if conversation.state is not None:
                        reporter.progress(conversation.state)
                    nursery.cancel_scope.cancel()

    def _utterance_started(self, utterance_id: str) -> None:
        if self.conversation is not None:
            self.conversation.utterance_started(utterance_id)

    async def _open_tts(self, stack: AsyncExitStack, name: str, rate: int) -> TTSSession:
        """The chosen TTS session; a vendor's failure to open is logged and counted."""
        engines = self.pipeline.engines
        try:
            return await stack.enter_async_context(
                engines.open_tts(name, rate, self.usage))  # type: ignore[arg-type]
        except ProviderError as exc:
            if name == "local":
                raise
            self.session.metrics.component_errors.labels(component="tts").inc()
            self.session.metrics.fallbacks.labels(component="tts").inc()
            log_event(log, logging.WARNING, "tts unavailable; speaking locally until it opens",
                      engine=name, error=f"{type(exc).__name__}: {exc}")
            raise

    async def _reopen_tts(self, voice: Voice, name: TtsName, failure: ProviderError) -> None:
        """Open the vendor session the call could not open at its start (module
        docstring), hand it to ``voice`` and hold it until the call ends."""
        options, metrics = self.pipeline.options, self.session.metrics
        delay = options.tts_reopen_s
        while True:
            await trio.sleep(max(delay, retry_after_of(failure) or 0.0))
            delay = min(2 * delay, options.tts_reopen_max_s)
            try:
                async with self.pipeline.engines.open_tts(name, self.session.sample_rate,
                                                          self.usage) as tts:
                    log_event(log, logging.INFO, "tts open again; later replies speak with it",
                              engine=name)
                    voice.vendor_opened(tts)
                    try:
                        await trio.sleep_forever()
                    finally:
                        voice.vendor_opened(None)
            except ProviderError as exc:
                failure = exc
                metrics.component_errors.labels(component="tts").inc()
                log_event(log, logging.INFO, "tts still unavailable", engine=name,
                          error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)

"""Listen: the caller's audio → our VAD (inline) → the STT stream → turns.

``feed(pcm)`` runs inside the call's receive loop and never blocks: it runs the
``dsp.EnergyVAD`` endpointer on the chunk (microseconds) and queues the audio
for the STT through a bounded channel (``AUDIO_QUEUE`` chunks, about 25 s; a
stuck STT drops the oldest-first overflow, counted). What the VAD sees goes to
the ``Ears`` at once: speech started, voiced milliseconds while in speech (the
barge-in threshold counts these), speech ended (with the trio time of the last
voiced sample). At our VAD's end of speech a ``finalize()`` is queued right
behind that audio, so the STT answers with everything heard so far without
waiting for its own endpointing; the turn is every final up to that answer
(``providers.stt.turns.TurnAssembler``; ``speech_final``/``UtteranceEnd`` are
fall-backs). Empty turns are dropped. With ``pause_ms`` set, ``pause_ms`` of
quiet inside speech (before the VAD's end) is ``paused`` with the turn's words so
far (its finals, then the latest interim), and voiced audio after it ``resumed``:
the conversation's preemptive generation.

Finalize at the pause (``pause_finalize``, streaming vendor STT only): the
``finalize()`` goes out at the pause instead of at the end of speech, so its
answer (the vendor's final latency, 150 ms on the reference fakes) runs while
our VAD is still waiting out its silence window. The answer is *held*: the turn
is released only when the end of speech is confirmed (the VAD's end, or its
adaptive early/late end) with no voiced audio since that finalize. If the
caller went on, the held words join the rest of the turn and a finalize at the
confirmed end asks for the rest. The local engines decode an utterance whole
(a grammar wants the whole phrase), so for them the finalize stays at the end.

Answers are paired with the finalizes in order, one due per ``finalize()``
(a pause's or an end's: :mod:`~server.handlers.pipeline.finalize_answers`).
Deepgram may leave one unanswered (``FINALIZE_MAY_GO_UNANSWERED``: "You *may*
receive a response", its docs say; e.g. right after its own ``speech_final``
gave every word), so its answers due are given up on when a later finalize's
answer shows they were skipped, or 1 s after they went out (checked on every
inbound frame and at each answer; ``stt_finalize_unanswered_total``, logged
once per call). A given-up end's answer releases the held turn as the answer
would have; a given-up pause's releases it once the end is confirmed and no
other answer is due; an answer that comes after all (none due) is held like a
pause's. The vendor's own end of the caller's latest speech (an empty
``speech_final``, an ``UtteranceEnd``) also releases a held turn once the end is
confirmed (one with words releases any turn, as before). With a vendor that
answers every finalize none of this changes what happens.

The STT runs in ``run``: the chosen engine, and if it fails for good (Deepgram
gives up after its reconnect deadline, 5 s by default) the call switches to
the local engine (pocketsphinx) and goes on with the audio still queued.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import trio

from dialogue.endpointing import EndpointHint
from dsp.pcm import pcm16_from_bytes
from dsp.vad import EnergyVAD, SpeechStarted, VADConfig
from providers.exceptions import ProviderError
from providers.stt.base import Endpoint, Interim, STTEvent, STTStream, UtteranceEnd
from providers.stt.base import Final as FinalWords
from providers.stt.turns import Turn, TurnAssembler
from providers.usage import UsageCounter
from server.handlers.pipeline.engines import Engines, SttName
from server.handlers.pipeline.finalize_answers import POSITION_SLACK_S, AnswersDue, Due
from server.logs import log_event
from server.metrics import ServerMetrics

log = logging.getLogger(__name__)

AUDIO_QUEUE: Final = 256

#: engines whose ``finalize()`` at a pause costs nothing in accuracy (a streaming
#: model keeps its context across the split)
PAUSE_FINALIZE_ENGINES: Final = frozenset({"deepgram"})
#: engines that may leave a ``finalize()`` unanswered (Deepgram's docs: "You *may*
#: receive a response"); the local engines always answer, however slowly
FINALIZE_MAY_GO_UNANSWERED: Final = frozenset({"deepgram"})


class _Finalize:
    """Queued behind the audio: ask the STT for everything heard so far."""


FINALIZE: Final = _Finalize()


def _finalize_answer(event: object) -> bool:
    """Whether an STT event answers a ``finalize()``."""
    return isinstance(event, FinalWords | Endpoint) and event.from_finalize


def _audio_end(event: FinalWords | Endpoint) -> float:
    """The audio an answer covers, up to this call-audio time."""
    return event.end if isinstance(event, FinalWords) else event.t


def _joined(turns: list[Turn]) -> Turn:
    return Turn(text=" ".join(turn.text for turn in turns), start=turns[0].start,
                end=turns[-1].end, from_finalize=turns[-1].from_finalize)


class Ears(Protocol):
    """What the conversation hears from the listener (all synchronous)."""

    def speech_started(self, at: float) -> None: ...

    def voiced(self, ms: float) -> None: ...

    def speech_ended(self, voiced_until: float) -> None: ...

    def words(self, text: str) -> None: ...

    def turn(self, turn: Turn, speech_end: float | None) -> None: ...

    def paused(self, transcript: str) -> None: ...

    def resumed(self) -> None: ...

    def endpoint_hint(self, transcript: str) -> EndpointHint: ...


class Listener:
    """One call's listening side (module docstring)."""

    def __init__(self, engines: Engines, stt: SttName, sample_rate: int,
                 usage: UsageCounter, metrics: ServerMetrics, ears: Ears, *,
                 vad_finalize: bool = True, pause_ms: float = 150.0,
                 adaptive: bool = False, late_end_extra_ms: float = 300.0,
                 pause_finalize: bool = False, usage_tag: str | None = None) -> None:
        self._engines = engines
        self.stt_name: SttName = stt
        self._rate = sample_rate
        self._usage = usage
        self._metrics = metrics
        self.ears = ears
        self._vad_finalize = vad_finalize
        self._pause_ms = pause_ms
        self._adaptive = adaptive and vad_finalize
        self._pause_finalize = pause_finalize and vad_finalize
        self._late_extra_s = late_end_extra_ms / 1000
        self._usage_tag = usage_tag
        self._quiet_ms = 0.0  # unvoiced audio at the end of the current speech
        self._paused = False
        self._ended_early = False  # this speech's turn was ended at its pause
        self._finalize_at: float | None = None  # a late end's delayed confirmation
        # finalize() at the pause: the answers still due, whether the caller spoke
        # since the last finalize, whether the end is confirmed, and the turns
        # answered at a pause while it was not
        self._answers_due = AnswersDue()
        self._voiced_since_finalize = False
        self._confirmed = False
        self._held: list[Turn] = []
        self._stt_samples = 0  # audio queued for the STT (its clock)
        self._onset = 0.0  # STT-clock start of the latest voice after a pause
        self._vendor_ended = False  # the STT's own endpoint since the last voice
        self._finals: list[str] = []  # the current turn's finals so far
        self._interim = ""
        self._vad = EnergyVAD(VADConfig(), sample_rate=sample_rate)
        self._frame_ms = self._vad.config.frame_ms
        self._samples = 0
        self._send, self._receive = trio.open_memory_channel[bytes | _Finalize](AUDIO_QUEUE)
        self._last_speech_end: float | None = None
        self.stt: STTStream | None = None
        self.dropped_chunks = 0

    # -- the receive loop's side ----------------------------------------------

    def feed(self, pcm: bytes) -> None:
        if not pcm:
            return
        self._queue(pcm)
        now = trio.current_time()
        if self._answers_due:
            self._give_up_overdue(now)
        if self._finalize_at is not None and now >= self._finalize_at:
            self._finalize_at = None
            self._confirm()
        self._samples += len(pcm) // 2
        audio_end = self._samples / self._rate
        vad = self._vad
        for event in vad.process(pcm16_from_bytes(pcm)):
            self._quiet_ms, self._paused = 0.0, False
            if isinstance(event, SpeechStarted):
                self._finalize_at = None  # the phrase went on: one turn
                self._confirmed = False
                self._onset = self._stt_samples / self._rate - max(audio_end - event.t, 0.0)
                self.ears.speech_started(now - max(audio_end - event.t, 0.0))
            else:
                self._speech_ended(now - max(audio_end - event.voiced_until, 0.0))
        if vad.in_speech:
            flags = vad.last_flags & 1
            voiced = int(flags.sum())
            if voiced:
                self._voiced_since_finalize = True
                self._confirmed = False
                self._vendor_ended = False
                self.ears.voiced(voiced * self._frame_ms)
            self._tentative_end(flags, now)

    def _speech_ended(self, voiced_until: float) -> None:
        """Our VAD's end of speech: confirmed now, later (words stopping
        mid-phrase), or not at all (the turn was ended at its pause already)."""
        if self._ended_early:
            self._ended_early = False
            return
        self._end_turn(voiced_until)
        if not self._vad_finalize:
            return
        if self._adaptive and self.ears.endpoint_hint(self.transcript) is EndpointHint.LATE:
            self._finalize_at = trio.current_time() + self._late_extra_s
        else:
            self._confirm()

    def _confirm(self) -> None:
        """The end of this speech is decided: the turn is every final up to the
        answer of a ``finalize()`` sent since the last voiced audio (the pause's,
        if the caller stayed quiet since; else one now)."""
        self._confirmed = True
        if self._voiced_since_finalize or (not self._answers_due and not self._held):
            self._finalize()
        elif not self._answers_due or (self._vendor_ended and self._held):
            self._release()  # the pause's answer (or the STT's own end) is in

    def _finalize(self, *, at_pause: bool = False) -> None:
        self._voiced_since_finalize = False
        self._answers_due.sent(trio.current_time(), self._stt_samples / self._rate,
                               at_pause=at_pause)
        self._queue(FINALIZE)

    # -- answers the STT may never give -------------------------------------------

    def _give_up_overdue(self, now: float) -> None:
        """From the receive loop: an answer due too long will not come; the held
        turn goes on as that answer, empty, would have had it."""
        due = self._answers_due
        while (late := due.overdue(now)) is not None:
            self._given_up(late)
            if self._held and (not late.at_pause or (self._confirmed and not due)):
                self._release()

    def _give_up_skipped(self, now: float, answer_end: float) -> None:
        """From the STT reader, before pairing an answer: give up on the answers
        due that it shows were skipped, or that are overdue. A given-up end's
        releases the held turn (its words came before this answer); a pause's
        leaves it to this answer."""
        while (skipped := self._answers_due.skipped(now, answer_end)) is not None:
            self._given_up(skipped)
            if not skipped.at_pause and self._held:
                self._release()

    def _given_up(self, due: Due) -> None:
        self._metrics.finalize_unanswered.inc()
        if self._answers_due.given_up == 1:
            log_event(log, logging.INFO, "stt left a finalize unanswered; going on without it",
                      engine=self.stt_name, at_pause=due.at_pause)

    def _vendor_endpoint(self, event: STTEvent) -> bool:
        """Whether ``event`` is the STT's own end of the caller's latest speech (an
        empty ``speech_final`` or an ``UtteranceEnd`` not older than its onset)."""
        if isinstance(event, UtteranceEnd):
            return event.t >= self._onset - POSITION_SLACK_S
        return (isinstance(event, Endpoint) and not event.from_finalize
                and event.t >= self._onset - POSITION_SLACK_S)

    def _end_turn(self, voiced_until: float) -> None:
        self._last_speech_end = voiced_until
        self.ears.speech_ended(voiced_until)

    def _tentative_end(self, flags: npt.NDArray[np.integer[Any]], now: float) -> None:
        """The caller has been quiet ``pause_ms`` inside speech (before the VAD's
        end of speech): ``paused`` with the transcript so far, and with adaptive
        endpointing a complete short answer ends the turn here; voiced audio
        after that: ``resumed`` (after an early end: a cut-off, counted)."""
        if not len(flags):
            return
        voiced_at = np.flatnonzero(flags)
        if len(voiced_at):
            self._quiet_ms = (len(flags) - 1 - int(voiced_at[-1])) * self._frame_ms
            if self._paused:
                self._paused = False
                self._onset = (self._stt_samples / self._rate
                               - (len(flags) - int(voiced_at[0])) * self._frame_ms / 1000)
                if self._ended_early:
                    self._ended_early = False
                    self._metrics.early_ends.labels(result="cut_off").inc()
                self.ears.resumed()
        else:
            self._quiet_ms += len(flags) * self._frame_ms
        if not self._paused and self._quiet_ms >= self._pause_ms:
            self._paused = True
            transcript = self.transcript
            self.ears.paused(transcript)
            if self._pause_finalize and self.stt_name in PAUSE_FINALIZE_ENGINES:
                self._finalize(at_pause=True)
            if (self._adaptive
                    and self.ears.endpoint_hint(transcript) is EndpointHint.EARLY):
                self._ended_early = True
                self._metrics.early_ends.labels(result="ended").inc()
                self._end_turn(now - self._quiet_ms / 1000)
                self._confirm()

    @property
    def transcript(self) -> str:
        """The current turn's words so far: its finals (held ones too), then the
        latest interim."""
        return " ".join([*self._finals, self._interim]).strip()

    def _queue(self, item: bytes | _Finalize) -> None:
        try:
            self._send.send_nowait(item)
            if isinstance(item, bytes):
                self._stt_samples += len(item) // 2
        except trio.WouldBlock:
            self.dropped_chunks += 1
            if self.dropped_chunks in (1, 100, 1000):
                log_event(log, logging.WARNING, "stt cannot keep up: audio dropped",
                          chunks=self.dropped_chunks)

    # -- the STT task -------------------------------------------------------------

    async def run(self) -> None:
        """Run the STT until cancelled (or the stream ends); fall back to local."""
        while True:
            failures: list[Exception] = []
            self._answers_due.clear()  # a new stream answers nothing sent before
            self._answers_due.may_go_unanswered = self.stt_name in FINALIZE_MAY_GO_UNANSWERED
            try:
                async with self._engines.open_stt(self.stt_name, self._rate, self._usage,
                                                  self._usage_tag) as stt:
                    self.stt = stt
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, stt)
                        await self._read(stt)
                        nursery.cancel_scope.cancel()
            except* ProviderError as group:
                failures = list(group.exceptions)
            finally:
                self.stt = None
            if not failures:
                return
            error = failures[0]
            self._metrics.component_errors.labels(component="stt").inc()
            if self.stt_name == "local":
                log_event(log, logging.ERROR, "local stt failed: not listening any more",
                          error=f"{type(error).__name__}: {error}")
                return
            log_event(log, logging.WARNING, "stt failed; switching to the local engine",
                      engine=self.stt_name, error=f"{type(error).__name__}: {error}")
            self._metrics.fallbacks.labels(component="stt").inc()
            self.stt_name = "local"

    async def _pump(self, stt: STTStream) -> None:
        async for item in self._receive:
            if isinstance(item, _Finalize):
                await stt.finalize()
            else:
                await stt.send_audio(item)

    async def _read(self, stt: STTStream) -> None:
        turns = TurnAssembler()
        async for event in stt.events():
            answer = _finalize_answer(event)
            due: Due | None = None
            if isinstance(event, FinalWords | Endpoint) and answer:
                # (a given-up end's answer releases the turn before these words)
                self._give_up_skipped(trio.current_time(), _audio_end(event))
                due = self._answers_due.answered()
            elif self._vendor_endpoint(event):
                self._vendor_ended = True
            if isinstance(event, FinalWords | Interim) and event.text.strip():
                self.ears.words(event.text)
                if isinstance(event, FinalWords):
                    self._finals.append(event.text.strip())
                    self._interim = ""
                else:
                    self._interim = event.text.strip()
            turn = turns.feed(event)
            if turn is not None:
                self._held.append(turn)
            if not self._held:
                continue
            if answer and (due is None or due.at_pause):
                # the caller may not be done (a pause's answer, or one given up on):
                # the turn waits for our confirmed end
                if self._confirmed and not self._answers_due:
                    self._release()
            elif answer or turn is not None or (self._confirmed and self._vendor_ended):
                self._release()  # the end's answer, or the vendor's own endpoint

    def _release(self) -> None:
        """Hand the turn (every piece held so far) to the conversation."""
        turns, self._held = self._held, []
        self._finals.clear()
        self._interim = ""
        if turns:
            self.ears.turn(_joined(turns), self._last_speech_end)

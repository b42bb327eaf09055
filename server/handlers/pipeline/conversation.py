"""Decide: one call's conversation — turns in, replies out, barge-in, silence, the end.

The listener's ``Ears`` and the handler's events (key presses, marks) arrive
here synchronously; turns, key presses and silence time-outs queue in an inbox
that one task works through in order (``run``), so the dialogue state changes
in one place. For each turn: ``dialogue.analyze`` + ``dialogue.decide`` (the
state is committed then, once), a ``DialogueReport`` to the call's record, and
a reply started in its own cancel scope (``_speak``): template sentences from
the audio cache, or the LLM's answer streamed through ``SentenceSplitter``
into the TTS sentence by sentence (``replies``). A new turn supersedes a reply
still in progress, except a line that may not be interrupted: that one plays
to its end, and the answer to the new turn follows it. Each reply is reported
with the caller's turn it answers and the stage its own decision left — also
when the call ends under it (what the marks say was heard so far).

History: a template's message is in the state from its decision on; an LLM
reply's is recorded once streamed. A reply cut (barge-in, or superseded by a
turn or a key press) keeps in the history just what the caller heard of it, by
marks, in its own place and before the turn that cut it is recorded: its
message is trimmed (gone if nothing was heard), or an LLM reply cut while
streaming is recorded as heard — once either way.

A turn the dialogue code fails on (``analyze``/``decide`` raising: a bug, or a
playbook edited past its reader's checks) does not end the call: it is logged
with its traceback, counted (``component_errors_total{component="dialogue"}``),
the state stays as it was (the caller's words in its history) and the caller
hears the playbook's ``[responses] not_understood`` ("Sorry, I didn't quite
catch that…").

Preemptive generation (``preempt``, on by default): when the caller goes quiet
inside their speech (``pause_ms``, 150 ms, before our VAD's 300 ms end of speech),
the listener reports ``paused`` with the transcript so far; if no reply is
playing and the answer to those words needs the LLM, it is decided on a copy of
the state and its reply starts at once — LLM stream, TTS of its sentences —
held back from the speaker (``Reply.release``). When the turn is confirmed with
the same words from the same state, the state is committed (once, then) and the
reply is heard; other words, or the caller speaking again (``resumed``, a new
``speech_started``), drop it unheard and the turn goes the usual way. Counted in
``preemptions_total{result}``. Template replies are never preempted: their
audio is ready at once.

A turn the rules are unsure of (confidence below ``LLM_BELOW_CONFIDENCE``), with
an LLM configured, is answered by the LLM from the caller's words in the same
stage: the call's state knows an LLM is configured (``CallState.llm``, set when
it is built here) and ``decide`` routes the turn (``dialogue.engine`` lists the
turns acted on as read all the same: do-not-call, the second unsure turn in a
row, key presses, ...). It also gets the LLM's structured reading
(``llm_refine``) beside its reply, never in front of it: within
``refine_deadline_s`` the slots it finds that the state lacks (budget,
timeline, decision maker, need; a callback time while one is awaited) go into
the state and the call's record (``refine_slots``); the reply and the stage
stay as decided. Without an LLM the turn is acted on as read.

Barge-in, measured from our VAD, only while a reply is audible and
interruptible (``[call] non_interruptible`` lists the lines that are not):

1. caller speech starts → the speaker pauses at once (nothing is dropped; the
   caller hears at most what the far end holds, ≤ the speaker's lead);
2. a real interruption — the STT's words (interim or final) are not a
   backchannel; or voiced audio reaches ``barge_in_min_speech_ms`` and no
   words come within ``barge_words_wait_s`` after it; or backchannel words go
   on past ``backchannel_max_speech_s`` — cancels the reply's scope (LLM
   stream, TTS), clears the speaker (``clear``), keeps in the history what was
   heard of the reply (above), and the caller's turn goes on as usual;
3. a backchannel — the words are backchannel tokens (stage-aware: a yes/no
   word while the bot's question plays is an answer), or the speech ends with
   no words within ``barge_decision_s`` — resumes the reply where it paused:
   no ``clear``, no turn (the STT's "haan" is dropped).

Words win over length: "haan haan, theek hai" runs past the voiced threshold
but is still a backchannel. Waiting for the words costs the caller nothing
audible, since playout is already paused; only the ``clear`` comes later.

Silence: ``reprompt_after_s`` after a reply has played with no caller speech,
the caller gets the re-prompt; after a second silence, the goodbye, and the
call ends (``no_response``). Caller speech stops the count, and so does a
reply starting; each reply starts it anew once played. Speech that brings no
turn (a cough, wordless noise) starts it anew from its end when no reply is
under way — also noise that cut the bot (voiced, no words): the cut reply is
not repeated; if the caller says nothing, the re-prompt comes
``reprompt_after_s`` after the noise, as after any silence (the cut line stays
in the history as far as it was heard). An outcome stage's closing line ends
the call once it has played (its last mark echoed, or its length plus a margin).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import trio

from dialogue import LLM_BELOW_CONFIDENCE, analyze, decide, opening
from dialogue.analysis.llm_refine import (
    ANALYSIS_SCHEMA,
    build_analysis_messages,
    merge_llm_analysis,
)
from dialogue.conduct import dtmf_analysis, is_backchannel
from dialogue.endpointing import EndpointHint, endpoint_hint
from dialogue.engine import Decision, LLMRequest, Template
from dialogue.model import Analysis, Intent, Stage
from dialogue.playbook import Playbook
from dialogue.state import (
    CallState,
    new_call_state,
    record_bot_reply,
    record_caller,
    refine_slots,
    trim_bot_message,
)
from providers.exceptions import ProviderError
from providers.llm.base import ChatModel
from providers.stt.turns import Turn
from server.calls.hook import CallSession
from server.handlers.pipeline.replies import ReplyContext, speak_reply
from server.handlers.pipeline.reply import Reply
from server.handlers.pipeline.reporting import CallerTurn, TurnReporter
from server.logs import log_event
from server.playout.speaker import Speaker
from server.store.records import LeadContext

log = logging.getLogger(__name__)

#: Messages of history an uncertain turn's LLM reading sees (the bot's last
#: question says what the caller answers).
REFINE_HISTORY = 4


@dataclass(frozen=True, slots=True)
class HeardTurn:
    text: str
    speech_end: float | None
    turn_final: float
    caller_at: float
    analysis: Analysis | None = None  # set for key presses


@dataclass(frozen=True, slots=True)
class Silence:
    pass


@dataclass(slots=True)
class Preempted:
    """An LLM reply started at a tentative end of speech, on ``words`` (normalised),
    from ``before`` (the state then); heard only once the turn is confirmed."""

    words: list[str]
    before: CallState
    decision: Decision
    analysis: Analysis
    reply: Reply
    caller: CallerTurn | None = None  # set when confirmed


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def _recorded(before: CallState | None, after: CallState) -> Mapping[str, str] | None:
    """The bot message a decision recorded going from ``before`` to ``after``
    (a template's; ``None`` for an LLM request, or a line kept out of the history)."""
    if not after.history or after.history[-1]["role"] != "assistant":
        return None
    said = after.history[-1]
    if before is not None and before.history and before.history[-1] is said:
        return None
    return said


def greeting(playbook: Playbook, lead: LeadContext, clock: Callable[[], datetime], *,
             llm: bool = False) -> Decision:
    """The call's first decision: a new dialogue state for ``lead`` (``llm``: an
    LLM is configured, see ``dialogue.decide``) and the playbook's opening line.
    What a call says first, and what ``/exotel/url`` renders ahead of it
    (``server.handlers.pipeline.announce``): one function, so both say the same
    words."""
    values = {k: v for k, v in (("name", lead.name), ("company", lead.company),
                                ("product_interest", lead.product_interest),
                                ("language", lead.language)) if v}
    state = new_call_state(playbook, values, clock(), llm=llm)
    return opening(state, clock())


@dataclass(slots=True)
class BargeIn:
    reply: Reply
    started: float
    voiced_ms: float = 0.0
    ended: bool = False
    words: str | None = None  # the latest words heard over the bot (backchannel ones)
    waiting_for_words: bool = False
    decision: trio.CancelScope = field(default_factory=trio.CancelScope)


class Conversation:
    """See the module docstring. Create it once the speaker is open."""

    def __init__(self, session: CallSession, playbook: Playbook, speaker: Speaker,
                 context: ReplyContext, reporter: TurnReporter, *,
                 clock: Callable[[], datetime]) -> None:
        self.session = session
        self.playbook = playbook
        self.conduct = playbook.conduct
        self.speaker = speaker
        self.context = context
        self.reporter = reporter
        self.clock = clock
        self.state: CallState | None = None
        self._inbox_send, self._inbox = trio.open_memory_channel[HeardTurn | Silence](64)
        self._nursery: trio.Nursery | None = None
        self._reply: Reply | None = None
        self._unbroken: Reply | None = None  # the last line that may not be interrupted
        self._barge: BargeIn | None = None
        self._preempted: Preempted | None = None
        self._silence = trio.CancelScope()
        self._reprompted = False
        self._replies = 0
        self._audio_start = trio.current_time()
        self.ended = False

    # -- what the listener and the handler report (sync) ----------------------------

    def speech_started(self, at: float) -> None:
        self._silence.cancel()
        self._discard_preempted("resumed")
        reply = self._reply
        if (self._barge is None and reply is not None and reply.interruptible
                and reply.sentences and self.speaker.speaking and not reply.cut):
            self.speaker.pause()
            self._barge = BargeIn(reply, at)

    def voiced(self, ms: float) -> None:
        barge = self._barge
        if barge is None:
            return
        barge.voiced_ms += ms
        if barge.voiced_ms < self.conduct.barge_in_min_speech_ms:
            return
        if barge.words is None:
            if not barge.waiting_for_words and self._nursery is not None:
                barge.waiting_for_words = True
                self._nursery.start_soon(self._interrupt_without_words, barge)
        elif barge.voiced_ms >= self.context.options.backchannel_max_speech_s * 1000:
            self._interrupt("long")

    def speech_ended(self, voiced_until: float) -> None:
        barge = self._barge
        if barge is not None and self._nursery is not None:
            barge.ended = True
            self._nursery.start_soon(self._decide_barge_in_later, barge)
        else:
            self._silence_unless_answered()

    def words(self, text: str) -> None:
        """Words of the caller's current speech (interim or final)."""
        barge = self._barge
        if barge is None or not text.strip():
            return
        if self._backchannel(text, barge.reply):
            barge.words = text
        else:
            self._interrupt("words")

    def turn(self, turn: Turn, speech_end: float | None) -> None:
        barge = self._barge
        if barge is not None:
            if self._backchannel(turn.text, barge.reply):
                self._resume(barge)
                return
            self._interrupt("words")
        self._silence.cancel()  # its reply counts it anew once played
        self._post(HeardTurn(turn.text, speech_end, trio.current_time(), turn.start))

    def paused(self, transcript: str) -> None:
        """The caller went quiet mid-speech: if the reply to what they said so far
        needs the LLM, start it now, unheard (preemptive generation)."""
        state, chat, nursery = self.state, self.context.chat, self._nursery
        if (not self.context.options.preempt or state is None or chat is None
                or nursery is None or self.ended
                or self._preempted is not None or self._barge is not None
                or not _words(transcript)):
            return
        reply = self._reply
        if reply is not None and not reply.finished.is_set():
            return  # the bot is still talking: this is not a turn's end
        now = self.clock()
        try:
            analysis = analyze(transcript, state.stage, now)
            decision = decide(record_caller(state, transcript), analysis, now)
        except Exception:  # the turn, when confirmed, meets it again and says so
            return
        if not isinstance(decision.reply, LLMRequest):
            return  # a template is ready at once: nothing to gain
        reply = self._new_reply(decision, {"decided": trio.current_time()})
        reply.release = trio.Event()
        preempted = Preempted(_words(transcript), state, decision, analysis, reply)
        self._preempted = preempted
        nursery.start_soon(self._speak, reply, decision, None, state.stage, self._after(),
                           False, False, preempted)

    def endpoint_hint(self, transcript: str) -> EndpointHint:
        """How soon the caller's words so far may end their turn (adaptive
        endpointing): a short answer counts as complete after a question."""
        reply = self._reply
        return endpoint_hint(transcript,
                             after_question=reply is not None and reply.last_is_question)

    def resumed(self) -> None:
        """The caller spoke again after a pause: what was started is moot."""
        self._discard_preempted("resumed")

    def _discard_preempted(self, result: str) -> None:
        preempted, self._preempted = self._preempted, None
        if preempted is not None:
            preempted.reply.scope.cancel()
            self.reporter.metrics.preemptions.labels(result=result).inc()

    def _confirm_preempted(self, heard: HeardTurn) -> Analysis | None:
        """The turn is confirmed: keep the preempted reply if it answered the same
        words from the same state (then commit that state, once, and return the
        turn's analysis); else drop it (``None``)."""
        preempted = self._preempted
        if preempted is None:
            return None
        if (preempted.words != _words(heard.text) or self.state is not preempted.before
                or heard.analysis is not None):
            self._discard_preempted("changed")
            return None
        self._preempted = None
        self.reporter.metrics.preemptions.labels(result="kept").inc()
        reply = preempted.reply
        reply.marks["turn_final"] = heard.turn_final
        if heard.speech_end is not None:
            reply.marks["speech_end"] = heard.speech_end
        preempted.caller = self.reporter.turn_started(
            heard.text, heard.caller_at, preempted.before.stage, preempted.analysis)
        self._commit(preempted.decision)
        self._reply = reply
        assert reply.release is not None
        reply.release.set()
        return preempted.analysis

    def dtmf(self, digit: str) -> None:
        analysis = dtmf_analysis(digit, self.conduct)
        if analysis is None:  # not a turn, but the caller is there: silence starts over
            log_event(log, logging.INFO, "key press not mapped", digit=digit[:4])
            if not self._silence.cancel_called:
                self._arm_silence()
            return
        self._silence.cancel()
        now = trio.current_time()
        self._post(HeardTurn(f"dtmf:{digit}", now, now, now - self._audio_start, analysis))

    def utterance_started(self, utterance_id: str) -> None:
        reply = self._reply
        if reply is not None and reply.owns(utterance_id):
            reply.marks.setdefault("first_media_sent", trio.current_time())

    def mark_played(self, name: str) -> None:
        reply = self._reply
        if reply is not None and reply.sentences and name == reply.sentences[0].utterance_id:
            reply.marks.setdefault("first_mark_played", trio.current_time())

    # -- barge-in ---------------------------------------------------------------------

    def _backchannel(self, text: str, reply: Reply) -> bool:
        after_question = reply.current_is_question(self.speaker)
        return is_backchannel(text, self.conduct, after_question=after_question)

    def _interrupt(self, why: str) -> None:
        barge, self._barge = self._barge, None
        if barge is None:
            return
        barge.decision.cancel()
        reply = barge.reply
        reply.cut = True
        self.speaker.clear()
        reply.scope.cancel()
        self._keep_heard(reply)
        if barge.ended:  # words came after the speech: a turn should follow them
            self._silence_unless_answered()
        self.reporter.metrics.barge_ins.inc()
        log_event(log, logging.INFO, "barge-in: reply cut", why=why,
                  talkover_ms=round((trio.current_time() - barge.started) * 1000))

    def _resume(self, barge: BargeIn) -> None:
        if self._barge is barge:
            self._barge = None
            barge.decision.cancel()
            self.speaker.resume()
            self.reporter.metrics.backchannels.inc()
            log_event(log, logging.INFO, "backchannel: reply resumed")

    async def _interrupt_without_words(self, barge: BargeIn) -> None:
        """Past the voiced threshold: no words within ``barge_words_wait_s`` →
        an interruption (the STT is slow, or says nothing we could use)."""
        await trio.sleep(self.context.options.barge_words_wait_s)
        if self._barge is barge and barge.words is None and not barge.ended:
            self._interrupt("voiced")

    async def _decide_barge_in_later(self, barge: BargeIn) -> None:
        """Short speech: no words within ``barge_decision_s`` → a backchannel."""
        with barge.decision:
            await trio.sleep(self.context.options.barge_decision_s)
            self._resume(barge)

    # -- the conversation task -------------------------------------------------------

    def _post(self, item: HeardTurn | Silence) -> None:
        try:
            self._inbox_send.send_nowait(item)
        except trio.WouldBlock:
            log_event(log, logging.WARNING, "turn dropped: the conversation is behind")

    async def run(self) -> None:
        """Greet, then answer turns until the call ends."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            lead = await self.session.lead()
            decided = trio.current_time()
            self._answer(greeting(self.playbook, lead, self.clock,
                                  llm=self.context.chat is not None), None,
                         {"decided": decided}, greeting=True)
            async for item in self._inbox:
                if isinstance(item, Silence):
                    self._on_silence()
                else:
                    self._on_turn(item)
            nursery.cancel_scope.cancel()

    def _on_turn(self, heard: HeardTurn) -> None:
        state = self.state
        assert state is not None
        self._reprompted = False
        now = self.clock()
        analysis = self._confirm_preempted(heard)
        if analysis is None:
            previous = self._reply
            if previous is not None and not previous.cut and previous.interruptible:
                self._supersede(previous)
                state = self.state  # its message is cut to what was heard
                assert state is not None
            marks = {"turn_final": heard.turn_final}
            if heard.speech_end is not None:
                marks["speech_end"] = heard.speech_end
            try:
                analysis = heard.analysis or analyze(heard.text, state.stage, now)
                decision = decide(record_caller(state, heard.text), analysis, now)
            except Exception as exc:  # a fault in the dialogue code: the call goes on
                analysis, decision = self._not_understood(state, heard.text, exc)
            marks["decided"] = trio.current_time()
            caller = self.reporter.turn_started(heard.text, heard.caller_at, state.stage,
                                                analysis)
            self._answer(decision, caller, marks)
        chat = self.context.chat
        if (heard.analysis is None and chat is not None
                and analysis.confidence < LLM_BELOW_CONFIDENCE):
            assert self._nursery is not None
            self._nursery.start_soon(self._refine, chat, heard.text, analysis, state, now)

    def _not_understood(self, state: CallState, text: str,
                        exc: Exception) -> tuple[Analysis, Decision]:
        """A turn the dialogue code failed on (a bug, never the caller's fault):
        logged with its traceback and counted (``component_errors{dialogue}``);
        the state stays as it was (with the caller's words in the history) and
        the caller is asked to say it again (``[responses] not_understood``)."""
        self.reporter.metrics.component_errors.labels(component="dialogue").inc()
        log_event(log, logging.ERROR, "turn not handled: dialogue error; asking again",
                  stage=state.stage.value, error=type(exc).__name__, exc_info=exc)
        line = self.playbook.responses["not_understood"].render(state.values)
        decision = Decision(record_caller(state, text),
                            Template("responses.not_understood", line),
                            end_call=False, barge_in_allowed=True)
        return Analysis(intent=Intent.OTHER, confidence=0.0), decision

    async def _refine(self, chat: ChatModel, text: str, analysis: Analysis,
                      before: CallState, now: datetime) -> None:
        """An uncertain turn's LLM reading, beside its reply (never in front of
        it): slots it finds that the state lacks go into the state and the record."""
        history = [("bot" if m["role"] == "assistant" else "caller", m["content"])
                   for m in before.history[-REFINE_HISTORY:]]
        messages = build_analysis_messages(text, stage=before.stage, now=now, history=history)
        reading: Mapping[str, object] | None = None
        with trio.move_on_after(self.context.options.refine_deadline_s):
            try:
                reading = await chat.complete_json(messages, ANALYSIS_SCHEMA,
                                                   name="caller_turn_analysis")
            except ProviderError as exc:
                self.reporter.metrics.component_errors.labels(component="llm").inc()
                log_event(log, logging.INFO, "turn not refined", error=type(exc).__name__)
                return
        if reading is None:
            log_event(log, logging.INFO, "turn not refined: no reading in time",
                      deadline_s=self.context.options.refine_deadline_s)
            return
        refined = merge_llm_analysis(analysis, reading, now)
        if self.state is None:
            return
        state = refine_slots(self.state, refined)
        if state is not self.state:
            added = sorted(set(state.slots) - set(self.state.slots))
            self.state = state
            self.reporter.progress(state)
            log_event(log, logging.INFO, "turn refined", slots=",".join(added))

    def _on_silence(self) -> None:
        if self.ended or self.state is None:
            return
        line = self.conduct.goodbye_no_response if self._reprompted \
            else self.conduct.reprompt
        text = line.render(self.state.values)
        name = "call.goodbye_no_response" if self._reprompted else "call.reprompt"
        decision = Decision(self.state, Template(name, text), end_call=self._reprompted,
                            barge_in_allowed=True)
        self._reprompted = True
        self._answer(decision, None, {"decided": trio.current_time()}, silence=True)

    def _answer(self, decision: Decision, caller: CallerTurn | None, marks: dict[str, float],
                *, greeting: bool = False, silence: bool = False) -> None:
        """Commit ``decision`` and start its reply (once a line that may not be
        interrupted has played to its end)."""
        self._silence.cancel()  # the reply counts it anew once played
        prior = self.state
        before = prior.stage if prior is not None else Stage.INTRO
        self._commit(decision)
        reply = self._new_reply(decision, marks)
        reply.message = _recorded(prior, decision.state)
        self._reply = reply
        after = self._after()
        if not reply.interruptible:
            self._unbroken = reply
        assert self._nursery is not None
        self._nursery.start_soon(self._speak, reply, decision, caller, before, after, greeting,
                                 silence)

    def _commit(self, decision: Decision) -> None:
        self.state = decision.state
        self.reporter.progress(decision.state)

    def _new_reply(self, decision: Decision, marks: dict[str, float]) -> Reply:
        self._replies += 1
        template_id = decision.reply.template_id if isinstance(decision.reply, Template) \
            else None
        interruptible = decision.barge_in_allowed and (
            template_id not in self.conduct.non_interruptible)
        kind = "template" if isinstance(decision.reply, Template) else "llm"
        return Reply(f"r{self._replies}", kind, template_id, interruptible, marks,
                     records_said=isinstance(decision.reply, LLMRequest))

    def _after(self) -> Reply | None:
        """The line that may not be interrupted and is still playing, if any."""
        after = self._unbroken
        return None if after is None or after.finished.is_set() else after

    def _supersede(self, reply: Reply) -> None:
        """A new turn came while ``reply`` was still being prepared or played."""
        reply.cut = True
        if reply.sentences and self.speaker.speaking:  # its audio is out: stop it
            self.speaker.clear()
        reply.scope.cancel()
        self._keep_heard(reply)

    def _keep_heard(self, reply: Reply) -> None:
        """``reply`` was cut: the history keeps what the caller heard of it (marks),
        in its own place, before the turn that cut it is recorded. A template's
        message is trimmed; an LLM reply not recorded yet is recorded as heard."""
        if self.state is None:
            return
        heard = reply.heard_text(self.speaker)
        if reply.message is not None:
            self.state = trim_bot_message(self.state, reply.message, heard)
        elif reply.records_said:
            self.state = record_bot_reply(self.state, heard)
        reply.records_said = False

    async def _speak(self, reply: Reply, decision: Decision, caller: CallerTurn | None,
                     before: Stage, after: Reply | None, greeting: bool, silence: bool,
                     preempted: Preempted | None = None) -> None:
        over = False
        try:
            with reply.scope:
                if after is not None:  # a line that may not be interrupted plays to its end
                    await after.finished.wait()
                said = await speak_reply(self.context, reply, decision)
                await reply.released()  # a preempted reply counts once its turn is confirmed
                if said is not None and reply.records_said and self.state is not None:
                    recorded = record_bot_reply(self.state, said)  # an LLM reply, streamed
                    if recorded is not self.state:
                        reply.message = recorded.history[-1]
                    self.state = recorded
                    reply.records_said = False
                await self._wait_played(reply)
            over = True
        finally:
            reply.finished.set()
            if not over:
                # The call ended under it (a reply's own cut ends in its scope):
                # its turn is still reported, with what the marks say was heard
                # (synchronously: there is no checkpoint to shield).
                self._report(reply, decision, caller, before, greeting, silence, preempted,
                             ended=True)
        if not self._report(reply, decision, caller, before, greeting, silence, preempted):
            return
        if reply is not self._reply or reply.cut:
            return
        if decision.end_call:
            self.ended = True
            self.session.hang_up("no_response" if silence else "completed")
            return
        self._arm_silence()

    def _report(self, reply: Reply, decision: Decision, caller: CallerTurn | None,
                before: Stage, greeting: bool, silence: bool, preempted: Preempted | None,
                *, ended: bool = False) -> bool:
        """Report ``reply``'s turn, with the stage its own decision left (later
        turns may have moved on); ``False`` for a preempted reply dropped unheard
        (nothing was heard or committed)."""
        if reply.release is not None and not reply.release.is_set():
            return False
        if preempted is not None:
            caller = preempted.caller
        self.reporter.turn_finished(reply, caller, before, decision.state, greeting=greeting,
                                    silence=silence, speaker=self.speaker, ended=ended)
        return True

    async def _wait_played(self, reply: Reply) -> None:
        """Until the reply's last mark came back, or its length plus a margin."""
        if not reply.sentences:
            return
        last = reply.sentences[-1].utterance_id
        heard = self.speaker.heard(last)
        total_s = sum(self.speaker.heard(s.utterance_id).queued_ms for s in reply.sentences)
        margin = self.context.options.played_margin_s + total_s / 1000
        with trio.move_on_after(margin):
            if heard.state not in ("played", "cleared"):
                await self.speaker.wait_played(last)

    def _silence_unless_answered(self) -> None:
        """The caller's speech is over and no reply is under way: silence counts
        from here (a turn stops it; wordless noise brings none)."""
        reply = self._reply
        if self.ended or self._nursery is None or (
                reply is not None and not reply.cut and not reply.finished.is_set()):
            return  # a reply in progress counts the silence once it has played
        self._arm_silence()

    def _arm_silence(self) -> None:
        self._silence.cancel()
        self._silence = trio.CancelScope()
        assert self._nursery is not None
        self._nursery.start_soon(self._wait_silence, self._silence)

    async def _wait_silence(self, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(self.conduct.reprompt_after_s)
            self._post(Silence())

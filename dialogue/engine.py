"""``decide``: one caller turn in, the next state and what to say out.

The engine names what the turn meant as an ``Event`` (see ``dialogue.stages``),
follows the playbook's transition table, and picks the reply for the stage it
lands in. Template first: greetings, stage questions, the pitch, objection
answers, callback offers and confirmations, goodbyes and DND confirmations are
playbook templates (their audio can be cached). Only questions, details,
anything unexpected and — with an LLM configured — turns the analysis is unsure
of become an ``LLMRequest``, which always carries a fallback template for when
no LLM is configured or it fails.

Rules worth knowing (all numbers come from the playbook):

- From any live stage: do-not-call → DEAD_END with ``do_not_call`` set; wrong
  person → DEAD_END; callback request or busy → FOLLOW_UP_SCHEDULED (confirm at
  once when a time was given, else ask for one; after ``max_callback_asks``
  unanswered asks, pick the default time). Callback times are moved into the
  call window: before it → its start that day; at or after its end, or in the
  past → the next day at the default time.
- "Not interested": at INTRO it ends the call; elsewhere the first ones get a
  short rebuttal and the ``max_declines``-th ends the call.
- Objections: each answer given uses one attempt (answers per type are used in
  order, the last repeats); a "no" to our answer is a failed attempt too. When
  ``max_objection_attempts`` answers were given and the caller still objects,
  the call goes to DEAD_END. Acceptance returns to the interrupted stage.
- With an LLM configured (``CallState.llm``), a turn the analysis is unsure of
  (confidence below ``LLM_BELOW_CONFIDENCE``: its intent is more likely wrong
  than the threshold allows) is answered by the LLM from the caller's words
  (the request's history ends with them), in the same stage, instead of acting
  on a reading that is probably wrong. Slots read from it are kept (the LLM's
  structured reading beside the reply may add more). Acted on as read even
  when unsure: do-not-call (not honouring one costs more than ending a call
  by mistake); an unsure turn right after one the LLM answered, so a call
  never loops (a sure turn, a new stage or a new question starts over); key
  presses (``dtmf_analysis`` reads them at confidence 1.0); in
  FOLLOW_UP_SCHEDULED, a turn that names a callback time (confirmed aloud, so
  the caller hears it) or one after the last ask for a time (the default time
  is taken). There the LLM's answer asks for a time again and counts as an
  ask; in QUALIFICATION it asks the pending question again unless the turn
  answered it.
- In DISCOVERY and QUALIFICATION any answer moves on, except a turn no rule
  could read (``other`` below ``LLM_BELOW_CONFIDENCE``, no slots): the first such
  turn in a row goes to the LLM (without one configured, its fallback line is
  said), a second one is taken as an answer.
- Backchannels ("hmm", "haan") while presenting continue the pitch point by
  point, then ask the check question; they never change the stage.
- An outcome stage says its closing line and moves on to ENDED in the same turn
  (``end_call=True``). ENDED is absorbing: any further turn yields an empty
  template and ``end_call=True``.

``decide`` records template replies in the history itself; LLM replies are
recorded by the caller with ``record_bot_reply`` once streamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from dialogue.analysis.confidence import LLM_BELOW_CONFIDENCE
from dialogue.model import Analysis, Intent, Objection, Stage
from dialogue.playbook import Playbook
from dialogue.prompts import build_messages, spoken_time
from dialogue.stages import OUTCOME_STAGES, RETURN_TO_INTERRUPTED, Event
from dialogue.state import CallState, record_bot_reply
from dialogue.templates import TemplateText


@dataclass(frozen=True, slots=True)
class Template:
    """A rendered template: ``text`` is stable for a given lead, so its audio can
    be cached under (``template_id``, text). Empty text means "say nothing"."""

    template_id: str
    text: str


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One streaming chat completion to run; say ``fallback_text`` (the template
    ``template_id_fallback``) if the LLM is unavailable or fails."""

    messages: tuple[Mapping[str, str], ...]
    max_tokens: int
    temperature: float
    template_id_fallback: str
    fallback_text: str


@dataclass(frozen=True, slots=True)
class Decision:
    state: CallState
    reply: Template | LLMRequest
    end_call: bool
    barge_in_allowed: bool
    event: Event | None = None  # what the turn meant (None: stayed in the stage)


_DEAD_END_LINES = {Event.DO_NOT_CALL: "do_not_call", Event.WRONG_PERSON: "wrong_person",
                   Event.EXHAUSTED: "exhausted"}
_ENTRY_LINES = {Stage.INTRO: "greeting", Stage.DISCOVERY: "question",
                Stage.TRIAL_CLOSE: "question", Stage.CLOSING: "ask"}


_QUESTIONS = frozenset({Intent.ASK_PRICE, Intent.ASK_DETAILS, Intent.QUESTION})
_YES = frozenset({Intent.AFFIRM, Intent.INTERESTED})
# An objection of this kind answers the pending qualification question.
_ANSWERS_SLOT = {Objection.AUTHORITY: "decision_maker", Objection.TIMING: "timeline",
                 Objection.PRICE: "budget_inr"}


def opening(state: CallState, now: datetime) -> Decision:
    """The first line of the call (INTRO's greeting)."""
    return _say(state, _stage_template(state, Stage.INTRO, "greeting"))


def within_call_window(playbook: Playbook, now: datetime) -> bool:
    """Whether ``now`` is inside the playbook's calling hours (local time)."""
    local = now.astimezone(playbook.rules.timezone).time()
    return playbook.rules.call_start <= local < playbook.rules.call_end


def decide(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    """The next state and reply for one caller turn (see the module docstring)."""
    if state.stage is Stage.ENDED:
        return Decision(state, Template("ENDED.silence", ""), end_call=True,
                        barge_in_allowed=False)
    slots = MappingProxyType({**state.slots, **analysis.slots}) if analysis.slots else state.slots
    state = replace(state, turns=state.turns + 1, slots=slots)
    intent = analysis.intent

    if intent is Intent.DO_NOT_CALL:
        return _event(replace(state, do_not_call=True), Event.DO_NOT_CALL, analysis, now)
    if analysis.confidence >= LLM_BELOW_CONFIDENCE:
        state = replace(state, unclear_turns=0)  # "in a row" ends with a sure turn
    elif _worth_the_llm(state, analysis):
        return _unsure(state, analysis, now)
    if intent is Intent.WRONG_PERSON:
        return _event(state, Event.WRONG_PERSON, analysis, now)
    if intent is Intent.NOT_INTERESTED:
        declines = state.declines + 1
        state = replace(state, declines=declines)
        firm = (state.stage in (Stage.INTRO, Stage.FOLLOW_UP_SCHEDULED)
                or declines >= state.playbook.rules.max_declines)
        if firm:
            return _event(state, Event.DECLINED, analysis, now)
        return _say(state, _response(state, "decline_rebuttal"))
    if state.stage is Stage.FOLLOW_UP_SCHEDULED:
        return _follow_up(state, analysis, now)
    if intent in (Intent.CALLBACK_REQUEST, Intent.BUSY):
        return _event(state, Event.CALLBACK, analysis, now)
    if intent is Intent.OBJECTION and not _answers_pending_slot(state, analysis):
        return _objection(state, analysis, now)
    handler = _STAGE_HANDLERS[state.stage]
    return handler(state, analysis, now)


def _worth_the_llm(state: CallState, analysis: Analysis) -> bool:
    """An unsure turn the LLM should answer rather than the rules act on (the
    module docstring says which are acted on all the same)."""
    if not state.llm or state.unclear_turns > 0:
        return False
    if state.stage is Stage.FOLLOW_UP_SCHEDULED:
        named = isinstance(analysis.slots.get("callback_at"), datetime)
        return not named and state.callback_asks < state.playbook.rules.max_callback_asks
    return True


def _unsure(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    """The LLM answers an unsure turn in the same stage; its answer in
    FOLLOW_UP_SCHEDULED asks for a time again (one more ask)."""
    state = replace(state, unclear_turns=1)
    if state.stage is Stage.FOLLOW_UP_SCHEDULED:
        state = replace(state, callback_asks=state.callback_asks + 1)
    return _llm(state, analysis, now, None)


# --- moving between stages ----------------------------------------------------------


def _event(state: CallState, event: Event, analysis: Analysis, now: datetime) -> Decision:
    """Follow ``event`` in the table and say the reply of the stage entered."""
    target = state.playbook.table.target(state.stage, event)
    if target is None:  # the playbook's table has no such edge: stay
        return _stay(state, analysis, now)
    if target == RETURN_TO_INTERRUPTED:
        stage = state.interrupted or Stage.DISCOVERY
        state = replace(state, interrupted=None, objection=None)
    else:
        stage = Stage(target)
    state = _enter(state, stage)
    return _entry_reply(state, event, analysis, now)


def _enter(state: CallState, stage: Stage) -> CallState:
    outcome = stage if stage in OUTCOME_STAGES else state.outcome
    return replace(state, stage=stage, path=(*state.path, stage), outcome=outcome,
                   unclear_turns=0)


def _entry_reply(state: CallState, event: Event, analysis: Analysis, now: datetime) -> Decision:
    stage = state.stage
    if stage is Stage.DEAD_END:
        name = _DEAD_END_LINES.get(event, "goodbye")
        return _close(state, _stage_template(state, stage, name), event)
    if stage is Stage.DEAL_CLOSED:
        return _close(state, _stage_template(state, stage, "goodbye"), event)
    if stage is Stage.FOLLOW_UP_SCHEDULED:
        at = analysis.slots.get("callback_at")
        if isinstance(at, datetime):
            return _confirm_callback(state, _schedule(state.playbook, at, now), now, event)
        if event is Event.POSTPONED:
            name = "postpone"
        elif analysis.intent is Intent.BUSY:
            name = "offer"
        else:
            name = "ask_time"
        return _say(replace(state, callback_asks=1), _stage_template(state, stage, name), event)
    if stage is Stage.OBJECTION_HANDLING:
        return _objection_answer(state, analysis, now, event)
    if stage is Stage.INTRO and event is Event.RESOLVED:  # accepting our answer = accepting
        return _event(state, Event.ACCEPTED, analysis, now)
    if event is Event.RESOLVED and analysis.intent in _QUESTIONS:
        return _llm(state, analysis, now, event)
    if stage is Stage.QUALIFICATION:
        return _ask_next_question(state, analysis, now, event)
    if stage is Stage.PRESENTATION:
        return _next_pitch_point(state, event)
    return _say(state, _stage_template(state, stage, _ENTRY_LINES[stage]), event)


def _close(state: CallState, template: Template, event: Event | None) -> Decision:
    """Say an outcome stage's closing line and move on to ENDED."""
    said = _say(state, template, event).state
    target = said.playbook.table.target(said.stage, Event.CLOSED)
    ended = _enter(said, Stage(target)) if isinstance(target, Stage) else said
    return Decision(ended, template, end_call=True, barge_in_allowed=False, event=event)


# --- per-stage handling when no global rule applied ---------------------------------


def _intro(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    if analysis.intent in _YES or analysis.intent is Intent.BACKCHANNEL:
        return _event(state, Event.ACCEPTED, analysis, now)
    if analysis.intent is Intent.DENY:  # "no" to "do you have two minutes?"
        return _event(state, Event.CALLBACK, replace(analysis, intent=Intent.BUSY), now)
    return _stay(state, analysis, now)


def _unclear(state: CallState, analysis: Analysis) -> bool:
    """A turn no rule could read, the first time in this stage: worth the LLM.
    A second unclear turn in a row is taken as an answer, so we never loop."""
    return (analysis.intent is Intent.OTHER and analysis.confidence < LLM_BELOW_CONFIDENCE
            and not analysis.slots and state.unclear_turns == 0)


def _discovery(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    if _unclear(state, analysis):
        return _llm(replace(state, unclear_turns=1), analysis, now, None)
    answered = analysis.intent in _YES or analysis.intent in (Intent.DENY, Intent.OTHER)
    if answered or "need" in analysis.slots or "budget_inr" in analysis.slots:
        state = replace(state, asked=state.asked | {"need"})
        return _event(state, Event.NEED_UNDERSTOOD, analysis, now)
    return _stay(state, analysis, now)


def _qualification(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    if analysis.intent in _QUESTIONS:
        return _llm(state, analysis, now, None)
    if _unclear(state, analysis):
        return _llm(replace(state, unclear_turns=1), analysis, now, None)
    return _ask_next_question(replace(state, unclear_turns=0), analysis, now, None)


def _presentation(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    if analysis.intent in _YES:
        return _event(state, Event.INTERESTED, analysis, now)
    if analysis.intent is Intent.BACKCHANNEL:
        return _next_pitch_point(state, None)
    return _stay(state, analysis, now)


def _trial_close(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    if analysis.intent in _YES:
        return _event(state, Event.AGREED, analysis, now)
    if analysis.intent is Intent.BACKCHANNEL:
        return _say(state, _stage_template(state, Stage.TRIAL_CLOSE, "question"))
    return _stay(state, analysis, now)


def _closing(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    if analysis.intent in _YES:
        return _event(state, Event.AGREED, analysis, now)
    if analysis.intent is Intent.DENY:
        return _event(state, Event.POSTPONED, analysis, now)
    return _stay(state, analysis, now)


def _objection_handling(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    if analysis.intent in _YES or analysis.intent in _QUESTIONS or (
        analysis.intent is Intent.BACKCHANNEL
    ):
        return _event(state, Event.RESOLVED, analysis, now)
    if analysis.intent is Intent.DENY:  # our answer did not convince: a failed attempt
        return _objection(state, replace(analysis, objection=state.objection), now)
    return _stay(state, analysis, now)


def _stay(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    """No transition: questions and anything unexpected go to the LLM; a bare
    greeting or acknowledgement gets the stage's fallback line."""
    if analysis.intent in (Intent.GREETING, Intent.BACKCHANNEL):
        return _say(state, _stage_template(state, state.stage, "fallback"))
    return _llm(state, analysis, now, None)


_STAGE_HANDLERS = {
    Stage.INTRO: _intro,
    Stage.DISCOVERY: _discovery,
    Stage.QUALIFICATION: _qualification,
    Stage.PRESENTATION: _presentation,
    Stage.TRIAL_CLOSE: _trial_close,
    Stage.CLOSING: _closing,
    Stage.OBJECTION_HANDLING: _objection_handling,
}


# --- objections, qualification, pitch, callbacks -------------------------------------


def _objection(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    """An objection (or a "no" to our answer) was raised in any live stage."""
    exhausted = state.objection_attempts >= state.playbook.rules.max_objection_attempts
    if state.stage is not Stage.OBJECTION_HANDLING:
        target = state.playbook.table.target(state.stage, Event.OBJECTION)
        if not isinstance(target, Stage):
            return _stay(state, analysis, now)
        state = replace(state, interrupted=state.stage, objection=analysis.objection)
        if not exhausted:  # the entry reply answers the objection
            return _event(state, Event.OBJECTION, analysis, now)
        state = _enter(state, target)
    if state.objection_attempts >= state.playbook.rules.max_objection_attempts:
        return _event(state, Event.EXHAUSTED, analysis, now)
    if analysis.objection is not None:
        state = replace(state, objection=analysis.objection)
    return _objection_answer(state, analysis, now, None)


def _objection_answer(
    state: CallState, analysis: Analysis, now: datetime, event: Event | None
) -> Decision:
    kind = state.objection
    attempts = state.objection_attempts + 1
    if kind is None:  # an objection the analysis could not classify
        state = replace(state, objection_attempts=attempts)
        return _say(state, _stage_template(state, Stage.OBJECTION_HANDLING, "fallback"), event)
    used = state.objection_counts.get(kind, 0)
    counts = MappingProxyType({**state.objection_counts, kind: used + 1})
    state = replace(state, objection_attempts=attempts, objection_counts=counts)
    answers = state.playbook.objections[kind]
    index = min(used, len(answers) - 1)
    template_id = f"objection.{kind}.{index}"
    return _say(state, Template(template_id, answers[index].render(state.values)), event)


def _answers_pending_slot(state: CallState, analysis: Analysis) -> bool:
    """In QUALIFICATION, "my husband decides" answers "who decides?" rather than
    being an objection to handle."""
    return (state.stage is Stage.QUALIFICATION and analysis.objection is not None
            and _ANSWERS_SLOT.get(analysis.objection) == state.pending_slot)


def _ask_next_question(
    state: CallState, analysis: Analysis, now: datetime, event: Event | None
) -> Decision:
    for question in state.playbook.questions:
        if question.slot not in state.slots and question.slot not in state.asked:
            state = replace(state, asked=state.asked | {question.slot},
                            pending_slot=question.slot)
            template = Template(f"qualification.{question.slot}",
                                question.text.render(state.values))
            return _say(state, template, event)
    state = replace(state, pending_slot=None)
    if state.stage is Stage.QUALIFICATION:
        return _event(state, Event.QUALIFIED, analysis, now)
    return _say(state, _stage_template(state, state.stage, "fallback"), event)


def _next_pitch_point(state: CallState, event: Event | None) -> Decision:
    points = state.playbook.templates(Stage.PRESENTATION, "pitch")
    index = state.pitch_index
    if index >= len(points):
        return _say(state, _stage_template(state, Stage.PRESENTATION, "check"), event)
    state = replace(state, pitch_index=index + 1)
    template = Template(f"PRESENTATION.pitch.{index}", points[index].render(state.values))
    return _say(state, template, event)


def _follow_up(state: CallState, analysis: Analysis, now: datetime) -> Decision:
    """FOLLOW_UP_SCHEDULED while waiting for a callback time."""
    at = analysis.slots.get("callback_at")
    if isinstance(at, datetime):
        return _confirm_callback(state, _schedule(state.playbook, at, now), now, None)
    if state.callback_asks >= state.playbook.rules.max_callback_asks:
        return _confirm_callback(state, _default_callback(state.playbook, now), now, None)
    state = replace(state, callback_asks=state.callback_asks + 1)
    return _say(state, _stage_template(state, Stage.FOLLOW_UP_SCHEDULED, "ask_time"))


def _confirm_callback(
    state: CallState, at: datetime, now: datetime, event: Event | None
) -> Decision:
    slots = MappingProxyType({**state.slots, "callback_at": at})
    state = replace(state, callback_at=at, slots=slots)
    values = {**state.values, "callback_time": spoken_time(at, now)}
    confirm = state.playbook.templates(Stage.FOLLOW_UP_SCHEDULED, "confirm")[0]
    return _close(state, Template("FOLLOW_UP_SCHEDULED.confirm", confirm.render(values)), event)


def _schedule(playbook: Playbook, at: datetime, now: datetime) -> datetime:
    rules = playbook.rules
    local = at.astimezone(rules.timezone)
    if local < now or local.time() >= rules.call_end:
        return _default_callback(playbook, local if local >= now else now)
    if local.time() < rules.call_start:
        return local.replace(hour=rules.call_start.hour, minute=rules.call_start.minute,
                             second=0, microsecond=0)
    return local


def _default_callback(playbook: Playbook, after: datetime) -> datetime:
    """The next day at the default callback time (local)."""
    rules = playbook.rules
    day = after.astimezone(rules.timezone).date() + timedelta(days=1)
    return datetime.combine(day, rules.default_callback_time, tzinfo=rules.timezone)


# --- replies -------------------------------------------------------------------------


def _say(state: CallState, template: Template, event: Event | None = None) -> Decision:
    return Decision(record_bot_reply(state, template.text), template, end_call=False,
                    barge_in_allowed=True, event=event)


def _stage_template(state: CallState, stage: Stage, name: str) -> Template:
    return _render(state, f"{stage}.{name}", state.playbook.templates(stage, name)[0])


def _response(state: CallState, name: str) -> Template:
    return _render(state, f"responses.{name}", state.playbook.responses[name])


def _render(state: CallState, template_id: str, text: TemplateText) -> Template:
    return Template(template_id, text.render(state.values))


def _llm(state: CallState, analysis: Analysis, now: datetime, event: Event | None) -> Decision:
    fallback: Template | None = None
    if analysis.intent is Intent.ASK_PRICE:
        fallback = _response(state, "answer_price")
        task = "The caller asked about the price. Answer from the facts, amounts in words."
    elif analysis.intent is Intent.ASK_DETAILS:
        fallback = _response(state, "answer_details")
        task = ("The caller wants details. Give the one most useful detail and offer to "
                "send the rest on WhatsApp.")
    else:
        task = ("Reply to what the caller just said, briefly and honestly, then steer back "
                "to the goal of this stage.")
    pending = state.pending_slot
    if state.stage is Stage.FOLLOW_UP_SCHEDULED:  # waiting for a callback time: ask for it
        fallback = _stage_template(state, state.stage, "ask_time")
        task += f" Then ask again: {fallback.text}"
    elif state.stage is Stage.QUALIFICATION and pending is not None and (
        pending not in state.slots
    ):
        question = next(q for q in state.playbook.questions if q.slot == pending)
        task += f" Then ask again: {question.text.render(state.values)}"
    if fallback is None:
        fallback = _stage_template(state, state.stage, "fallback")
    llm = state.playbook.llm
    messages = build_messages(state.playbook, state.stage, state.values, state.history,
                              state.slots, task, now)
    request = LLMRequest(messages, llm.max_tokens, llm.temperature, fallback.template_id,
                         fallback.text)
    return Decision(state, request, end_call=False, barge_in_allowed=True, event=event)

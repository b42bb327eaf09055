"""decide/opening with hand-built Analysis values: each rule of the engine."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dialogue import (
    LLM_BELOW_CONFIDENCE,
    Analysis,
    CallState,
    Decision,
    Intent,
    LLMRequest,
    Objection,
    Stage,
    Template,
    decide,
    load_playbook,
    new_call_state,
    opening,
    record_bot_reply,
    record_caller,
    trim_bot_message,
    trim_last_bot_message,
)
from dialogue.conduct import dtmf_analysis
from dialogue.engine import within_call_window
from dialogue.prompts import number_in_words, rupees_in_words, spoken_time, trim_history
from dialogue.stages import Event

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 24, 11, 0, tzinfo=IST)
PLAYBOOK = load_playbook()


def at_stage(stage: Stage, **changes: object) -> CallState:
    state = new_call_state(PLAYBOOK, {"name": "Anita"}, NOW)
    return replace(state, stage=stage, path=(stage,), **changes)  # type: ignore[arg-type]


def say(state: CallState, intent: Intent, **fields: object) -> Decision:
    return decide(state, Analysis(intent=intent, confidence=0.9, **fields), NOW)  # type: ignore[arg-type]


def template_id(decision: Decision) -> str:
    assert isinstance(decision.reply, Template)
    return decision.reply.template_id


def test_opening_greets_by_name_and_records_it() -> None:
    decision = opening(new_call_state(PLAYBOOK, {"name": "Anita"}, NOW), NOW)
    assert isinstance(decision.reply, Template)
    assert decision.reply.text.startswith("Namaste, am I speaking with Anita? This is Priya")
    assert decision.state.history == ({"role": "assistant", "content": decision.reply.text},)
    assert not decision.end_call
    assert decision.barge_in_allowed


def test_missing_lead_name_uses_the_playbook_fallback() -> None:
    decision = opening(new_call_state(PLAYBOOK, {}, NOW), NOW)
    assert isinstance(decision.reply, Template)
    assert "speaking with sir?" in decision.reply.text


def test_template_text_is_stable_for_the_same_lead() -> None:
    a = opening(new_call_state(PLAYBOOK, {"name": "Anita"}, NOW), NOW).reply
    b = opening(new_call_state(PLAYBOOK, {"name": "Anita"}, NOW + timedelta(days=3)), NOW).reply
    assert a == b


@pytest.mark.parametrize(
    ("stage", "intent", "expected", "event"),
    [
        (Stage.INTRO, Intent.AFFIRM, Stage.DISCOVERY, Event.ACCEPTED),
        (Stage.INTRO, Intent.NOT_INTERESTED, Stage.ENDED, Event.DECLINED),
        (Stage.DISCOVERY, Intent.OTHER, Stage.QUALIFICATION, Event.NEED_UNDERSTOOD),
        (Stage.PRESENTATION, Intent.INTERESTED, Stage.TRIAL_CLOSE, Event.INTERESTED),
        (Stage.TRIAL_CLOSE, Intent.AFFIRM, Stage.CLOSING, Event.AGREED),
        (Stage.CLOSING, Intent.AFFIRM, Stage.ENDED, Event.AGREED),
        (Stage.CLOSING, Intent.DENY, Stage.FOLLOW_UP_SCHEDULED, Event.POSTPONED),
    ],
)
def test_forward_transitions(stage: Stage, intent: Intent, expected: Stage, event: Event) -> None:
    decision = say(at_stage(stage), intent)
    assert decision.state.stage is expected
    assert decision.event is event


def test_qualification_asks_each_missing_slot_then_presents() -> None:
    state = at_stage(Stage.QUALIFICATION, slots={"need": "high bill"}, asked=frozenset({"need"}))
    asked = []
    for _ in range(3):
        decision = say(state, Intent.OTHER)
        asked.append(template_id(decision))
        state = decision.state
    assert asked == ["qualification.decision_maker", "qualification.budget_inr",
                     "qualification.timeline"]
    decision = say(state, Intent.OTHER, slots={"timeline": "this_month"})
    assert decision.state.stage is Stage.PRESENTATION
    assert template_id(decision) == "PRESENTATION.pitch.0"


def test_known_slots_skip_their_questions() -> None:
    state = at_stage(Stage.DISCOVERY)
    decision = say(state, Intent.OTHER, slots={"need": "bill", "budget_inr": 150000,
                                               "decision_maker": True})
    assert decision.state.stage is Stage.QUALIFICATION
    assert template_id(decision) == "qualification.timeline"


def test_backchannel_while_presenting_continues_without_stage_change() -> None:
    state = at_stage(Stage.PRESENTATION, pitch_index=1)
    ids = []
    for _ in range(3):
        decision = say(state, Intent.BACKCHANNEL)
        assert decision.state.stage is Stage.PRESENTATION
        assert decision.event is None
        ids.append(template_id(decision))
        state = decision.state
    assert ids == ["PRESENTATION.pitch.1", "PRESENTATION.pitch.2", "PRESENTATION.check"]


def test_objection_is_answered_by_template_and_returns_to_interrupted_stage() -> None:
    state = at_stage(Stage.TRIAL_CLOSE)
    decision = say(state, Intent.OBJECTION, objection=Objection.PRICE)
    assert decision.state.stage is Stage.OBJECTION_HANDLING
    assert decision.state.interrupted is Stage.TRIAL_CLOSE
    assert template_id(decision) == "objection.price.0"
    back = say(decision.state, Intent.AFFIRM)
    assert back.state.stage is Stage.TRIAL_CLOSE
    assert back.event is Event.RESOLVED
    assert back.state.interrupted is None
    assert template_id(back) == "TRIAL_CLOSE.question"


def test_question_after_objection_returns_and_asks_the_llm() -> None:
    state = say(at_stage(Stage.CLOSING), Intent.OBJECTION, objection=Objection.TRUST).state
    decision = say(state, Intent.ASK_PRICE)
    assert decision.state.stage is Stage.CLOSING
    assert isinstance(decision.reply, LLMRequest)
    assert decision.reply.template_id_fallback == "responses.answer_price"


@pytest.mark.parametrize("max_attempts", [1, 2, 3])
def test_objection_loop_ends_after_max_attempts(max_attempts: int) -> None:
    rules = replace(PLAYBOOK.rules, max_objection_attempts=max_attempts)
    playbook = replace(PLAYBOOK, rules=rules)
    state = replace(new_call_state(playbook, {"name": "Anita"}, NOW), stage=Stage.DISCOVERY)
    for attempt in range(max_attempts):
        decision = say(state, Intent.OBJECTION, objection=Objection.TIMING)
        assert decision.state.stage is Stage.OBJECTION_HANDLING, attempt
        assert decision.state.objection_attempts == attempt + 1
        state = decision.state
    final = say(state, Intent.DENY)
    assert final.state.stage is Stage.ENDED
    assert final.state.outcome is Stage.DEAD_END
    assert template_id(final) == "DEAD_END.exhausted"
    assert final.end_call
    assert not final.barge_in_allowed


def test_objection_counts_are_per_call_across_stages() -> None:
    state = at_stage(Stage.DISCOVERY, objection_attempts=3)
    decision = say(state, Intent.OBJECTION, objection=Objection.NO_NEED)
    assert decision.state.outcome is Stage.DEAD_END
    assert decision.state.path[-3:] == (Stage.OBJECTION_HANDLING, Stage.DEAD_END, Stage.ENDED)


def test_unclassified_objection_gets_the_generic_answer() -> None:
    decision = say(at_stage(Stage.PRESENTATION), Intent.OBJECTION)
    assert template_id(decision) == "OBJECTION_HANDLING.fallback"


def test_callback_with_time_is_confirmed_and_spoken_naturally() -> None:
    at = datetime(2026, 11, 25, 10, 0, tzinfo=IST)
    decision = say(at_stage(Stage.PRESENTATION), Intent.CALLBACK_REQUEST,
                   slots={"callback_at": at})
    assert decision.state.outcome is Stage.FOLLOW_UP_SCHEDULED
    assert decision.state.stage is Stage.ENDED
    assert decision.end_call
    assert decision.state.callback_at == at
    assert isinstance(decision.reply, Template)
    assert "I'll call you tomorrow at 10 AM." in decision.reply.text


def test_callback_without_time_asks_then_confirms() -> None:
    asking = say(at_stage(Stage.DISCOVERY), Intent.CALLBACK_REQUEST)
    assert asking.state.stage is Stage.FOLLOW_UP_SCHEDULED
    assert not asking.end_call
    assert template_id(asking) == "FOLLOW_UP_SCHEDULED.ask_time"
    at = datetime(2026, 11, 24, 16, 30, tzinfo=IST)
    done = say(asking.state, Intent.CALLBACK_REQUEST, slots={"callback_at": at})
    assert done.state.callback_at == at
    assert done.end_call
    assert isinstance(done.reply, Template)
    assert "today at 4:30 PM" in done.reply.text


def test_busy_offers_a_callback() -> None:
    decision = say(at_stage(Stage.QUALIFICATION), Intent.BUSY)
    assert template_id(decision) == "FOLLOW_UP_SCHEDULED.offer"


@pytest.mark.parametrize(
    ("asked", "scheduled"),
    [
        (datetime(2026, 11, 25, 7, 0, tzinfo=IST), datetime(2026, 11, 25, 9, 0, tzinfo=IST)),
        (datetime(2026, 11, 24, 22, 0, tzinfo=IST), datetime(2026, 11, 25, 10, 0, tzinfo=IST)),
        (datetime(2026, 11, 24, 9, 0, tzinfo=IST), datetime(2026, 11, 25, 10, 0, tzinfo=IST)),
        (datetime(2026, 11, 24, 14, 0, tzinfo=ZoneInfo("UTC")),
         datetime(2026, 11, 24, 19, 30, tzinfo=IST)),
    ],
)
def test_callback_times_are_kept_inside_calling_hours(asked: datetime, scheduled: datetime) -> None:
    decision = say(at_stage(Stage.INTRO), Intent.CALLBACK_REQUEST, slots={"callback_at": asked})
    assert decision.state.callback_at == scheduled


def test_dnd_sets_the_flag_and_is_not_interruptible() -> None:
    decision = say(at_stage(Stage.CLOSING), Intent.DO_NOT_CALL)
    assert decision.state.do_not_call is True
    assert decision.state.outcome is Stage.DEAD_END
    assert template_id(decision) == "DEAD_END.do_not_call"
    assert decision.end_call
    assert not decision.barge_in_allowed


def test_wrong_person_ends_without_dnd_flag() -> None:
    decision = say(at_stage(Stage.INTRO), Intent.WRONG_PERSON)
    assert decision.state.outcome is Stage.DEAD_END
    assert not decision.state.do_not_call
    assert template_id(decision) == "DEAD_END.wrong_person"


def test_decline_gets_one_rebuttal_then_ends() -> None:
    first = say(at_stage(Stage.PRESENTATION), Intent.NOT_INTERESTED)
    assert first.state.stage is Stage.PRESENTATION
    assert template_id(first) == "responses.decline_rebuttal"
    second = say(first.state, Intent.NOT_INTERESTED)
    assert second.state.outcome is Stage.DEAD_END
    assert second.end_call


def test_ended_is_absorbing() -> None:
    ended = say(at_stage(Stage.INTRO), Intent.DO_NOT_CALL).state
    for intent in Intent:
        decision = say(ended, intent)
        assert decision.state is ended
        assert decision.reply == Template("ENDED.silence", "")
        assert decision.end_call


def test_questions_become_llm_requests_with_facts_slots_and_history() -> None:
    state = at_stage(Stage.QUALIFICATION, slots={"budget_inr": 250000},
                     pending_slot="timeline", asked=frozenset({"timeline"}))
    state = record_bot_reply(state, "When would you like it installed?")
    state = record_caller(state, "does it work in the monsoon?")
    decision = say(state, Intent.QUESTION)
    request = decision.reply
    assert isinstance(request, LLMRequest)
    assert decision.state.stage is Stage.QUALIFICATION
    text = "\n".join(m["content"] for m in request.messages)
    assert request.messages[0]["role"] == "system"
    assert "one or two short sentences" in text
    assert "No markdown" in text
    assert PLAYBOOK.product.facts[0] in text
    assert "budget: two lakh fifty thousand rupees" in text
    assert request.messages[-2] == {"role": "user", "content": "does it work in the monsoon?"}
    assert "Then ask again: And when would you like it installed" in text
    assert request.max_tokens == PLAYBOOK.llm.max_tokens
    assert request.fallback_text == PLAYBOOK.templates(Stage.QUALIFICATION, "fallback")[0].source


def test_llm_history_is_trimmed_to_the_playbook_bound() -> None:
    state = at_stage(Stage.PRESENTATION)
    for n in range(40):
        state = record_caller(state, f"caller line {n}")
        state = record_bot_reply(state, f"bot line {n}")
    state = record_caller(state, "last question?")
    request = say(state, Intent.QUESTION).reply
    assert isinstance(request, LLMRequest)
    history = [m for m in request.messages if m["role"] != "system"]
    assert len(history) == PLAYBOOK.llm.max_history_messages
    assert history[-1]["content"] == "last question?"
    assert "caller line 0" not in [m["content"] for m in history]


def test_barge_in_trims_the_last_bot_message_to_what_was_heard() -> None:
    state = opening(new_call_state(PLAYBOOK, {"name": "Anita"}, NOW), NOW).state
    trimmed = trim_last_bot_message(state, "Namaste, am I speaking with")
    assert trimmed.history[-1] == {"role": "assistant", "content": "Namaste, am I speaking with"}
    assert state.with_heard("").history == ()
    caller_last = record_caller(state, "haan")
    assert trim_last_bot_message(caller_last, "x") is caller_last


def test_a_cut_reply_is_trimmed_in_its_own_place_in_the_history() -> None:
    state = opening(new_call_state(PLAYBOOK, {"name": "Anita"}, NOW), NOW).state
    [greeting] = state.history
    later = record_bot_reply(record_caller(state, "haan"), "Thank you!")
    trimmed = trim_bot_message(later, greeting, "Namaste, am I speaking with")
    assert trimmed.history == (
        {"role": "assistant", "content": "Namaste, am I speaking with"},
        {"role": "user", "content": "haan"}, {"role": "assistant", "content": "Thank you!"})
    # Nothing heard: the message goes; the later ones stay.
    assert trim_bot_message(later, greeting, "").history == later.history[1:]
    # Heard whole, or already trimmed (not there by identity): unchanged.
    assert trim_bot_message(later, greeting, greeting["content"]) is later
    assert trim_bot_message(trimmed, greeting, "") is trimmed


def test_state_snapshot_is_plain_data() -> None:
    at = datetime(2026, 11, 25, 10, 0, tzinfo=IST)
    state = say(at_stage(Stage.INTRO), Intent.CALLBACK_REQUEST, slots={"callback_at": at}).state
    snap = state.snapshot()
    assert snap["stage"] == "ENDED"
    assert snap["outcome"] == "FOLLOW_UP_SCHEDULED"
    assert snap["callback_at"] == "2026-11-25T10:00:00+05:30"
    assert snap["slots"] == {"callback_at": "2026-11-25T10:00:00+05:30"}


def test_call_window() -> None:
    assert within_call_window(PLAYBOOK, NOW)
    assert not within_call_window(PLAYBOOK, datetime(2026, 11, 24, 21, 0, tzinfo=IST))
    assert not within_call_window(PLAYBOOK, datetime(2026, 11, 24, 3, 0, tzinfo=ZoneInfo("UTC")))


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (0, "zero"), (45, "forty-five"), (100, "one hundred"),
        (120000, "one lakh twenty thousand"), (500000, "five lakh"),
        (25000000, "two crore fifty lakh"), (290001, "two lakh ninety thousand one"),
    ],
)
def test_numbers_in_words_use_indian_grouping(amount: int, words: str) -> None:
    assert number_in_words(amount) == words
    assert rupees_in_words(amount) == f"{words} rupees"


@pytest.mark.parametrize(
    ("at", "spoken"),
    [
        (datetime(2026, 11, 24, 18, 0, tzinfo=IST), "today at 6 PM"),
        (datetime(2026, 11, 25, 10, 30, tzinfo=IST), "tomorrow at 10:30 AM"),
        (datetime(2026, 11, 26, 12, 0, tzinfo=IST), "day after tomorrow at 12 PM"),
        (datetime(2026, 11, 28, 11, 0, tzinfo=IST), "on Saturday at 11 AM"),
        (datetime(2026, 12, 3, 11, 0, tzinfo=IST), "on 3 December at 11 AM"),
    ],
)
def test_spoken_time(at: datetime, spoken: str) -> None:
    assert spoken_time(at, NOW) == spoken


def test_trim_history_keeps_the_newest_within_chars() -> None:
    history = [{"role": "user", "content": "x" * 50} for _ in range(10)]
    assert len(trim_history(history, 100, 120)) == 2
    assert len(trim_history(history, 3, 10_000)) == 3
    assert trim_history([{"role": "user", "content": "y" * 500}], 5, 10) == [
        {"role": "user", "content": "y" * 500}
    ]


def test_unreadable_answer_goes_to_the_llm_once_then_moves_on() -> None:
    state = at_stage(Stage.DISCOVERY)
    first = decide(state, Analysis(Intent.OTHER, confidence=0.4), NOW)
    assert isinstance(first.reply, LLMRequest)
    assert first.state.stage is Stage.DISCOVERY
    second = decide(first.state, Analysis(Intent.OTHER, confidence=0.4), NOW)
    assert second.state.stage is Stage.QUALIFICATION
    assert second.state.unclear_turns == 0
    readable = decide(state, Analysis(Intent.OTHER, confidence=0.7, slots={"need": "bill"}), NOW)
    assert readable.state.stage is Stage.QUALIFICATION


# --- with an LLM configured, an unsure turn is answered by it -----------------------

UNSURE = LLM_BELOW_CONFIDENCE - 0.1


def _unsure(state: CallState, text: str, intent: Intent, **fields: object) -> Decision:
    state = record_caller(state, text)
    analysis = Analysis(intent=intent, confidence=UNSURE, **fields)  # type: ignore[arg-type]
    return decide(state, analysis, NOW)


def _with_llm(stage: Stage, **changes: object) -> CallState:
    return replace(at_stage(stage, **changes), llm=True)


#: Per live stage, a reading that, acted on, moves the call, and where to.
ACTED_ON = [
    (Stage.INTRO, {}, Intent.WRONG_PERSON, Stage.ENDED),
    (Stage.DISCOVERY, {}, Intent.AFFIRM, Stage.QUALIFICATION),
    (Stage.QUALIFICATION, {"pending_slot": "budget_inr"}, Intent.BUSY,
     Stage.FOLLOW_UP_SCHEDULED),
    (Stage.PRESENTATION, {}, Intent.INTERESTED, Stage.TRIAL_CLOSE),
    (Stage.OBJECTION_HANDLING, {"interrupted": Stage.PRESENTATION,
                                "objection": Objection.PRICE}, Intent.AFFIRM,
     Stage.PRESENTATION),
    (Stage.TRIAL_CLOSE, {}, Intent.AFFIRM, Stage.CLOSING),
    (Stage.CLOSING, {}, Intent.AFFIRM, Stage.ENDED),
    (Stage.FOLLOW_UP_SCHEDULED, {"callback_asks": 1}, Intent.NOT_INTERESTED, Stage.ENDED),
]


@pytest.mark.parametrize(("stage", "changes", "intent", "acted"), ACTED_ON,
                         ids=[case[0].value for case in ACTED_ON])
def test_an_unsure_turn_is_answered_by_the_llm_in_the_same_stage(
    stage: Stage, changes: dict[str, object], intent: Intent, acted: Stage,
) -> None:
    words = "hmm, shayad, dekhte hain"
    decision = _unsure(_with_llm(stage, **changes), words, intent)
    request = decision.reply
    assert isinstance(request, LLMRequest)
    assert request.messages[-2] == {"role": "user", "content": words}  # the caller's words
    assert decision.state.stage is stage  # the unsure reading is not acted on
    assert decision.event is None
    assert not decision.end_call
    # Its fallback is a line of the stage (said if the LLM fails).
    assert request.template_id_fallback.split(".")[0] == stage.value
    # Without an LLM the same reading is acted on as read.
    assert _unsure(at_stage(stage, **changes), words, intent).state.stage is acted
    # A sure reading is acted on with the LLM configured too.
    sure = decide(record_caller(_with_llm(stage, **changes), words),
                  Analysis(intent=intent, confidence=LLM_BELOW_CONFIDENCE), NOW)
    assert sure.state.stage is acted


def test_a_second_unsure_turn_in_a_row_is_acted_on_and_a_sure_one_starts_over() -> None:
    state = _with_llm(Stage.PRESENTATION)
    first = _unsure(state, "kal dekhte hain", Intent.OBJECTION, objection=Objection.TIMING)
    assert isinstance(first.reply, LLMRequest)
    assert first.state.objection_counts == {}
    again = _unsure(record_bot_reply(first.state, "No rush at all."), "kal pakka dekhenge",
                    Intent.OBJECTION, objection=Objection.TIMING)
    assert again.state.stage is Stage.OBJECTION_HANDLING  # acted on: no loop
    assert template_id(again) == "objection.timing.0"
    sure = say(first.state, Intent.BACKCHANNEL)
    assert sure.state.unclear_turns == 0
    assert isinstance(_unsure(sure.state, "hmm par", Intent.DENY).reply, LLMRequest)


def test_a_new_stage_starts_the_count_over() -> None:
    state = _with_llm(Stage.TRIAL_CLOSE)
    first = _unsure(state, "haan kar do", Intent.INTERESTED)
    acted = _unsure(first.state, "haan kar do", Intent.INTERESTED)
    assert acted.state.stage is Stage.CLOSING
    assert acted.state.unclear_turns == 0
    assert isinstance(_unsure(acted.state, "haan kar do", Intent.AFFIRM).reply, LLMRequest)


def test_an_unsure_do_not_call_is_still_honoured() -> None:
    decision = _unsure(_with_llm(Stage.PRESENTATION), "mat karo call", Intent.DO_NOT_CALL)
    assert decision.state.do_not_call
    assert decision.state.outcome is Stage.DEAD_END
    assert template_id(decision) == "DEAD_END.do_not_call"


@pytest.mark.parametrize("digit", sorted(PLAYBOOK.conduct.dtmf))
def test_key_presses_are_never_sent_to_the_llm(digit: str) -> None:
    analysis = dtmf_analysis(digit, PLAYBOOK.conduct)
    assert analysis is not None
    assert analysis.confidence >= LLM_BELOW_CONFIDENCE
    state = record_caller(_with_llm(Stage.PRESENTATION), f"dtmf:{digit}")
    assert isinstance(decide(state, analysis, NOW).reply, Template)


def test_slots_read_from_an_unsure_turn_are_kept_and_not_asked_again() -> None:
    state = _with_llm(Stage.QUALIFICATION, pending_slot="budget_inr",
                      asked=frozenset({"need", "decision_maker", "budget_inr"}))
    budget = "Do you have a budget in mind"
    read = _unsure(state, "around two lakh maybe", Intent.OTHER, slots={"budget_inr": 200000})
    assert isinstance(read.reply, LLMRequest)
    assert read.state.slots["budget_inr"] == 200000
    instruction = read.reply.messages[-1]["content"]
    assert "budget: two lakh rupees" in instruction
    assert budget not in instruction
    unread = _unsure(state, "hmm something like a scooter maybe", Intent.OTHER)
    assert isinstance(unread.reply, LLMRequest)
    assert f"Then ask again: {budget}" in unread.reply.messages[-1]["content"]


def test_waiting_for_a_callback_time_the_llm_asks_again_and_it_counts_as_an_ask() -> None:
    state = _with_llm(Stage.FOLLOW_UP_SCHEDULED, callback_asks=1)
    first = _unsure(state, "pata nahi", Intent.OTHER)
    request = first.reply
    assert isinstance(request, LLMRequest)
    assert request.template_id_fallback == "FOLLOW_UP_SCHEDULED.ask_time"
    assert request.messages[-1]["content"].endswith(f"Then ask again: {request.fallback_text}")
    assert first.state.callback_asks == 2
    # The asks are used up: the next turn gets the default time, unsure or not.
    default = _unsure(first.state, "dekhte hain", Intent.CALLBACK_REQUEST)
    assert template_id(default) == "FOLLOW_UP_SCHEDULED.confirm"
    assert default.state.callback_at == datetime(2026, 11, 25, 10, 0, tzinfo=IST)
    assert _unsure(say(state, Intent.AFFIRM).state, "pata nahi", Intent.OTHER).state.stage \
        is Stage.ENDED  # after the last ask (2 of 2), even a first unsure turn


def test_waiting_for_a_callback_time_an_unsure_turn_naming_one_is_confirmed() -> None:
    at = datetime(2026, 11, 25, 18, 0, tzinfo=IST)
    decision = _unsure(_with_llm(Stage.FOLLOW_UP_SCHEDULED, callback_asks=1),
                       "maybe tomorrow evening", Intent.CALLBACK_REQUEST,
                       slots={"callback_at": at})
    assert template_id(decision) == "FOLLOW_UP_SCHEDULED.confirm"
    assert decision.state.callback_at == at

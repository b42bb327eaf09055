"""Intent precedence, the stage rule for acknowledgements, and the soft fields."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogue import LLM_BELOW_CONFIDENCE, analyze
from dialogue.model import Intent, Objection, Stage

NOW = datetime(2026, 11, 24, 15, 30, tzinfo=ZoneInfo("Asia/Kolkata"))


@pytest.mark.parametrize("text", ["hmm", "haan haan", "ok ok", "achha", "ji", "theek hai",
                                  "haan, aage bolo", "Hmm hmm...", "haan ji boliye"])
def test_acknowledgement_is_backchannel_only_while_presenting(text: str) -> None:
    assert analyze(text, Stage.PRESENTATION).intent is Intent.BACKCHANNEL
    assert analyze(text, Stage.QUALIFICATION).intent is Intent.AFFIRM
    assert analyze(text, Stage.TRIAL_CLOSE).intent is Intent.AFFIRM
    assert analyze(text, None).intent is Intent.AFFIRM


def test_acknowledgement_with_content_is_not_backchannel() -> None:
    got = analyze("haan but kitna hai", Stage.PRESENTATION)
    assert got.intent is Intent.ASK_PRICE


@pytest.mark.parametrize(
    ("text", "intent", "objection"),
    [
        # do_not_call wins over a decline in the same turn
        ("not interested and stop calling me", Intent.DO_NOT_CALL, None),
        ("nahi chahiye aur dubara phone mat karna", Intent.DO_NOT_CALL, None),
        # a callback request wins over busy
        ("abhi busy hoon baad mein call karo", Intent.CALLBACK_REQUEST, None),
        ("abhi busy hoon", Intent.BUSY, None),
        # a decline with a reason is an objection, without one not_interested
        ("not interested, too expensive", Intent.OBJECTION, Objection.PRICE),
        ("not interested", Intent.NOT_INTERESTED, None),
        ("koi zaroorat nahi hai", Intent.OBJECTION, Objection.NO_NEED),
        # questions: distrust is an objection, curiosity a question
        ("are you a robot", Intent.QUESTION, None),
        ("is this a fraud call", Intent.OBJECTION, Objection.TRUST),
        ("how did you get my number", Intent.QUESTION, None),
        # interest that asks is an ask
        ("ok interested but what is the pricing", Intent.ASK_PRICE, None),
        ("brochure bhej do", Intent.ASK_DETAILS, None),
        ("yes let's do it", Intent.INTERESTED, None),
        ("we already use zoho", Intent.OBJECTION, Objection.COMPETITOR),
        ("boss se poochna padega", Intent.OBJECTION, Objection.AUTHORITY),
        ("abhi nahi, next year dekhenge", Intent.OBJECTION, Objection.TIMING),
        ("wrong number", Intent.WRONG_PERSON, None),
        ("hello", Intent.GREETING, None),
        ("Namaste ji!", Intent.GREETING, None),
        ("hello aawaz nahi aa rahi", Intent.OTHER, None),
        ("hindi mein baat karo", Intent.OTHER, None),
        ("no not yet", Intent.DENY, None),
        ("haan but budget kam hai", Intent.OBJECTION, Objection.PRICE),
        ("I'll think about it", Intent.OBJECTION, Objection.TIMING),
        ("can you speak in hindi", Intent.OTHER, None),
        ("", Intent.OTHER, None),
    ],
)
def test_precedence(text: str, intent: Intent, objection: Objection | None) -> None:
    got = analyze(text, None, NOW)
    assert (got.intent, got.objection) == (intent, objection)


def test_case_and_punctuation_do_not_matter() -> None:
    noisy = analyze("abhi busy hoon kal call karna", None, NOW)
    clean = analyze("Abhi busy hoon. Kal call karna!", None, NOW)
    assert noisy == clean


@pytest.mark.parametrize(
    ("text", "decides"),
    [
        ("i am the owner i take all decisions", True),
        ("main hi decide karta hoon", True),
        ("final decision mera hi hota hai", True),
        ("boss se poochna padega", False),
        ("my wife decides these things", False),
        ("i'm not the decision maker", False),
        ("we have 50 employees", None),
        # the caller decides, in many shapes
        ("i'm the person who signs off on vendors", True),
        ("being the ceo i approve the tools", True),
        ("main khud hi faisla karti hoon", True),
        ("paisa mera hai, faisla bhi mera", True),
        ("is baare mein faisla main hi lunga", True),
        ("mujhe kisi se puchne ki zarurat nahi", True),
        ("i don't need to check with anybody", True),
        ("the call is mine", True),
        # someone else decides or must be asked
        ("mummy se poochke batati hoon", False),
        ("ghar walon se baat karni padegi", False),
        ("no, my uncle takes those decisions", False),
        ("i can't sign without my co-founder", False),
        ("my father's approval is needed", False),
        ("that's my boss's call", False),
        ("partner ki permission ke bina nahi", False),
        ("wife se baat karke decide karunga", False),  # consults: not alone
        ("kal call karna, tab tak papa se pooch lunga", False),
    ],
)
def test_decision_maker_only_when_stated(text: str, decides: bool | None) -> None:
    assert analyze(text, Stage.QUALIFICATION).slots.get("decision_maker") == decides


@pytest.mark.parametrize(
    ("text", "stage", "intent", "objection"),
    [
        # claiming the decision is a fact, not an authority or no-need objection
        ("i don't need to ask anyone, i decide", Stage.QUALIFICATION, Intent.OTHER, None),
        ("as md i approve purchases myself", Stage.QUALIFICATION, Intent.OTHER, None),
        ("mere bhaiya ki haan chahiye", Stage.TRIAL_CLOSE, Intent.OBJECTION, Objection.AUTHORITY),
        ("the owner decides, i only work here", Stage.PRESENTATION, Intent.OBJECTION,
         Objection.AUTHORITY),
        # a budget ceiling said to a price is a price objection; asked for, a fact
        ("our budget is only 80k", Stage.PRESENTATION, Intent.OBJECTION, Objection.PRICE),
        ("our budget is only 80k", Stage.QUALIFICATION, Intent.OTHER, None),
        ("do lakh se zyada nahi", Stage.QUALIFICATION, Intent.OTHER, None),
        ("ten thousand a month emi we can afford", Stage.QUALIFICATION, Intent.OTHER, None),
        # a timing objection answering "when?" is a timeline fact
        ("abhi koi plan nahi hai lene ka", Stage.QUALIFICATION, Intent.OTHER, None),
        ("abhi koi plan nahi hai lene ka", Stage.TRIAL_CLOSE, Intent.OBJECTION, Objection.TIMING),
        ("what's the emi after the down payment", Stage.PRESENTATION, Intent.ASK_PRICE, None),
        # objection types in other words
        ("sounds fishy to me", Stage.PRESENTATION, Intent.OBJECTION, Objection.TRUST),
        ("premium to high for me", Stage.PRESENTATION, Intent.OBJECTION, Objection.PRICE),
        ("we got our app built by another agency", Stage.PRESENTATION, Intent.OBJECTION,
         Objection.COMPETITOR),
        ("we are happy with our existing broker", Stage.PRESENTATION, Intent.OBJECTION,
         Objection.COMPETITOR),
        ("do teen mahine baad dekhenge", Stage.PRESENTATION, Intent.OBJECTION, Objection.TIMING),
        ("a crm is pointless for a two man shop", Stage.PRESENTATION, Intent.OBJECTION,
         Objection.NO_NEED),
        # CLOSING reads back details: yes/no confirms or corrects them
        ("yes same phone number", Stage.CLOSING, Intent.AFFIRM, None),
        ("no, the pin code is different", Stage.CLOSING, Intent.DENY, None),
        ("yes please book it", Stage.CLOSING, Intent.INTERESTED, None),
    ],
)
def test_slot_aware_readings(
    text: str, stage: Stage, intent: Intent, objection: Objection | None
) -> None:
    got = analyze(text, stage)
    assert (got.intent, got.objection) == (intent, objection)


def test_sentiment_and_signals() -> None:
    warm = analyze("this sounds great, let's go ahead", Stage.TRIAL_CLOSE)
    cold = analyze("this is a scam, stop calling me", Stage.PRESENTATION)
    assert warm.sentiment > 0.5 > -0.5 > cold.sentiment
    assert "ready_to_buy" in warm.buying_signals
    assert cold.buying_signals == ()
    price = analyze("emi kitna padega", Stage.PRESENTATION)
    assert "asked_price" in price.buying_signals


def test_need_is_a_short_phrase() -> None:
    got = analyze("we need a crm for our sales team of twenty people", Stage.DISCOVERY)
    assert got.slots["need"] == "a crm for our sales team"
    assert "need" not in analyze("i need to check with my manager").slots


def test_unrecognised_turn_has_low_confidence() -> None:
    unknown = analyze("the mango trees are flowering early", Stage.DISCOVERY)
    assert unknown.intent is Intent.OTHER
    assert unknown.confidence < LLM_BELOW_CONFIDENCE
    assert analyze("dont call me again").confidence >= 0.9


@given(st.text(max_size=200))
def test_any_text_gives_a_well_formed_analysis(text: str) -> None:
    got = analyze(text, None, NOW)
    assert -1.0 <= got.sentiment <= 1.0
    assert 0.0 <= got.confidence <= 1.0
    assert set(got.slots) <= {"budget_inr", "timeline", "callback_at", "decision_maker", "need"}
    assert (got.objection is not None) == (got.intent is Intent.OBJECTION)
    budget = got.slots.get("budget_inr")
    assert budget is None or (isinstance(budget, int) and budget > 0)


def test_hedges_are_left_to_the_llm() -> None:
    """No rule reads a hedge; whatever the classifier makes of it, it is unsure."""
    for text in ["I'm not sure", "pata nahi", "maybe", "is it safe"]:
        got = analyze(text, Stage.TRIAL_CLOSE, NOW)
        assert got.confidence < LLM_BELOW_CONFIDENCE, text


def test_a_turn_that_only_hedges_is_other_and_goes_to_the_llm() -> None:
    for stage in (Stage.FOLLOW_UP_SCHEDULED, Stage.QUALIFICATION, None):
        for text in ("pata nahi abhi", "not sure yet", "i dont know sir"):
            got = analyze(text, stage, NOW)
            assert got.intent is Intent.OTHER, (text, stage)
            assert got.confidence < LLM_BELOW_CONFIDENCE, (text, stage)


@pytest.mark.parametrize(
    "text", ["we run a small bakery in Indore", "hum log steel ka kaam karte hain",
             "my husband and I are both doctors", "hamara showroom highway pe hai"],
)
def test_a_first_person_statement_answers_an_open_question(text: str) -> None:
    for stage in (Stage.DISCOVERY, Stage.QUALIFICATION):
        got = analyze(text, stage, NOW)
        assert got.intent is Intent.OTHER
        assert got.confidence >= LLM_BELOW_CONFIDENCE, (text, stage)


def test_a_time_answers_the_callback_question_only_in_follow_up() -> None:
    answer = "theek hai kal subah das baje"
    got = analyze(answer, Stage.FOLLOW_UP_SCHEDULED, NOW)
    assert got.intent is Intent.CALLBACK_REQUEST
    assert got.slots["callback_at"] == datetime(2026, 11, 25, 10, 0, tzinfo=NOW.tzinfo)
    elsewhere = analyze(answer, Stage.QUALIFICATION, NOW)
    assert elsewhere.intent is Intent.AFFIRM
    assert "callback_at" not in elsewhere.slots
    assert analyze("haan", Stage.FOLLOW_UP_SCHEDULED, NOW).intent is Intent.AFFIRM

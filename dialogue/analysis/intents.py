"""Intent and objection rules over the ``plain`` normal form.

The label conventions are ../shared/LABELS.md's. The phrase tables live in
``phrases``. When a turn carries several signals, the first family in this
order wins — the one the engine must act on:

1. ``do_not_call`` (stop calling, remove my number, DND; wins over everything)
2. ``wrong_person`` (wrong number, a relative or driver, "he left this company")
3. ``callback_request`` (asks to be called later, with or without a time)
4. ``busy`` (cannot talk now: driving, a meeting, a function; no callback asked)
5. a turn made only of acknowledgement words (see ``classify_ack``)
6. in INTRO, DISCOVERY and QUALIFICATION — the bot has just asked something —
   a turn opening with yes/no that asks nothing back answers it: ``affirm`` /
   ``deny`` whatever content follows ("nahi, decision papa lete hain", "no, one
   lakh is too much, ninety thousand at most"); a "no" opening a plain decline
   is ``not_interested``, and "no need…" stays a ``no_need`` objection (in INTRO
   only yes-answers are read this way)
7. ``objection`` with its reason, in order authority, trust, competitor,
   price, no_need, timing ("not interested, too costly" is a price objection);
   phrases where the caller claims the decision (``phrases.DECIDER``: "kisi se
   poochne ki zaroorat nahi, main hi decide karunga") are blanked first, so
   their "poochne" or "zaroorat nahi" is no objection; a turn opening with a
   question word is never a timing objection ("what's the price after the
   subsidy")
8. ``not_interested`` (declines with no reason); then, in CLOSING, where the bot
   reads back details, a yes/no opening that asks nothing and commits to nothing
   new confirms or corrects them: ``affirm`` / ``deny``
9. ``question`` about the call itself (recorded? a robot? which company? who
   gave you my number?)
10. committed interest ("let's do it", "book kar do", "le lenge") — unless the
    turn also asks the price (a question wins over interest), or, in
    QUALIFICATION, states a timeline ("we want it next month" answers "when?")
11. ``ask_price`` then ``ask_details`` (product questions: features, coverage,
    documents, possession, warranty…)
12. ``interested`` (plain liking; "lena hai" with a buying timeline is instead a
    fact answering "when?", so ``other``)
13. ``question`` (other questions about the caller or the company)
14. ``other`` for line trouble, hold-ons and language requests
15. ``question`` with low confidence for any turn opening with a question word
    ("is it safe", "kab tak"); ``other`` for a turn that only hedges ("not sure
    yet", "pata nahi", "maybe"), low confidence for a hedge with more in it; both
    go to the LLM (``reading`` caps their confidence); ``other`` for thanks/goodbye
16. ``greeting`` (the whole turn is an opener: hello, namaste, ram ram)
17. yes/no/acknowledgement openings (see ``classify_ack``)
18. ``other`` for a first-person statement in DISCOVERY or QUALIFICATION ("we run
    two clinics in Nagpur", "main ek boutique chalati hoon"): a plain fact
    answering the bot's open question
19. ``other`` with low confidence (``UNREAD``): nothing recognised (``reading``
    raises it when the turn states a fact the slots hold: an amount, a timeline,
    who decides).

A rule reading below ``confidence.RULE_TRUSTED`` is left to the classifier.

Acknowledgements: a turn made only of acknowledgement words ("hmm", "haan
haan", "ok ok", "achha", "ji", "theek hai", "haan aage bolo") is
``backchannel`` when ``stage`` is PRESENTATION — the bot is presenting and the
caller is only listening. In every other stage, and when the stage is unknown
(None), the same words answer the bot's question and are ``affirm``.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from dialogue.analysis import phrases
from dialogue.model import Intent, Objection, Stage

__all__ = ["UNREAD", "IntentMatch", "classify"]


class IntentMatch(NamedTuple):
    """The winning rule: intent, objection type, and how sure the rule is.

    ``hedge``: the turn only hedges ("pata nahi", "not sure yet"): its intent is
    ``other``, but it is worth the LLM's reading whatever the scores say.
    """

    intent: Intent
    objection: Objection | None
    confidence: float
    hedge: bool = False


def _all_in(words: list[str], vocabulary: frozenset[str]) -> bool:
    return bool(words) and all(word in vocabulary for word in words)


def _made_of(words: list[str], vocabulary: frozenset[str], core: frozenset[str]) -> bool:
    """Every word from ``vocabulary`` and at least one from ``core``."""
    return _all_in(words, vocabulary) and any(word in core for word in words)


def classify_ack(plain: str, stage: Stage | None) -> IntentMatch | None:
    """Yes/no/acknowledgement turns (see the module docstring), else None."""
    if phrases.DENY_START.search(plain):
        return IntentMatch(Intent.DENY, None, 0.85)
    words = phrases.FILLERS.sub(" ", plain).split()
    if _all_in(words, phrases.ACK_WORDS):
        if stage is Stage.PRESENTATION:
            return IntentMatch(Intent.BACKCHANNEL, None, 0.85)
        return IntentMatch(Intent.AFFIRM, None, 0.85)
    if phrases.AFFIRM.search(plain):
        return IntentMatch(Intent.AFFIRM, None, 0.7)
    return None


# Stages where the bot has just asked the caller something: a turn opening with
# yes/no answers it, whatever content follows ("nahi, decision papa lete hain").
_ANSWER_STAGES: Final = frozenset({Stage.INTRO, Stage.DISCOVERY, Stage.QUALIFICATION})
_DENY_STAGES: Final = frozenset({Stage.DISCOVERY, Stage.QUALIFICATION})
# Stages where the bot has asked an open question: a first-person statement answers it.
_FACT_STAGES: Final = frozenset({Stage.DISCOVERY, Stage.QUALIFICATION})
#: The rule confidence of a turn no rule read: a hedge, or nothing recognised.
UNREAD: Final = 0.4
_HEDGE: Final = IntentMatch(Intent.OTHER, None, 0.8, hedge=True)


def _answer(plain: str, stage: Stage | None) -> IntentMatch | None:
    """A yes/no answer that carries content, in an answering stage, or None."""
    if phrases.DENY_START.search(plain):
        if stage not in _DENY_STAGES or phrases.NO_NEED.search(plain):
            return None
        if phrases.NOT_INTERESTED.search(plain):
            return IntentMatch(Intent.NOT_INTERESTED, None, 0.85)
        return IntentMatch(Intent.DENY, None, 0.8)
    if phrases.AFFIRM.search(plain):
        return IntentMatch(Intent.AFFIRM, None, 0.75)
    return None


def _confirmation(plain: str) -> IntentMatch | None:
    """In CLOSING the bot reads back details (address, email, a slot): a yes or no
    opening that commits to nothing new answers it ("yes that's the right email",
    "nahi ye email purana hai"), or None."""
    if phrases.DENY_START.search(plain):
        return IntentMatch(Intent.DENY, None, 0.8)
    if phrases.AFFIRM.search(plain) and not phrases.COMMITTED.search(plain):
        return IntentMatch(Intent.AFFIRM, None, 0.75)
    return None


def classify(plain: str, stage: Stage | None, *, has_timeline: bool) -> IntentMatch:
    """The intent of one turn (precedence in the module docstring).

    ``has_timeline``: the turn states a buying timeline, which makes "lena hai"
    a fact answering "when?" rather than plain interest.
    """
    if not plain:
        return IntentMatch(Intent.OTHER, None, 0.2)
    if phrases.DO_NOT_CALL.search(plain):
        return IntentMatch(Intent.DO_NOT_CALL, None, 0.95)
    if phrases.WRONG_PERSON.search(plain):
        return IntentMatch(Intent.WRONG_PERSON, None, 0.9)
    if phrases.CALLBACK.search(plain):
        return IntentMatch(Intent.CALLBACK_REQUEST, None, 0.9)
    if phrases.BUSY.search(plain):
        return IntentMatch(Intent.BUSY, None, 0.9)
    words = plain.split()
    if _all_in(phrases.FILLERS.sub(" ", plain).split(), phrases.ACK_WORDS):
        ack = classify_ack(plain, stage)
        if ack is not None:
            return ack
    greets = _made_of(words, phrases.GREETING_WORDS, phrases.GREETING_CORE)
    if stage in _ANSWER_STAGES and not greets and not phrases.ASKS.search(plain):
        answer = _answer(plain, stage)
        if answer is not None:
            return answer
    # "kisi se poochne ki zaroorat nahi, main hi decide karunga" claims authority:
    # its "poochne"/"zaroorat nahi" are not an objection.
    unclaimed = phrases.DECIDER.sub(" ", plain)
    asking = phrases.QUESTION_START.search(plain) is not None
    for objection, pattern in phrases.OBJECTIONS:
        # "what's the price after the subsidy" asks; it is no timing objection.
        if objection is Objection.TIMING and asking:
            continue
        if pattern.search(unclaimed):
            return IntentMatch(Intent.OBJECTION, objection, 0.85)
    if phrases.NOT_INTERESTED.search(plain):
        return IntentMatch(Intent.NOT_INTERESTED, None, 0.9)
    if stage is Stage.CLOSING and not greets and not phrases.ASKS.search(plain):
        confirmed = _confirmation(plain)
        if confirmed is not None:
            return confirmed
    if phrases.CALL_QUESTION.search(plain):
        return IntentMatch(Intent.QUESTION, None, 0.85)
    if phrases.COMMITTED.search(plain):
        # A question wins over interest.
        if phrases.ASK_PRICE.search(plain) and phrases.ASKS.search(plain):
            return IntentMatch(Intent.ASK_PRICE, None, 0.8)
        if stage is Stage.QUALIFICATION and has_timeline:  # "we want it next month" answers when
            return IntentMatch(Intent.OTHER, None, 0.7)
        return IntentMatch(Intent.INTERESTED, None, 0.9)
    if phrases.ASK_PRICE.search(plain):
        return IntentMatch(Intent.ASK_PRICE, None, 0.85)
    if phrases.ASK_DETAILS.search(plain):
        return IntentMatch(Intent.ASK_DETAILS, None, 0.8)
    if phrases.INTERESTED.search(plain) and not has_timeline:
        return IntentMatch(Intent.INTERESTED, None, 0.8)
    if phrases.QUESTION.search(plain):
        return IntentMatch(Intent.QUESTION, None, 0.75)
    if phrases.LINE_OR_HOLD.search(plain):
        return IntentMatch(Intent.OTHER, None, 0.8)
    if phrases.QUESTION_START.search(plain):
        return IntentMatch(Intent.QUESTION, None, 0.6)
    if phrases.UNSURE.search(plain):
        rest = phrases.UNSURE.sub(" ", plain).split()
        if all(word in phrases.HEDGE_FILLERS for word in rest):
            return _HEDGE  # only a hedge: other, and the LLM reads it
        return IntentMatch(Intent.OTHER, None, UNREAD)  # a hedge with more: the classifier
    if _made_of(words, phrases.GOODBYE_WORDS, phrases.GOODBYE_CORE):
        return IntentMatch(Intent.OTHER, None, 0.6)
    if greets:
        return IntentMatch(Intent.GREETING, None, 0.9)
    ack = classify_ack(plain, stage)
    if ack is not None:
        return ack
    if stage in _FACT_STAGES and phrases.FACT_STATEMENT.search(plain):
        return IntentMatch(Intent.OTHER, None, 0.8)  # "we run two clinics in Nagpur"
    return IntentMatch(Intent.OTHER, None, UNREAD)

"""The demo's bundled leads: what the simulated caller says, and how the call must end.

Lines are plain English the offline recognizer knows (the playbook's
``[listen] phrases``), said by espeak-ng soon after the bot's reply ends
(``PAUSE_S``); ``barge_in_s`` lines are said over the bot's next reply, that far
into it. Each scenario names the outcome it must reach with the templates alone
(no LLM) and with the simulated LLM (``--sim``) alike, which the tests check:
with an LLM, a line the analysis is unsure of where it is said is answered by
the LLM and the call stays in its stage, so the lines that move a call on are
ones it is sure of.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialogue.model import Stage
from server.telephony.softphone import Line


@dataclass(frozen=True, slots=True)
class Expected:
    """How a scenario's call ends (``callback_hour``: the follow-up's IST hour)."""

    stage: Stage
    do_not_call: bool = False
    callback_hour: int | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    about: str
    lines: tuple[Line, ...]
    expected: Expected | None  # None: no script (a person types the lines)


#: the lead answers this long after the bot's reply has played out (the softphone
#: waits for half a second without new audio first): a quick, natural gap
PAUSE_S = 0.2


def say(text: str, *, barge_in_s: float | None = None) -> Line:
    """A line of the lead's (``barge_in_s``: over the bot's next reply)."""
    return Line(text, barge_in_s=barge_in_s, pause_s=PAUSE_S)


CALLBACK = "call me tomorrow evening"
QUALIFIED = (say("yes speaking"), say("about three thousand rupees a month"),
             say("yes i am the owner"), say("as soon as possible"))

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario(
        "tour",
        "the default: qualified, then a price objection cutting into the pitch, and "
        "a callback asked for over the answer to it",
        (*QUALIFIED, say("i cannot afford it", barge_in_s=1.5),
         say(CALLBACK, barge_in_s=1.5)),
        Expected(Stage.FOLLOW_UP_SCHEDULED, callback_hour=18)),
    Scenario(
        "interested",
        "an owner with a high bill who books the free site survey",
        (say("yes speaking"), say("my bill is about four thousand rupees"),
         say("yes i am the owner"), say("as soon as possible"),
         # Yeses the analysis is sure of where they are said (an unsure one is
         # answered by the LLM when one is configured, and the call stays put).
         say("yes i am interested"), say("yes please"),
         say("yes this weekend is fine")),
        Expected(Stage.DEAL_CLOSED)),
    Scenario(
        "callback",
        "busy: asks to be called tomorrow evening (a follow-up at 18:00 IST)",
        (say(CALLBACK),),
        Expected(Stage.FOLLOW_UP_SCHEDULED, callback_hour=18)),
    Scenario(
        "objection",
        "a price objection, answered; the call goes on to a callback",
        (say("yes speaking"), say("about three thousand rupees a month"),
         say("yes i am the owner"), say("i cannot afford it"), say(CALLBACK)),
        Expected(Stage.FOLLOW_UP_SCHEDULED, callback_hour=18)),
    Scenario(
        "dnc",
        "asks not to be called again: a dead end with the do-not-call flag",
        (say("yes speaking"), say("stop calling me")),
        Expected(Stage.DEAD_END, do_not_call=True)),
    Scenario(
        "barge-in",
        "a backchannel over the pitch (it goes on), then a barge-in that cuts it",
        (*QUALIFIED, say("right", barge_in_s=2.0), say(CALLBACK, barge_in_s=2.0)),
        Expected(Stage.FOLLOW_UP_SCHEDULED, callback_hour=18)),
)}

DEFAULT = "tour"

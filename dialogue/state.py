"""A call's conversation state: frozen, replaced (never mutated) on every turn.

``CallState`` is what ``decide`` reads and returns, and what the server snapshots
to Redis (``snapshot()`` gives a JSON-friendly dict). History holds only what the
caller actually heard: after a barge-in, ``trim_last_bot_message`` cuts the last
bot message down to the heard prefix (``trim_bot_message`` cuts a given one,
wherever it is), so the LLM never "remembers" saying words that were cancelled
before playing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from dialogue.model import Analysis, Objection, Stage
from dialogue.playbook import Playbook
from dialogue.prompts import Message, template_values


def _empty() -> Mapping[str, object]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CallState:
    """Everything the engine knows about one call.

    ``path`` lists every stage entered, in order (INTRO first), so analytics and
    tests see intermediate stages even when one turn passes through two (an
    outcome stage says its closing line and moves to ENDED in the same turn).
    ``outcome`` is the outcome stage reached (DEAL_CLOSED, FOLLOW_UP_SCHEDULED or
    DEAD_END), ``None`` while the call is undecided. ``interrupted`` is the stage an
    objection interrupted (where a resolved objection returns). ``asked`` holds the
    qualification slots already asked about; ``pending_slot`` the one just asked.
    """

    playbook: Playbook = field(repr=False)
    lead: Mapping[str, str]
    values: Mapping[str, str]  # template variables for this call (lead_name, ...)
    started_at: datetime
    stage: Stage = Stage.INTRO
    path: tuple[Stage, ...] = (Stage.INTRO,)
    outcome: Stage | None = None
    slots: Mapping[str, object] = field(default_factory=_empty)
    interrupted: Stage | None = None
    objection: Objection | None = None  # the objection being handled
    objection_attempts: int = 0
    objection_counts: Mapping[Objection, int] = field(default_factory=lambda: MappingProxyType({}))
    declines: int = 0
    callback_asks: int = 0
    do_not_call: bool = False
    callback_at: datetime | None = None
    asked: frozenset[str] = frozenset()
    pending_slot: str | None = None
    pitch_index: int = 0
    unclear_turns: int = 0  # 1: the LLM answered the last unsure turn (``decide``)
    llm: bool = False  # an LLM is configured: unsure turns go to it (``decide``)
    history: tuple[Message, ...] = ()
    turns: int = 0

    def with_heard(self, text_prefix: str) -> CallState:
        """This state with the last bot message cut to what the caller heard."""
        return trim_last_bot_message(self, text_prefix)

    def snapshot(self) -> dict[str, object]:
        """A JSON-friendly summary for the session store (no playbook, no history)."""
        return {
            "stage": self.stage.value,
            "path": [stage.value for stage in self.path],
            "outcome": None if self.outcome is None else self.outcome.value,
            "slots": {key: _plain(value) for key, value in self.slots.items()},
            "interrupted": None if self.interrupted is None else self.interrupted.value,
            "objection_attempts": self.objection_attempts,
            "objection_counts": {kind.value: n for kind, n in self.objection_counts.items()},
            "declines": self.declines,
            "do_not_call": self.do_not_call,
            "callback_at": None if self.callback_at is None else self.callback_at.isoformat(),
            "turns": self.turns,
        }


def new_call_state(playbook: Playbook, lead: Mapping[str, str], now: datetime, *,
                   llm: bool = False) -> CallState:
    """The state before the first word: stage INTRO, nothing known. ``llm``: an
    LLM is configured, so a turn the analysis is unsure of is answered by it."""
    return CallState(
        playbook=playbook,
        lead=MappingProxyType(dict(lead)),
        values=MappingProxyType(template_values(playbook, lead)),
        started_at=now,
        llm=llm,
    )


def record_caller(state: CallState, text: str) -> CallState:
    """Append the caller's turn to history (call before ``decide``; blank text is
    not recorded)."""
    text = text.strip()
    if not text:
        return state
    return replace(state, history=(*state.history, {"role": "user", "content": text}))


def record_bot_reply(state: CallState, text: str) -> CallState:
    """Append what the bot said (LLM replies, once streamed; ``decide`` records
    template replies itself). Blank text is not recorded."""
    text = text.strip()
    if not text:
        return state
    return replace(state, history=(*state.history, {"role": "assistant", "content": text}))


def trim_last_bot_message(state: CallState, heard_text: str) -> CallState:
    """Cut the last assistant message to ``heard_text`` (what marks say was played).

    ``heard_text`` is normally a prefix of that message; if it is not (TTS
    normalised the text), it replaces the message. An empty ``heard_text`` removes
    the message (nothing was heard). A state whose last message is the caller's is
    returned unchanged: there is nothing of ours to trim.
    """
    if not state.history or state.history[-1]["role"] != "assistant":
        return state
    heard = heard_text.strip()
    kept = state.history[:-1]
    if heard:
        kept = (*kept, {"role": "assistant", "content": heard})
    return replace(state, history=kept)


def trim_bot_message(state: CallState, message: Message, heard_text: str) -> CallState:
    """Cut ``message`` — an assistant message of ``state.history``, found by
    identity wherever it is — to ``heard_text``, as ``trim_last_bot_message``
    does for the last one: a reply cut after later turns were recorded is
    trimmed in its own place. A message no longer in the history (trimmed
    already) leaves ``state`` unchanged."""
    index = next((i for i, said in enumerate(state.history) if said is message), None)
    if index is None:
        return state
    heard = heard_text.strip()
    if heard == message["content"]:
        return state
    kept = ({"role": "assistant", "content": heard},) if heard else ()
    return replace(state, history=(*state.history[:index], *kept,
                                   *state.history[index + 1:]))


#: Slots an LLM refinement may add after the decision (its reply is already said).
REFINABLE_SLOTS = ("budget_inr", "timeline", "decision_maker", "need")


def refine_slots(state: CallState, refined: Analysis) -> CallState:
    """``state`` with what a refined reading of a turn (``merge_llm_analysis``,
    run beside the reply) knows and ``state`` does not: ``REFINABLE_SLOTS`` that
    are absent, and a callback time while the call waits for one (stage
    FOLLOW_UP_SCHEDULED, none set yet). Known values are never replaced — a
    confirmed callback time was said aloud — and the stage never changes."""
    added = {key: refined.slots[key] for key in REFINABLE_SLOTS
             if key in refined.slots and key not in state.slots}
    at = refined.slots.get("callback_at")
    callback_at = state.callback_at
    if (isinstance(at, datetime) and callback_at is None
            and state.stage is Stage.FOLLOW_UP_SCHEDULED):
        added["callback_at"] = callback_at = at
    if not added:
        return state
    return replace(state, slots=MappingProxyType({**state.slots, **added}),
                   callback_at=callback_at)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return value

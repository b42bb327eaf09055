"""Scripted conversations through the real analysis and engine.

Each script in ``tests/data/conversations/scripts.toml`` gives caller lines and
the stage after each bot decision, plus the call's outcome, path, flags, slots
and callback time. Together they must walk every edge of the default table.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dialogue import (
    CallState,
    LLMRequest,
    Stage,
    Template,
    decide,
    load_playbook,
    new_call_state,
    opening,
    record_bot_reply,
    record_caller,
    trim_last_bot_message,
)
from dialogue.analysis import analyze
from dialogue.stages import RETURN_TO_INTERRUPTED

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 24, 11, 0, tzinfo=IST)  # a Tuesday
SCRIPTS = tomllib.loads(
    (Path(__file__).parent.parent / "data" / "conversations" / "scripts.toml").read_text("utf-8")
)
PLAYBOOK = load_playbook()


@dataclass
class Outcome:
    state: CallState
    replies: list[Template | LLMRequest]


def play(script: dict[str, Any]) -> Outcome:
    """Run one script, checking each turn's expectations as it goes."""
    turns = [*SCRIPTS["prefixes"].get(script.get("start", ""), []), *script["turns"]]
    now = datetime.fromisoformat(script["now"]) if "now" in script else NOW
    first = opening(new_call_state(PLAYBOOK, {"name": "Rahul"}, now), now)
    state, replies = first.state, [first.reply]
    for number, turn in enumerate(turns):
        where = f"{script['name']!r}, turn {number} ({turn['say']!r})"
        if "heard" in turn:
            state = trim_last_bot_message(state, turn["heard"])
            assert state.history[-1] == {"role": "assistant", "content": turn["heard"]}, where
        state = record_caller(state, turn["say"])
        decision = decide(state, analyze(turn["say"], state.stage, now), now)
        state = decision.state
        replies.append(decision.reply)
        assert state.stage == Stage(turn["stage"]), where
        assert decision.end_call == (state.stage is Stage.ENDED), where
        if turn.get("reply") == "llm":
            assert isinstance(decision.reply, LLMRequest), where
            state = record_bot_reply(state, decision.reply.fallback_text)
        elif isinstance(decision.reply, LLMRequest):
            state = record_bot_reply(state, decision.reply.fallback_text)
        if "template" in turn:
            assert isinstance(decision.reply, Template), where
            assert decision.reply.template_id == turn["template"], where
    return Outcome(state, replies)


CONVERSATIONS = SCRIPTS["conversation"]


def test_there_are_at_least_twenty_conversations() -> None:
    assert len(CONVERSATIONS) >= 20


@pytest.mark.parametrize("script", CONVERSATIONS, ids=[c["name"] for c in CONVERSATIONS])
def test_conversation(script: dict[str, Any]) -> None:
    result = play(script)
    state = result.state
    expected_outcome = script.get("outcome")
    assert state.outcome == (None if expected_outcome is None else Stage(expected_outcome))
    if "path" in script:
        assert [stage.value for stage in state.path] == script["path"]
    if "do_not_call" in script:
        assert state.do_not_call is script["do_not_call"]
    if "callback_at" in script:
        assert state.callback_at == datetime.fromisoformat(script["callback_at"])
    else:
        assert state.callback_at is None
    for key, value in script.get("slots", {}).items():
        assert state.slots[key] == value, key
    if "last_reply" in script:
        last = result.replies[-1]
        assert isinstance(last, Template)
        assert last.text == script["last_reply"]
    # the history holds every template the caller heard, in order
    said = [r.text for r in result.replies if isinstance(r, Template) and r.text]
    history = [m["content"] for m in state.history if m["role"] == "assistant"]
    assert [text for text in history if text in said] == [
        text for text in said if text in history
    ]


def test_barge_in_history_reaches_the_llm_trimmed() -> None:
    script = next(c for c in CONVERSATIONS if c["name"].startswith("barge-in"))
    result = play(script)
    request = result.replies[-1]
    assert isinstance(request, LLMRequest)
    pitch = PLAYBOOK.templates(Stage.PRESENTATION, "pitch")[0].source.replace(
        "{product}", "rooftop solar"
    )
    contents = [m["content"] for m in request.messages]
    heard = script["turns"][0]["heard"]
    assert heard in contents
    assert pitch not in contents  # the unheard rest never reaches the LLM
    assert contents[contents.index(heard) + 1] == "kitna hai total?"


def test_conversations_walk_every_edge_of_the_table() -> None:
    walked: set[tuple[Stage, Stage]] = set()
    for script in CONVERSATIONS:
        path = play(script).state.path
        walked.update(itertools.pairwise(path))
    table = PLAYBOOK.table
    required: set[tuple[Stage, Stage]] = set()
    for source, _event, target in table.transitions():
        if target == RETURN_TO_INTERRUPTED:
            required.update((source, back) for back in table.resolved_targets())
        else:
            required.add((source, Stage(target)))
    missing = sorted(f"{a}->{b}" for a, b in required - walked)
    assert not missing
    visited = {stage for pair in walked for stage in pair}
    assert visited == set(Stage)

"""The call's stages and the transition table between them, as data.

The engine (``dialogue.engine``) reads one caller turn, names what happened as an
``Event`` ("the caller accepted", "raised an objection", "asked for a callback")
and looks up ``(stage, event)`` here. A pair that is absent means "stay in this
stage". The table is plain data so a playbook can retarget edges
(``[transitions.CLOSING] postponed = "DEAD_END"``: a campaign without follow-ups)
and so it can be validated and drawn.

Validation (``build_table``) rejects, with the location of each problem: unknown
stage or event names, unknown targets, ``@interrupted`` outside
``OBJECTION_HANDLING``, edges out of ``ENDED`` (it is absorbing), stages that
cannot be reached from ``INTRO`` and stages from which ``ENDED`` cannot be reached.

``@interrupted`` is the target "back to the stage the objection interrupted"; for
reachability and drawing it stands for every stage with an ``objection`` edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from dialogue.exceptions import PlaybookIssue
from dialogue.model import Stage

RETURN_TO_INTERRUPTED = "@interrupted"


class Event(StrEnum):
    """What a caller turn meant for the conversation's progress."""

    ACCEPTED = "accepted"  # INTRO: willing to talk
    NEED_UNDERSTOOD = "need_understood"  # DISCOVERY: we know why they might buy
    QUALIFIED = "qualified"  # QUALIFICATION: budget/authority/need/timeline asked or known
    INTERESTED = "interested"  # PRESENTATION: wants it
    AGREED = "agreed"  # TRIAL_CLOSE / CLOSING: said yes
    POSTPONED = "postponed"  # CLOSING: yes, but not now
    OBJECTION = "objection"  # resisted with a reason
    RESOLVED = "resolved"  # OBJECTION_HANDLING: accepted our answer
    EXHAUSTED = "exhausted"  # OBJECTION_HANDLING: too many failed attempts
    CALLBACK = "callback"  # asked to be called later, or busy now
    DO_NOT_CALL = "do_not_call"  # stop calling this number (DND)
    DECLINED = "declined"  # firm "not interested"
    WRONG_PERSON = "wrong_person"
    CLOSED = "closed"  # a terminal stage said its closing line


#: Stages where the conversation is still going on (global events apply).
LIVE_STAGES: frozenset[Stage] = frozenset(
    {
        Stage.INTRO,
        Stage.DISCOVERY,
        Stage.QUALIFICATION,
        Stage.PRESENTATION,
        Stage.TRIAL_CLOSE,
        Stage.CLOSING,
        Stage.OBJECTION_HANDLING,
    }
)
#: Stages that are a call's outcome; each says a closing line and moves to ENDED.
OUTCOME_STAGES: frozenset[Stage] = frozenset(
    {Stage.DEAL_CLOSED, Stage.FOLLOW_UP_SCHEDULED, Stage.DEAD_END}
)

_FROM_ANY_LIVE_STAGE: dict[str, str] = {
    Event.CALLBACK: Stage.FOLLOW_UP_SCHEDULED,
    Event.DO_NOT_CALL: Stage.DEAD_END,
    Event.DECLINED: Stage.DEAD_END,
    Event.WRONG_PERSON: Stage.DEAD_END,
}

#: The default table: ``stage -> event -> target`` (all plain strings, as in TOML).
DEFAULT_TRANSITIONS: Mapping[str, Mapping[str, str]] = {
    Stage.INTRO: {Event.ACCEPTED: Stage.DISCOVERY, Event.OBJECTION: Stage.OBJECTION_HANDLING,
                  **_FROM_ANY_LIVE_STAGE},
    Stage.DISCOVERY: {Event.NEED_UNDERSTOOD: Stage.QUALIFICATION,
                      Event.OBJECTION: Stage.OBJECTION_HANDLING, **_FROM_ANY_LIVE_STAGE},
    Stage.QUALIFICATION: {Event.QUALIFIED: Stage.PRESENTATION,
                          Event.OBJECTION: Stage.OBJECTION_HANDLING, **_FROM_ANY_LIVE_STAGE},
    Stage.PRESENTATION: {Event.INTERESTED: Stage.TRIAL_CLOSE,
                         Event.OBJECTION: Stage.OBJECTION_HANDLING, **_FROM_ANY_LIVE_STAGE},
    Stage.TRIAL_CLOSE: {Event.AGREED: Stage.CLOSING, Event.OBJECTION: Stage.OBJECTION_HANDLING,
                        **_FROM_ANY_LIVE_STAGE},
    Stage.CLOSING: {Event.AGREED: Stage.DEAL_CLOSED, Event.POSTPONED: Stage.FOLLOW_UP_SCHEDULED,
                    Event.OBJECTION: Stage.OBJECTION_HANDLING, **_FROM_ANY_LIVE_STAGE},
    Stage.OBJECTION_HANDLING: {Event.RESOLVED: RETURN_TO_INTERRUPTED,
                               Event.EXHAUSTED: Stage.DEAD_END, **_FROM_ANY_LIVE_STAGE},
    # A follow-up may still be waiting for its time: the caller can still opt out.
    Stage.FOLLOW_UP_SCHEDULED: {Event.CLOSED: Stage.ENDED, Event.DO_NOT_CALL: Stage.DEAD_END,
                                Event.DECLINED: Stage.DEAD_END,
                                Event.WRONG_PERSON: Stage.DEAD_END},
    Stage.DEAL_CLOSED: {Event.CLOSED: Stage.ENDED},
    Stage.DEAD_END: {Event.CLOSED: Stage.ENDED},
    Stage.ENDED: {},
}


@dataclass(frozen=True, slots=True)
class TransitionTable:
    """A validated table. ``target`` returns ``None`` for "stay"; the special
    target ``RETURN_TO_INTERRUPTED`` is kept as that string."""

    edges: Mapping[Stage, Mapping[Event, Stage | str]]

    def target(self, stage: Stage, event: Event) -> Stage | str | None:
        return self.edges[stage].get(event)

    def transitions(self) -> Iterator[tuple[Stage, Event, Stage | str]]:
        for stage in Stage:
            for event, target in self.edges[stage].items():
                yield stage, event, target

    def resolved_targets(self) -> tuple[Stage, ...]:
        """Stages an objection can interrupt (where ``@interrupted`` can lead)."""
        return tuple(
            stage
            for stage in Stage
            if self.edges[stage].get(Event.OBJECTION) == Stage.OBJECTION_HANDLING
        )

    def successors(self, stage: Stage, *, with_returns: bool = True) -> set[Stage]:
        """Stages one edge away. ``with_returns=False`` leaves out ``@interrupted``
        edges, which only lead back to a stage already visited."""
        found: set[Stage] = set()
        for target in self.edges[stage].values():
            if target == RETURN_TO_INTERRUPTED:
                if with_returns:
                    found.update(self.resolved_targets())
            else:
                found.add(Stage(target))
        return found


def build_table(
    overrides: Mapping[str, object] | None = None, *, location: str = "transitions"
) -> tuple[TransitionTable | None, list[PlaybookIssue]]:
    """Merge ``overrides`` (``stage -> event -> target``, e.g. from a playbook's
    ``[transitions]``) over the default table and validate the result.

    Returns the table, or ``None`` with every issue found.
    """
    issues: list[PlaybookIssue] = []
    merged: dict[Stage, dict[Event, Stage | str]] = {
        Stage(stage): {Event(event): _target(target) for event, target in edges.items()}
        for stage, edges in DEFAULT_TRANSITIONS.items()
    }
    for stage_name, edges in (overrides or {}).items():
        where = f"{location}.{stage_name}"
        if stage_name not in Stage.__members__:
            issues.append(PlaybookIssue(where, f"unknown stage {stage_name!r}"))
            continue
        if not isinstance(edges, Mapping):
            issues.append(PlaybookIssue(where, "expected a table of event = target"))
            continue
        stage = Stage(stage_name)
        for event_name, target in edges.items():
            at = f"{where}.{event_name}"
            if event_name not in Event._value2member_map_:
                issues.append(PlaybookIssue(at, f"unknown event {event_name!r}"))
            elif not isinstance(target, str):
                issues.append(PlaybookIssue(at, "target must be a stage name"))
            elif target != RETURN_TO_INTERRUPTED and target not in Stage.__members__:
                issues.append(PlaybookIssue(at, f"unknown target stage {target!r}"))
            elif target == RETURN_TO_INTERRUPTED and stage is not Stage.OBJECTION_HANDLING:
                issues.append(PlaybookIssue(at, "@interrupted only from OBJECTION_HANDLING"))
            else:
                merged[stage][Event(event_name)] = _target(target)
    table = TransitionTable(
        MappingProxyType({stage: MappingProxyType(edges) for stage, edges in merged.items()})
    )
    issues.extend(check_table(table, location=location))
    return (None, issues) if issues else (table, [])


def check_table(table: TransitionTable, *, location: str = "transitions") -> list[PlaybookIssue]:
    """Structural checks: ENDED absorbing, all stages reachable, no traps."""
    issues = [
        PlaybookIssue(f"{location}.ENDED.{event}", "ENDED is absorbing: no edges out of it")
        for event in table.edges.get(Stage.ENDED, {})
    ]
    for stage in Stage:
        if stage not in table.edges:
            issues.append(PlaybookIssue(f"{location}.{stage}", "stage missing from the table"))
    if issues:
        return issues
    reachable = _closure({Stage.INTRO}, lambda stage: table.successors(stage, with_returns=False))
    for stage in Stage:
        if stage not in reachable:
            issues.append(PlaybookIssue(f"{location}.{stage}", "unreachable from INTRO"))
    predecessors: dict[Stage, set[Stage]] = {stage: set() for stage in Stage}
    for stage in Stage:
        for successor in table.successors(stage):
            predecessors[successor].add(stage)
    can_end = _closure({Stage.ENDED}, lambda stage: predecessors[stage])
    for stage in Stage:
        if stage not in can_end:
            issues.append(PlaybookIssue(f"{location}.{stage}", "no path from here to ENDED"))
    return issues


def to_mermaid(table: TransitionTable) -> str:
    """The table as a Mermaid ``stateDiagram-v2`` (paste into any Markdown viewer)."""
    lines = ["stateDiagram-v2", f"    [*] --> {Stage.INTRO}"]
    for source, event, target in _drawn_edges(table):
        lines.append(f"    {source} --> {target} : {event}")
    lines.append(f"    {Stage.ENDED} --> [*]")
    return "\n".join(lines) + "\n"


def to_dot(table: TransitionTable) -> str:
    """The table as Graphviz ``dot`` text (``dot -Tsvg``)."""
    lines = ["digraph dialogue {", "    rankdir=LR;", "    node [shape=box, style=rounded];"]
    for stage in sorted(OUTCOME_STAGES | {Stage.ENDED}):
        lines.append(f'    "{stage}" [peripheries=2];')
    for source, event, target in _drawn_edges(table):
        style = ", style=dashed" if event == Event.RESOLVED else ""
        lines.append(f'    "{source}" -> "{target}" [label="{event}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _drawn_edges(table: TransitionTable) -> Iterator[tuple[Stage, Event, Stage]]:
    for source, event, target in table.transitions():
        if target == RETURN_TO_INTERRUPTED:
            for back in table.resolved_targets():
                yield source, event, back
        else:
            yield source, event, Stage(target)


def _target(name: str) -> Stage | str:
    return name if name == RETURN_TO_INTERRUPTED else Stage(name)


def _closure(start: set[Stage], step: Callable[[Stage], Iterable[Stage]]) -> set[Stage]:
    seen = set(start)
    todo = list(start)
    while todo:
        for nxt in step(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen

"""The transition table: default validity, precise rejection, drawing."""

from __future__ import annotations

import pytest

from dialogue import PlaybookIssue, Stage
from dialogue.stages import (
    DEFAULT_TRANSITIONS,
    LIVE_STAGES,
    Event,
    build_table,
    to_dot,
    to_mermaid,
)


def test_default_table_is_valid_and_complete() -> None:
    table, issues = build_table()
    assert issues == []
    assert table is not None
    assert set(table.edges) == set(Stage)
    assert table.edges[Stage.ENDED] == {}


@pytest.mark.parametrize("stage", sorted(LIVE_STAGES))
@pytest.mark.parametrize(
    ("event", "target"),
    [(Event.CALLBACK, Stage.FOLLOW_UP_SCHEDULED), (Event.DO_NOT_CALL, Stage.DEAD_END),
     (Event.DECLINED, Stage.DEAD_END), (Event.WRONG_PERSON, Stage.DEAD_END)],
)
def test_global_events_apply_in_every_live_stage(stage: Stage, event: Event, target: Stage) -> None:
    table, _ = build_table()
    assert table is not None
    assert table.target(stage, event) == target


def test_outcome_stages_close_into_ended() -> None:
    table, _ = build_table()
    assert table is not None
    for stage in (Stage.DEAL_CLOSED, Stage.DEAD_END, Stage.FOLLOW_UP_SCHEDULED):
        assert table.target(stage, Event.CLOSED) == Stage.ENDED


def test_override_retargets_an_edge() -> None:
    # A campaign without follow-ups: "not now" at closing ends the call.
    table, issues = build_table({"CLOSING": {"postponed": "DEAD_END"}})
    assert issues == []
    assert table is not None
    assert table.target(Stage.CLOSING, Event.POSTPONED) == Stage.DEAD_END
    assert table.target(Stage.CLOSING, Event.AGREED) == Stage.DEAL_CLOSED


def test_skipping_a_stage_strands_it() -> None:
    table, issues = build_table({"PRESENTATION": {"interested": "CLOSING"}})
    assert table is None
    assert issues == [PlaybookIssue("transitions.TRIAL_CLOSE", "unreachable from INTRO")]


def test_bad_names_are_all_reported_with_locations() -> None:
    table, issues = build_table(
        {
            "PRESENTATON": {"interested": "CLOSING"},
            "INTRO": {"acepted": "DISCOVERY", "accepted": "DISCOVERYY"},
            "DISCOVERY": {"need_understood": "@interrupted"},
            "CLOSING": "DEAL_CLOSED",
        }
    )
    assert table is None
    assert issues == [
        PlaybookIssue("transitions.PRESENTATON", "unknown stage 'PRESENTATON'"),
        PlaybookIssue("transitions.INTRO.acepted", "unknown event 'acepted'"),
        PlaybookIssue("transitions.INTRO.accepted", "unknown target stage 'DISCOVERYY'"),
        PlaybookIssue("transitions.DISCOVERY.need_understood",
                      "@interrupted only from OBJECTION_HANDLING"),
        PlaybookIssue("transitions.CLOSING", "expected a table of event = target"),
    ]


def test_edges_out_of_ended_are_rejected() -> None:
    _, issues = build_table({"ENDED": {"closed": "INTRO"}})
    assert issues == [
        PlaybookIssue("transitions.ENDED.closed", "ENDED is absorbing: no edges out of it")
    ]


def test_unreachable_stages_are_rejected() -> None:
    # Sending "accepted" straight to CLOSING strands the middle of the funnel.
    _, issues = build_table({"INTRO": {"accepted": "CLOSING"}})
    assert [str(issue) for issue in issues] == [
        "transitions.DISCOVERY: unreachable from INTRO",
        "transitions.QUALIFICATION: unreachable from INTRO",
        "transitions.PRESENTATION: unreachable from INTRO",
        "transitions.TRIAL_CLOSE: unreachable from INTRO",
    ]


def test_traps_without_a_way_to_ended_are_rejected() -> None:
    _, issues = build_table({"DEAL_CLOSED": {"closed": "DEAL_CLOSED"}})
    assert issues == [PlaybookIssue("transitions.DEAL_CLOSED", "no path from here to ENDED")]


def test_mermaid_lists_every_edge() -> None:
    table, _ = build_table()
    assert table is not None
    text = to_mermaid(table)
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "    [*] --> INTRO" in lines
    assert "    INTRO --> DISCOVERY : accepted" in lines
    assert "    OBJECTION_HANDLING --> TRIAL_CLOSE : resolved" in lines
    assert "    ENDED --> [*]" in lines
    plain_edges = sum(len(edges) for edges in DEFAULT_TRANSITIONS.values()) - 1  # minus @return
    assert len([line for line in lines if " : " in line]) == plain_edges + len(
        table.resolved_targets()
    )


def test_dot_is_deterministic_graphviz() -> None:
    table, _ = build_table()
    assert table is not None
    text = to_dot(table)
    assert text.startswith("digraph dialogue {")
    assert '"CLOSING" -> "DEAL_CLOSED" [label="agreed"];' in text
    assert '"OBJECTION_HANDLING" -> "INTRO" [label="resolved", style=dashed];' in text
    assert text == to_dot(build_table()[0])  # type: ignore[arg-type]
    assert text.rstrip().endswith("}")

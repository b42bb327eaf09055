"""Playbook loading and validation, and the ``voicebot playbook`` command."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from dialogue import PlaybookError, Stage, check_playbook, load_playbook
from dialogue.model import Objection
from dialogue.playbook import BUNDLED, STAGE_TEMPLATES
from server.cli import main as voicebot

DEFAULT_TEXT = resources.files("dialogue").joinpath("playbooks/default.toml").read_text("utf-8")


def broken(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The bundled playbook with text replacements applied (each must match)."""
    text = DEFAULT_TEXT
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "playbook.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_sample_is_complete() -> None:
    playbook = load_playbook()
    assert playbook.source == BUNDLED
    assert playbook.persona.agent_name == "Priya"
    for stage, names in STAGE_TEMPLATES.items():
        assert set(playbook.stages[stage].templates) == names, stage
    assert set(playbook.objections) == set(Objection)
    assert [q.slot for q in playbook.questions] == [
        "need", "decision_maker", "budget_inr", "timeline"
    ]
    assert len(playbook.templates(Stage.PRESENTATION, "pitch")) == 3
    assert playbook.rules.timezone.key == "Asia/Kolkata"
    assert playbook.rules.max_objection_attempts == 3


def test_sample_file_checks_clean(tmp_path: Path) -> None:
    path = broken(tmp_path)
    assert check_playbook(path) == []
    assert load_playbook(path).source == str(path)


def test_every_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    path = broken(
        tmp_path,
        ('agent_name = "Priya"\n', ""),
        ('language = "en-IN"\n', 'language = "en-IN"\naccent = "mumbai"\n'),
        ("we put {product} on your roof", "we put {prodcut} on your roof"),
        ("Do you have two minutes?\"", "Shall I call {callback_time}?\""),
        ('slot = "budget_inr"', 'slot = "budget"'),
        ("[stages.TRIAL_CLOSE.templates]\nquestion", "[stages.TRIAL_CLOSE.templates]\nquestoin"),
        ("max_attempts = 3", 'max_attempts = "three"'),
        ("no_need = [", "boredom = [\"x\"]\nno_need = ["),
        ('timezone = "Asia/Kolkata"', 'timezone = "Asia/Kolkatta"'),
        ('call_window = ["09:00", "21:00"]', 'call_window = ["9am", "21:00"]'),
        ("max_tokens = 80", "max_tokens = 0"),
        ("[stages.DEAL_CLOSED.templates]", "[stages.DEAL_CLOSD.templates]"),
        ("# [transitions.CLOSING]\n# postponed", "[transitions.CLOSING]\npostponed"),
        ('postponed = "DEAD_END"', 'postponed = "NOWHERE"'),
    )
    issues = [str(issue) for issue in check_playbook(path)]
    assert issues == [
        "persona.accent: unknown key (expected one of ['agent_name', 'company', "
        "'language', 'lead_name_fallback', 'voice'])",
        "persona.agent_name: missing required key",
        "qualification.questions[2].slot: unknown slot 'budget' (expected one of "
        "['budget_inr', 'decision_maker', 'need', 'timeline'])",
        "stages.DEAL_CLOSD: unknown key (expected one of ['CLOSING', 'DEAD_END', 'DEAL_CLOSED', "
        "'DISCOVERY', 'ENDED', 'FOLLOW_UP_SCHEDULED', 'INTRO', 'OBJECTION_HANDLING', "
        "'PRESENTATION', 'QUALIFICATION', 'TRIAL_CLOSE'])",
        "stages.INTRO.templates.greeting: unknown variable {callback_time} "
        "(only in callback confirmations)",
        "stages.PRESENTATION.templates.pitch[0]: unknown variable {prodcut}",
        "stages.TRIAL_CLOSE.templates.questoin: unknown key (expected one of "
        "['fallback', 'question'])",
        "stages.TRIAL_CLOSE.templates.question: missing required template",
        "stages.DEAL_CLOSED: missing required table",
        "objections.max_attempts: expected int, got str",
        "objections.responses.boredom: unknown key (expected one of ['authority', "
        "'competitor', 'no_need', 'price', 'timing', 'trust'])",
        "rules.timezone: unknown time zone 'Asia/Kolkatta'",
        'rules.call_window[0]: expected a time like "09:00", got \'9am\'',
        "llm.max_tokens: must be at least 1",
        "transitions.CLOSING.postponed: unknown target stage 'NOWHERE'",
    ]
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert [str(issue) for issue in caught.value.issues] == issues
    assert caught.value.source == str(path)
    assert "stages.PRESENTATION.templates.pitch[0]: unknown variable {prodcut}" in str(
        caught.value
    )


def test_invalid_toml_is_one_located_issue(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[persona\nagent_name = 1\n")
    issues = check_playbook(path)
    assert len(issues) == 1
    assert issues[0].message.startswith("not valid TOML: ")
    assert "line 1" in issues[0].message


def test_bad_braces_are_reported(tmp_path: Path) -> None:
    path = broken(tmp_path, ("This is {agent_name} from", "This is {agent_name from"),
                  ("{company} will not call", "{company!r} will not call"))
    assert [str(issue) for issue in check_playbook(path)] == [
        "stages.INTRO.templates.greeting: bad braces: unexpected '{' in field name "
        "(write {{ and }} for literal braces)",
        "stages.DEAD_END.templates.do_not_call: bad placeholder {company}: only {name} "
        "is allowed",
    ]


def test_cli_check_ok_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = broken(tmp_path)
    assert voicebot(["playbook", "--check", str(good)]) == 0
    assert capsys.readouterr().out == "ok\n"
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_TEXT.replace("{product} for your home", "{prodcut} for your home"))
    assert voicebot(["playbook", "--check", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == (
        f"{bad}: stages.INTRO.templates.greeting: unknown variable {{prodcut}}\n"
    )
    assert captured.err == "1 error(s)\n"
    assert voicebot(["playbook", "--check", str(tmp_path / "missing.toml")]) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(("style", "first_line"), [("mermaid", "stateDiagram-v2"),
                                                  ("dot", "digraph dialogue {")])
def test_cli_graph(style: str, first_line: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert voicebot(["playbook", "--graph", style]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == first_line
    assert "DEAL_CLOSED" in out


def test_cli_graph_defaults_to_mermaid_of_the_given_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enable = ("# [transitions.CLOSING]\n# postponed", "[transitions.CLOSING]\npostponed")
    path = broken(tmp_path, enable)
    assert voicebot(["playbook", "--file", str(path), "--graph"]) == 0
    out = capsys.readouterr().out
    assert "    CLOSING --> DEAD_END : postponed" in out


def test_cli_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert voicebot(["playbook", "--show"]) == 0
    out = capsys.readouterr().out
    assert "Priya of SuryaKiran Solar" in out
    assert "09:00-21:00 Asia/Kolkata" in out


def test_listen_phrases_are_read_and_checked(tmp_path: Path) -> None:
    assert "call me tomorrow evening" in load_playbook().listen_phrases
    sample = resources.files("dialogue").joinpath("playbooks", "default.toml").read_text("utf-8")
    bad = sample.replace('phrases = [\n', 'phrases = [\n    "", 3,\n', 1)
    path = tmp_path / "bad.toml"
    path.write_text(bad, "utf-8")
    issues = {issue.location for issue in check_playbook(path)}
    assert issues == {"listen.phrases[0]", "listen.phrases[1]"}

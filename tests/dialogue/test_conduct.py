"""The ``[call]`` conduct: backchannels, key presses, re-prompt settings."""

from __future__ import annotations

import pytest

from dialogue import load_playbook
from dialogue.conduct import CallConduct, dtmf_analysis, is_backchannel
from dialogue.model import Intent
from dialogue.playbook import check_playbook

CONDUCT = load_playbook().conduct


@pytest.mark.parametrize("text", ["hmm", "Haan haan.", "ok ok", "achha, theek hai",
                                  "ji", "aage bolo", "hmm right"])
def test_acknowledgements_are_backchannels(text: str) -> None:
    assert is_backchannel(text, CONDUCT)


@pytest.mark.parametrize("text", ["", "wait, how much does it cost?", "haan but I am busy",
                                  "nahi chahiye", "call me later"])
def test_content_is_not_a_backchannel(text: str) -> None:
    assert not is_backchannel(text, CONDUCT)


def test_after_a_question_a_yes_is_an_answer() -> None:
    assert is_backchannel("haan", CONDUCT)
    assert not is_backchannel("haan", CONDUCT, after_question=True)
    assert not is_backchannel("yes yes", CONDUCT, after_question=True)
    assert is_backchannel("hmm", CONDUCT, after_question=True)


def test_key_presses_map_to_intents() -> None:
    dnc = dtmf_analysis("9", CONDUCT)
    assert dnc is not None
    assert dnc.intent is Intent.DO_NOT_CALL
    assert dnc.confidence == 1.0
    assert dtmf_analysis("1", CONDUCT).intent is Intent.INTERESTED  # type: ignore[union-attr]
    assert dtmf_analysis("5", CONDUCT) is None


def test_bundled_conduct_and_defaults() -> None:
    assert CONDUCT.reprompt_after_s == 6.0
    assert CONDUCT.barge_in_min_speech_ms == 300
    assert CONDUCT.reprompt.render({"lead_name": "Asha"}) == "Are you still there, Asha?"
    assert CallConduct().dtmf["2"] is Intent.CALLBACK_REQUEST


def test_bad_call_settings_are_reported(tmp_path: object) -> None:
    from pathlib import Path

    bundled = (Path(__file__).parents[2] / "dialogue/playbooks/default.toml").read_text()
    broken = bundled.replace('reprompt_after_s = 6.0', 'reprompt_after_s = 0.1').replace(
        '"9" = "do_not_call"', '"9" = "hang_up"\n"x" = "affirm"').replace(
        'reprompt = "Are you still there, {lead_name}?"', 'reprompt = "Hello {caller}?"')
    path = Path(str(tmp_path)) / "p.toml"
    path.write_text(broken)
    where = {issue.location for issue in check_playbook(path)}
    assert {"call.reprompt_after_s", "call.dtmf.9", "call.dtmf.x", "call.reprompt"} <= where

"""How the bot conducts a live call: re-prompts, backchannels, key presses.

A playbook's optional ``[call]`` table (defaults in brackets)::

    [call]
    reprompt_after_s = 6.0          # caller silent this long after a question → re-prompt
    reprompt = "Are you still there?"
    goodbye_no_response = "I'll let you go for now. Thank you, {lead_name}. Goodbye!"
    barge_in_min_speech_ms = 300    # talking over the bot this long is an interruption
    backchannels = ["hmm", "haan", "haan haan", "ok", "ji", "achha", "right",
                    "theek hai", "aage bolo", ...]
    non_interruptible = []          # template ids said to the end, e.g. "INTRO.greeting"

    [call.dtmf]                     # digit → intent
    "9" = "do_not_call"
    "1" = "interested"
    "2" = "callback_request"

``is_backchannel`` decides whether words spoken over the bot only acknowledge
it ("haan", "ok ok", "hmm right") — the reply then goes on — or interrupt it.
It is stage-aware through ``after_question``: while the bot's question is the
line being spoken, a yes/no word ("haan", "yes", "ji", "no") answers it.
``dtmf_analysis`` turns a key press into the ``Analysis`` of a turn.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from dialogue.model import Analysis, Intent
from dialogue.templates import TemplateText, parse_template

if TYPE_CHECKING:
    from dialogue.playbook_reader import Reader

__all__ = ["DEFAULT_BACKCHANNELS", "CallConduct", "dtmf_analysis", "is_backchannel",
           "parse_conduct"]

DEFAULT_BACKCHANNELS = (
    "hmm", "hm", "mm", "mhm", "uh huh", "haan", "haan haan", "han", "ha", "ok", "okay",
    "ok ok", "ji", "ji haan", "achha", "acha", "accha", "right", "theek hai", "thik hai",
    "aage bolo", "go on", "yes", "yeah", "sure", "i see",
)
#: Words that answer a yes/no question (never a backchannel right after one).
YES_NO_WORDS = frozenset({"haan", "han", "ha", "yes", "yeah", "ji", "ji haan", "ok", "okay",
                          "sure", "theek hai", "thik hai", "no", "nahi", "nahin", "na"})
_DEFAULT_DTMF = {"9": Intent.DO_NOT_CALL, "1": Intent.INTERESTED, "2": Intent.CALLBACK_REQUEST}
_WORD = re.compile(r"[a-z']+")
_KNOWN = frozenset({"reprompt_after_s", "reprompt", "goodbye_no_response",
                    "barge_in_min_speech_ms", "backchannels", "non_interruptible", "dtmf"})
_VARIABLES = frozenset({"lead_name", "agent_name", "company", "product"})


def _words(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


@dataclass(frozen=True, slots=True)
class CallConduct:
    """The ``[call]`` settings (module docstring)."""

    reprompt_after_s: float = 6.0
    reprompt: TemplateText = field(default_factory=lambda: parse_template(
        "Are you still there?"))
    goodbye_no_response: TemplateText = field(default_factory=lambda: parse_template(
        "I'll let you go for now. Thank you, {lead_name}. Goodbye!"))
    barge_in_min_speech_ms: int = 300
    backchannels: frozenset[str] = frozenset(_words(b) for b in DEFAULT_BACKCHANNELS)
    non_interruptible: frozenset[str] = frozenset()
    dtmf: Mapping[str, Intent] = field(
        default_factory=lambda: MappingProxyType(dict(_DEFAULT_DTMF)))


def is_backchannel(text: str, conduct: CallConduct, *, after_question: bool = False) -> bool:
    """Whether ``text`` (spoken over the bot) only acknowledges it.

    True when the words are one or more backchannel phrases in a row ("haan
    haan ok"); empty text is not a backchannel (nothing was recognised). With
    ``after_question``, a yes/no word answers the question and is not one.
    """
    words = _words(text)
    if not words:
        return False
    if after_question and (words in YES_NO_WORDS or words.split()[0] in YES_NO_WORDS):
        return False
    return _covered(words.split(), conduct.backchannels)


def _covered(words: list[str], phrases: frozenset[str]) -> bool:
    """Whether ``words`` split into a sequence of ``phrases`` (longest first)."""
    longest = max((len(p.split()) for p in phrases), default=0)
    ok = [False] * (len(words) + 1)
    ok[0] = True
    for end in range(1, len(words) + 1):
        for size in range(1, min(longest, end) + 1):
            if ok[end - size] and " ".join(words[end - size:end]) in phrases:
                ok[end] = True
                break
    return ok[-1]


def dtmf_analysis(digit: str, conduct: CallConduct) -> Analysis | None:
    """The turn a key press stands for, or ``None`` for an unmapped key."""
    intent = conduct.dtmf.get(digit)
    if intent is None:
        return None
    return Analysis(intent=intent, confidence=1.0)


def parse_conduct(r: Reader, doc: Mapping[str, object]) -> CallConduct:
    """Read the optional ``[call]`` table (issues go to ``r``)."""
    base = CallConduct()
    data = r.table(doc, "call", "", _KNOWN, required=False)
    if not data:
        return base
    after = r.value(data, "reprompt_after_s", "call", float, base.reprompt_after_s)
    if after is None or not 1.0 <= after <= 60.0:
        r.error("call.reprompt_after_s", "must be between 1 and 60 seconds")
        after = base.reprompt_after_s
    min_ms = r.value(data, "barge_in_min_speech_ms", "call", int, base.barge_in_min_speech_ms)
    if min_ms is None or not 60 <= min_ms <= 3000:
        r.error("call.barge_in_min_speech_ms", "must be between 60 and 3000")
        min_ms = base.barge_in_min_speech_ms
    reprompt = base.reprompt
    if "reprompt" in data:
        reprompt = r.text(data["reprompt"], "call.reprompt", _VARIABLES) or reprompt
    goodbye = base.goodbye_no_response
    if "goodbye_no_response" in data:
        goodbye = r.text(data["goodbye_no_response"], "call.goodbye_no_response",
                         _VARIABLES) or goodbye
    backchannels = base.backchannels
    raw = r.value(data, "backchannels", "call", list, [])
    if raw:
        if not all(isinstance(x, str) and _words(x) for x in raw):
            r.error("call.backchannels", "expected a list of words or phrases")
        backchannels = frozenset(_words(x) for x in raw if isinstance(x, str) and _words(x))
    fixed = r.value(data, "non_interruptible", "call", list, []) or []
    if not all(isinstance(x, str) and "." in x for x in fixed):
        r.error("call.non_interruptible", 'expected template ids like "INTRO.greeting"')
    dtmf = dict(base.dtmf)
    keys = r.table(data, "dtmf", "call", None, required=False)
    if keys:
        dtmf = {}
        for digit, name in keys.items():
            where = f"call.dtmf.{digit}"
            if digit not in "0123456789*#" or len(digit) != 1:
                r.error(where, "expected a key 0-9, * or #")
            elif not isinstance(name, str) or name not in Intent.__members__.values():
                r.error(where, f"expected an intent, one of {sorted(i.value for i in Intent)}")
            else:
                dtmf[digit] = Intent(name)
    return CallConduct(
        reprompt_after_s=after, reprompt=reprompt, goodbye_no_response=goodbye,
        barge_in_min_speech_ms=min_ms, backchannels=backchannels,
        non_interruptible=frozenset(x for x in fixed if isinstance(x, str)),
        dtmf=MappingProxyType(dtmf),
    )

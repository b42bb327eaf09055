"""The playbook: a campaign's script and rules, loaded from TOML and validated.

A sales team edits the TOML (see ``dialogue/playbooks/default.toml``, the bundled
sample and default); code never holds campaign text. ``load_playbook`` either
returns a complete, frozen ``Playbook`` or raises ``PlaybookError`` listing every
problem with its dotted location — it never half-loads. ``check_playbook`` returns
the same list without raising (for ``voicebot playbook --check``).

Checked: TOML syntax, unknown keys at every level (typos), missing required keys,
value types and ranges, stage names, template names, template variables (unknown
ones, and ``{callback_time}`` outside the callback confirmation), objection types,
qualification slots, times and the time zone, prices, and the transition table.

Templates are parsed once here (``TemplateText``) so rendering in ``decide`` is a
join over pre-split parts, never a parse.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import time
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialogue.conduct import CallConduct, parse_conduct
from dialogue.cost import Prices
from dialogue.exceptions import PlaybookError, PlaybookIssue
from dialogue.model import Objection, Stage
from dialogue.playbook_reader import Reader
from dialogue.stages import TransitionTable, build_table
from dialogue.templates import TemplateText

#: Variables every template may use.
COMMON_VARIABLES = frozenset({"lead_name", "agent_name", "company", "product"})
#: Templates that may also use ``{callback_time}``.
CALLBACK_TEMPLATES = frozenset({(Stage.FOLLOW_UP_SCHEDULED, "confirm")})

#: Templates the engine says, per stage. Each is required; other names are typos.
STAGE_TEMPLATES: Mapping[Stage, frozenset[str]] = {
    Stage.INTRO: frozenset({"greeting", "fallback"}),
    Stage.DISCOVERY: frozenset({"question", "fallback"}),
    Stage.QUALIFICATION: frozenset({"fallback"}),
    Stage.PRESENTATION: frozenset({"pitch", "check", "fallback"}),
    Stage.TRIAL_CLOSE: frozenset({"question", "fallback"}),
    Stage.CLOSING: frozenset({"ask", "fallback"}),
    Stage.OBJECTION_HANDLING: frozenset({"fallback"}),
    Stage.FOLLOW_UP_SCHEDULED: frozenset({"ask_time", "offer", "postpone", "confirm"}),
    Stage.DEAL_CLOSED: frozenset({"goodbye"}),
    Stage.DEAD_END: frozenset({"goodbye", "do_not_call", "wrong_person", "exhausted"}),
    Stage.ENDED: frozenset(),
}
#: Stages the LLM may speak in: each needs a ``prompt``.
PROMPTED_STAGES = frozenset(
    {Stage.INTRO, Stage.DISCOVERY, Stage.QUALIFICATION, Stage.PRESENTATION,
     Stage.TRIAL_CLOSE, Stage.CLOSING, Stage.OBJECTION_HANDLING}
)
RESPONSES = frozenset({"decline_rebuttal", "answer_price", "answer_details", "not_understood"})
QUALIFICATION_SLOTS = frozenset({"need", "budget_inr", "decision_maker", "timeline"})

BUNDLED = "<bundled default.toml>"

@dataclass(frozen=True, slots=True)
class Persona:
    agent_name: str
    company: str
    voice: str
    language: str
    lead_name_fallback: str


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    summary: str
    facts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Question:
    """A qualification question and the slot its answer fills."""

    slot: str
    text: TemplateText


@dataclass(frozen=True, slots=True)
class StagePlan:
    prompt: TemplateText | None
    templates: Mapping[str, tuple[TemplateText, ...]]


@dataclass(frozen=True, slots=True)
class Rules:
    timezone: ZoneInfo
    call_start: time
    call_end: time
    default_callback_time: time
    max_declines: int
    max_callback_asks: int
    max_objection_attempts: int


@dataclass(frozen=True, slots=True)
class LLMSettings:
    max_tokens: int
    temperature: float
    max_history_messages: int
    max_history_chars: int


@dataclass(frozen=True, slots=True)
class Playbook:
    """A validated campaign. Every mapping is read-only."""

    source: str
    persona: Persona
    product: Product
    questions: tuple[Question, ...]
    stages: Mapping[Stage, StagePlan]
    responses: Mapping[str, TemplateText]
    objections: Mapping[Objection, tuple[TemplateText, ...]]
    rules: Rules
    llm: LLMSettings
    prices: Prices
    table: TransitionTable
    conduct: CallConduct
    #: what callers typically say, in words (``[listen] phrases``): the offline
    #: recognizer listens for these; vendor STT does not use them
    listen_phrases: tuple[str, ...] = ()

    def templates(self, stage: Stage, name: str) -> tuple[TemplateText, ...]:
        return self.stages[stage].templates[name]


def load_playbook(path: str | Path | None = None) -> Playbook:
    """Load and validate a playbook (``None``: the bundled sample). Raises
    ``PlaybookError`` with every issue found; ``OSError`` if the file is unreadable."""
    source, text = _read(path)
    playbook, issues = _parse(text)
    if playbook is None:
        raise PlaybookError(issues, source=source)
    return replace(playbook, source=source)


def check_playbook(path: str | Path | None) -> list[PlaybookIssue]:
    """Every problem in the playbook at ``path`` (empty when it is valid)."""
    _, text = _read(path)
    return _parse(text)[1]


def _read(path: str | Path | None) -> tuple[str, str]:
    if path is None:
        resource = resources.files("dialogue").joinpath("playbooks/default.toml")
        return BUNDLED, resource.read_text(encoding="utf-8")
    return str(path), Path(path).read_text(encoding="utf-8")


_TOP = frozenset({"persona", "product", "qualification", "stages", "responses", "objections",
                  "rules", "llm", "prices", "transitions", "call", "listen"})


def _parse(text: str) -> tuple[Playbook | None, list[PlaybookIssue]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [PlaybookIssue("", f"not valid TOML: {exc}")]
    r = Reader()
    for key in doc:
        if key not in _TOP:
            r.error(key, f"unknown section (expected one of {sorted(_TOP)})")

    p = r.table(doc, "persona", "", frozenset(
        {"agent_name", "company", "voice", "language", "lead_name_fallback"}))
    persona = Persona(
        agent_name=r.value(p, "agent_name", "persona", str) or "",
        company=r.value(p, "company", "persona", str) or "",
        voice=r.value(p, "voice", "persona", str, "") or "",
        language=r.value(p, "language", "persona", str, "en-IN") or "en-IN",
        lead_name_fallback=r.value(p, "lead_name_fallback", "persona", str, "") or "",
    )
    pr = r.table(doc, "product", "", frozenset({"name", "summary", "facts"}))
    facts = r.value(pr, "facts", "product", list) or []
    for i, fact in enumerate(facts):
        if not isinstance(fact, str):
            r.error(f"product.facts[{i}]", "expected a string")
    product = Product(
        name=r.value(pr, "name", "product", str) or "",
        summary=r.value(pr, "summary", "product", str) or "",
        facts=tuple(f for f in facts if isinstance(f, str)),
    )

    q = r.table(doc, "qualification", "", frozenset({"questions"}))
    questions: list[Question] = []
    for i, item in enumerate(r.value(q, "questions", "qualification", list) or []):
        where = f"qualification.questions[{i}]"
        if not isinstance(item, Mapping):
            r.error(where, "expected a table with slot and text")
            continue
        for key in item:
            if key not in ("slot", "text"):
                r.error(f"{where}.{key}", "unknown key (expected slot, text)")
        slot = r.value(item, "slot", where, str)
        if slot is not None and slot not in QUALIFICATION_SLOTS:
            known = sorted(QUALIFICATION_SLOTS)
            r.error(f"{where}.slot", f"unknown slot {slot!r} (expected one of {known})")
        question = r.text(item.get("text"), f"{where}.text", COMMON_VARIABLES)
        if slot in QUALIFICATION_SLOTS and question is not None:
            questions.append(Question(slot, question))

    stages = _parse_stages(r, r.table(doc, "stages", "", frozenset(Stage.__members__)))

    resp = r.table(doc, "responses", "", RESPONSES)
    responses: dict[str, TemplateText] = {}
    for name in sorted(RESPONSES):
        if name not in resp:
            r.error(f"responses.{name}", "missing required key")
        elif (parsed := r.text(resp[name], f"responses.{name}", COMMON_VARIABLES)) is not None:
            responses[name] = parsed

    ob = r.table(doc, "objections", "", frozenset({"max_attempts", "responses"}))
    max_attempts = r.number(ob, "max_attempts", "objections", 3)
    ob_resp = r.table(ob, "responses", "objections", frozenset(o.value for o in Objection))
    objections: dict[Objection, tuple[TemplateText, ...]] = {}
    for kind in Objection:
        where = f"objections.responses.{kind}"
        if kind.value not in ob_resp:
            r.error(where, "missing required key")
        else:
            objections[kind] = r.texts(ob_resp[kind.value], where, COMMON_VARIABLES)

    rules = _parse_rules(r, doc, max_attempts)
    ll = r.table(doc, "llm", "", frozenset(
        {"max_tokens", "temperature", "max_history_messages", "max_history_chars"}), required=False)
    temperature = r.value(ll, "temperature", "llm", float, 0.4)
    if temperature is None or not 0.0 <= temperature <= 2.0:
        r.error("llm.temperature", "must be between 0 and 2")
    llm = LLMSettings(
        max_tokens=r.number(ll, "max_tokens", "llm", 80),
        temperature=temperature or 0.0,
        max_history_messages=r.number(ll, "max_history_messages", "llm", 12),
        max_history_chars=r.number(ll, "max_history_chars", "llm", 2000),
    )

    prices, price_issues = Prices.from_mapping(r.table(doc, "prices", "", None, required=False))
    r.issues.extend(price_issues)
    table, table_issues = build_table(r.table(doc, "transitions", "", None, required=False))
    r.issues.extend(table_issues)
    conduct = parse_conduct(r, doc)
    li = r.table(doc, "listen", "", frozenset({"phrases"}), required=False)
    phrases = r.value(li, "phrases", "listen", list, []) or []
    for i, phrase in enumerate(phrases):
        if not isinstance(phrase, str) or not phrase.strip():
            r.error(f"listen.phrases[{i}]", "expected a non-empty string")

    if r.issues or rules is None or prices is None or table is None:
        return None, r.issues
    playbook = Playbook(
        source="", persona=persona, product=product, questions=tuple(questions),
        stages=MappingProxyType(stages), responses=MappingProxyType(responses),
        objections=MappingProxyType(objections), rules=rules, llm=llm, prices=prices, table=table,
        conduct=conduct, listen_phrases=tuple(p.strip() for p in phrases if isinstance(p, str)),
    )
    return playbook, []


def _parse_stages(r: Reader, data: Mapping[str, object]) -> dict[Stage, StagePlan]:
    plans: dict[Stage, StagePlan] = {}
    for stage in Stage:
        loc = f"stages.{stage}"
        section = r.table(data, stage.value, "stages", frozenset({"prompt", "templates"}),
                          required=bool(STAGE_TEMPLATES[stage]) or stage in PROMPTED_STAGES)
        prompt = None
        if "prompt" in section:
            prompt = r.text(section["prompt"], f"{loc}.prompt", COMMON_VARIABLES)
        elif stage in PROMPTED_STAGES and section:
            r.error(f"{loc}.prompt", "missing required key")
        expected = STAGE_TEMPLATES[stage]
        needed = bool(expected) and bool(section)
        raw = r.table(section, "templates", loc, expected, required=needed)
        templates: dict[str, tuple[TemplateText, ...]] = {}
        for name in sorted(expected):
            where = f"{loc}.templates.{name}"
            if name not in raw:
                if raw:
                    r.error(where, "missing required template")
                continue
            allowed = COMMON_VARIABLES | (
                {"callback_time"} if (stage, name) in CALLBACK_TEMPLATES else set())
            templates[name] = r.texts(raw[name], where, frozenset(allowed))
        plans[stage] = StagePlan(prompt, MappingProxyType(templates))
    return plans


def _parse_rules(r: Reader, doc: Mapping[str, object], max_attempts: int) -> Rules | None:
    ru = r.table(doc, "rules", "", frozenset(
        {"timezone", "call_window", "default_callback_time", "max_declines", "max_callback_asks"}))
    zone_name = r.value(ru, "timezone", "rules", str, "Asia/Kolkata") or "Asia/Kolkata"
    zone: ZoneInfo | None
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        r.error("rules.timezone", f"unknown time zone {zone_name!r}")
        zone = None
    window = r.value(ru, "call_window", "rules", list, ["09:00", "21:00"]) or []
    start = end = None
    if len(window) != 2:
        r.error("rules.call_window", "expected [start, end], e.g. [\"09:00\", \"21:00\"]")
    else:
        start = r.clock(window[0], "rules.call_window[0]")
        end = r.clock(window[1], "rules.call_window[1]")
        if start is not None and end is not None and start >= end:
            r.error("rules.call_window", "start must be before end")
    default = r.clock(ru.get("default_callback_time", "10:00"), "rules.default_callback_time")
    if default is not None and start is not None and end is not None and not start <= default < end:
        r.error("rules.default_callback_time", "must lie inside call_window")
    declines = r.number(ru, "max_declines", "rules", 2)
    asks = r.number(ru, "max_callback_asks", "rules", 2)
    if zone is None or start is None or end is None or default is None:
        return None
    return Rules(zone, start, end, default, declines, asks, max_attempts)

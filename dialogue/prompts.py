"""LLM prompts and spoken-text helpers.

``build_messages`` assembles one chat request, in this order (stable prefix first,
so vendor prompt caching can reuse it across turns):

1. the system prompt: persona plus the speaking rules (one or two short sentences,
   one question at a time, spoken style, numbers and rupees in words, no markdown,
   no lists, only the given facts);
2. the stage prompt from the playbook (what this stage is trying to achieve);
3. the product facts;
4. the history, trimmed to the playbook's bounds (newest kept);
5. what we know (collected slots, in words) and this turn's instruction.

``spoken_time`` says a callback time the way a person would ("tomorrow at 10 AM")
and ``rupees_in_words`` says an amount in the Indian system ("five lakh rupees").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from dialogue.model import Stage
from dialogue.playbook import Playbook

Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": text}

SPEAKING_RULES = (
    "This is a live phone call and your words are spoken aloud by a speech engine. "
    "Reply in one or two short sentences and ask at most one question at a time. "
    "Use a warm, natural spoken style in Indian English; if the caller speaks Hinglish, "
    "simple Hinglish is fine. Write every number and rupee amount in words "
    "(say 'five lakh rupees', not 'Rs 5,00,000'). No markdown, no lists, no emojis, "
    "no headings. Use only the facts given to you; if you do not know something, "
    "offer to send the details on WhatsApp. Never pressure the caller, and if they ask "
    "not to be called again, apologise and confirm that they will not be called. "
    "If asked whether you are a robot, say honestly that you are a virtual assistant."
)

_SLOT_NAMES = {
    "need": "their need",
    "budget_inr": "budget",
    "decision_maker": "decides themselves",
    "timeline": "when they plan to buy",
    "callback_at": "callback time",
}


def template_values(playbook: Playbook, lead: Mapping[str, str]) -> dict[str, str]:
    """The values of the common template variables for one call."""
    name = lead.get("name", "").strip() or playbook.persona.lead_name_fallback
    return {
        "lead_name": name,
        "agent_name": playbook.persona.agent_name,
        "company": playbook.persona.company,
        "product": playbook.product.name,
    }


def system_prompt(playbook: Playbook, values: Mapping[str, str]) -> str:
    persona = playbook.persona
    return (
        f"You are {persona.agent_name}, a friendly caller from {persona.company}, on an "
        f"outbound sales call with {values['lead_name']} about {playbook.product.name}: "
        f"{playbook.product.summary} {SPEAKING_RULES}"
    )


def trim_history(history: Sequence[Message], max_messages: int, max_chars: int) -> list[Message]:
    """The newest messages that fit both bounds, oldest first. The newest message is
    always kept, even alone over ``max_chars`` (the caller's last words matter most)."""
    kept: list[Message] = []
    used = 0
    for message in reversed(history):
        size = len(message["content"])
        if kept and (len(kept) >= max_messages or used + size > max_chars):
            break
        kept.append(message)
        used += size
    kept.reverse()
    return kept


def describe_slots(slots: Mapping[str, object], now: datetime) -> str:
    """Collected slots as one spoken-style line for the prompt ("" when none)."""
    parts: list[str] = []
    for key, value in slots.items():
        label = _SLOT_NAMES.get(key, key)
        if key == "budget_inr" and isinstance(value, int):
            text = rupees_in_words(value)
        elif isinstance(value, bool):
            text = "yes" if value else "no, someone else decides"
        elif isinstance(value, datetime):
            text = spoken_time(value, now)
        else:
            text = str(value).replace("_", " ")
        parts.append(f"{label}: {text}")
    return "; ".join(parts)


def build_messages(
    playbook: Playbook,
    stage: Stage,
    values: Mapping[str, str],
    history: Sequence[Message],
    slots: Mapping[str, object],
    instruction: str,
    now: datetime,
) -> tuple[Message, ...]:
    """One chat request for ``stage`` (see the module docstring for the order)."""
    plan = playbook.stages[stage]
    stage_goal = plan.prompt.render(values) if plan.prompt is not None else ""
    facts = " ".join(playbook.product.facts)
    known = describe_slots(slots, now)
    closing = f"Known about the caller so far: {known}. " if known else ""
    trimmed = trim_history(history, playbook.llm.max_history_messages,
                           playbook.llm.max_history_chars)
    return (
        {"role": "system", "content": system_prompt(playbook, values)},
        {"role": "system", "content": f"Current stage: {stage}. Goal: {stage_goal}"},
        {"role": "system", "content": f"Facts you may use: {facts}"},
        *({"role": m["role"], "content": m["content"]} for m in trimmed),
        {"role": "system", "content": f"{closing}Now: {instruction}"},
    )


_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_in_words(n: int) -> str:
    """A non-negative integer in words, Indian grouping ("one lakh twenty thousand")."""
    if n < 0:
        raise ValueError("negative amount")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else f"-{_ONES[ones]}")
    words: list[str] = []
    for size, name in ((10_000_000, "crore"), (100_000, "lakh"), (1_000, "thousand"),
                       (100, "hundred")):
        count, n = divmod(n, size)
        if count:
            words.append(f"{number_in_words(count)} {name}")
    if n:
        words.append(number_in_words(n))
    return " ".join(words)


def rupees_in_words(amount: int) -> str:
    return f"{number_in_words(amount)} rupee" + ("" if amount == 1 else "s")


_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]


def spoken_time(at: datetime, now: datetime) -> str:
    """``at`` as said on the phone relative to ``now`` (both aware; spoken in
    ``at``'s zone): "today at 6 PM", "tomorrow at 10:30 AM", "day after tomorrow
    at 11 AM", "on Friday at 5 PM" (within a week), else "on 3 December at 11 AM"."""
    local_now = now.astimezone(at.tzinfo)
    days = (at.date() - local_now.date()).days
    hour = at.hour % 12 or 12
    clock = f"{hour}" if at.minute == 0 else f"{hour}:{at.minute:02d}"
    clock += " AM" if at.hour < 12 else " PM"
    if days == 0:
        day = "today"
    elif days == 1:
        day = "tomorrow"
    elif days == 2:
        day = "day after tomorrow"
    elif 2 < days < 7:
        day = f"on {_WEEKDAYS[at.weekday()]}"
    else:
        day = f"on {at.day} {_MONTHS[at.month - 1]}"
    return f"{day} at {clock}"

"""Pure conversation logic: stages and transitions, analysis, templates, playbook,
prompts, sentence splitting and the cost model. No I/O; time is an argument."""

from dialogue.analysis import LLM_BELOW_CONFIDENCE, analyze
from dialogue.cost import CostBreakdown, Prices, Usage, call_cost
from dialogue.engine import Decision, LLMRequest, Template, decide, opening
from dialogue.exceptions import DialogueError, PlaybookError, PlaybookIssue
from dialogue.model import Analysis, Intent, Objection, Slots, Stage, Timeline
from dialogue.playbook import Playbook, check_playbook, load_playbook
from dialogue.splitter import SentenceSplitter
from dialogue.state import (
    CallState,
    new_call_state,
    record_bot_reply,
    record_caller,
    trim_bot_message,
    trim_last_bot_message,
)

__all__ = [
    "LLM_BELOW_CONFIDENCE",
    "Analysis",
    "CallState",
    "CostBreakdown",
    "Decision",
    "DialogueError",
    "Intent",
    "LLMRequest",
    "Objection",
    "Playbook",
    "PlaybookError",
    "PlaybookIssue",
    "Prices",
    "SentenceSplitter",
    "Slots",
    "Stage",
    "Template",
    "Timeline",
    "Usage",
    "analyze",
    "call_cost",
    "check_playbook",
    "decide",
    "load_playbook",
    "new_call_state",
    "opening",
    "record_bot_reply",
    "record_caller",
    "trim_bot_message",
    "trim_last_bot_message",
]

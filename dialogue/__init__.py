"""Pure conversation logic: stages and transitions, analysis, templates, playbook,
prompts, sentence splitting and the cost model. No I/O; time is an argument."""

from dialogue.model import Analysis, Intent, Objection, Slots, Stage, Timeline

__all__ = ["Analysis", "Intent", "Objection", "Slots", "Stage", "Timeline"]

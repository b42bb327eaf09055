"""Rules and classifier together: the intent of a turn and how likely it is right.

``combine`` settles the intent:

* a rule reading at or above ``RULE_TRUSTED`` (an explicit phrase: do-not-call,
  a callback, an objection with its reason, a yes/no answer, a plain fact…)
  stands;
* below it (a bare question opener, a hedge, a turn no rule recognised) the
  classifier's most probable intent wins.

The objection type is the rule's when a rule named one, else the classifier's
most probable type ("the rules only know it is an objection").

``score`` is a number in [0, 1] that orders turns by how likely the intent is
right: the mean of the classifier's probability of the chosen intent and — when
the rules chose the same intent — the rule's certainty. It is not yet a
probability; ``classifier.Calibration`` maps it to one (``Analysis.confidence``), with a
table fitted by ``bench.train_classifier`` on tuning turns the rules were never
tuned on (splits ``calib``, turns written after the rules' intent phrases were
last changed, and ``calib2``, written before issue 16's budget work and weighted
toward the turns the rules are half-sure of; the earlier calibration turns,
``calib0``, were looked at while widening the rules and are tuning data now),
using cross-validated classifier probabilities.

``LLM_BELOW_CONFIDENCE`` is the routing threshold: a turn whose confidence is
below it is worth the LLM's reading. It was chosen on the ``calib`` and
``calib2`` turns (cross-validated, as the calibration) by a fixed rule: the
lowest of 0.70, 0.75 … 0.95 at which the turns at or above it are at least
97.5 % right — 0.75, with 10.7 % of those turns below it and 97.6 % right at or
above it (``bench.train_classifier`` prints the table).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from dialogue.analysis.classifier import IntentProbabilities
from dialogue.analysis.intents import IntentMatch
from dialogue.model import Intent, Objection

__all__ = [
    "LLM_BELOW_CONFIDENCE",
    "Combined",
    "combine",
    "score",
]

#: Below this ``Analysis.confidence`` (the calibrated probability that the intent
#: is right) a turn is worth the LLM's reading.
LLM_BELOW_CONFIDENCE: Final = 0.75

RULE_TRUSTED: Final = 0.75


class Combined(NamedTuple):
    """The settled reading: intent, objection type and its uncalibrated score."""

    intent: Intent
    objection: Objection | None
    score: float


def score(intent: Intent, rule: IntentMatch, probs: IntentProbabilities) -> float:
    """How strongly the evidence backs ``intent`` (see the module docstring)."""
    agreeing_rule = rule.confidence if rule.intent is intent else 0.0
    return (probs.intents[intent] + agreeing_rule) / 2.0


def combine(rule: IntentMatch, probs: IntentProbabilities) -> Combined:
    """The intent and objection type of a turn (see the module docstring)."""
    intent = rule.intent if rule.confidence >= RULE_TRUSTED else probs.best()[0]
    objection: Objection | None = None
    if intent is Intent.OBJECTION:
        same = rule.intent is Intent.OBJECTION and rule.objection is not None
        objection = rule.objection if same else probs.best_objection()
    return Combined(intent, objection, score(intent, rule, probs))

"""Reading of one caller turn: ``analyze(text, stage, now)``.

Deterministic and sub-millisecond: every pattern is compiled at import, the
text is normalised once (``lexicon``), then the rule families run in turn:
intent and objection (``intents``), money (``money``), times (``when``),
sentiment, buying signals, authority and need (``signals``). A fallback
classifier (``classifier``: logistic regression over hashed n-grams, numpy
only) reads every turn too; ``confidence`` settles the intent from both and
gives its calibrated probability. ``reading`` puts it together. The slower LLM
reading and its merge rules live in ``llm_refine``.

Slots are filled only when stated:

* ``budget_inr`` — from any turn except a do-not-call or wrong-person turn;
  amounts next to a loan, a cover, a bill, a fee or a limit are not budgets.
* ``callback_at`` — only in a ``callback_request`` turn (in FOLLOW_UP_SCHEDULED,
  where the bot has asked when to call, a yes/other turn that names a time —
  "theek hai kal subah 10 baje" — is read as one), and only when ``now``
  is given: a relative time ("kal", "in 20 minutes") cannot be resolved
  without it, so with ``now=None`` the key is absent (and confidence is capped
  at 0.6 so the engine can ask again or let the LLM read it).
* ``timeline`` — from any turn that is not about the call itself (a callback
  request, busy, do-not-call, wrong person, greeting, backchannel): there the
  time phrases are about the call, not the purchase.
* ``decision_maker``, ``need`` — see ``signals``.

``confidence`` is the probability that the intent is right (calibrated on
tuning turns the rules were not tuned on). Below ``LLM_BELOW_CONFIDENCE`` the
turn is worth the LLM's reading, and ``llm_refine`` prefers the LLM's intent.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

from dialogue.analysis.classifier import ClassifierModel, load_model
from dialogue.analysis.confidence import LLM_BELOW_CONFIDENCE
from dialogue.analysis.lexicon import normalize
from dialogue.analysis.reading import read
from dialogue.model import Analysis, Stage

__all__ = ["LLM_BELOW_CONFIDENCE", "analyze", "classifier_model"]


@cache
def classifier_model() -> ClassifierModel:
    """The shipped classifier and calibration, loaded on first use."""
    return load_model()


def analyze(text: str, stage: Stage | None = None, now: datetime | None = None) -> Analysis:
    """Read one caller turn; see the package docstring for the rules.

    ``now`` must be timezone-aware when given (any zone; it is converted to
    Asia/Kolkata).
    """
    normal = normalize(text)
    model = classifier_model()
    return read(normal, stage, now, model.predict(normal.plain, stage), model.calibration)

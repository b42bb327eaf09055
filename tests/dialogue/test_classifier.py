"""The fallback classifier, its shipped artifact, the combination and the calibration."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

import dialogue
from bench import train_classifier
from dialogue import engine
from dialogue.analysis import classifier_model, llm_refine
from dialogue.analysis.classifier import (
    CLASSES,
    IntentProbabilities,
    feature_indices,
    probabilities_from_vector,
)
from dialogue.analysis.confidence import LLM_BELOW_CONFIDENCE, RULE_TRUSTED, combine
from dialogue.analysis.intents import IntentMatch
from dialogue.analysis.lexicon import normalize
from dialogue.model import Analysis, Intent, Objection, Stage

NOW = datetime(2026, 12, 3, 12, 15, tzinfo=ZoneInfo("Asia/Kolkata"))


def test_artifact_was_trained_on_the_current_data() -> None:
    """Fails when tests/data/utterances*.jsonl changed and the model was not
    retrained: run `python -m bench.train_classifier`."""
    files = train_classifier.data_files()
    assert [f.name for f in files] == [
        "utterances.jsonl", "utterances2.jsonl", "utterances3.jsonl", "utterances4.jsonl",
    ]
    assert classifier_model().data_sha256 == train_classifier.data_sha256(files)


@pytest.mark.slow
def test_training_is_deterministic_and_reproduces_the_artifact() -> None:
    turns = train_classifier.load_turns(train_classifier.data_files())
    x = train_classifier.design_matrix(turns)
    y = np.array([train_classifier.label(t) for t in turns])
    weights, bias = train_classifier.fitted_weights(x, y)
    model = classifier_model()
    # The artifact stores float16 weights.
    np.testing.assert_allclose(weights, model.weights, atol=2e-3, rtol=1e-2)
    np.testing.assert_allclose(bias, model.bias, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize(
    ("text", "stage", "expected"),
    [
        ("please remove my number from your list", Stage.INTRO, "do_not_call"),
        ("kal shaam ko call karna", None, "callback_request"),
        ("bahut mehenga hai", Stage.PRESENTATION, "objection:price"),
        ("boss se poochna padega", Stage.QUALIFICATION, "objection:authority"),
        ("wrong number", Stage.INTRO, "wrong_person"),
        ("namaste ji", Stage.INTRO, "greeting"),
        ("hmm", Stage.PRESENTATION, "backchannel"),
        ("kitna hai", None, "ask_price"),
    ],
)
def test_classifier_predicts_known_examples(text: str, stage: Stage | None,
                                            expected: str) -> None:
    model = classifier_model()
    logits = model.scores(normalize(text).plain, stage)
    assert CLASSES[int(np.argmax(logits))] == expected
    probs = model.predict(normalize(text).plain, stage)
    assert sum(probs.intents.values()) == pytest.approx(1.0)
    assert sum(probs.objections.values()) == pytest.approx(1.0)


def test_features_are_hashed_into_range_and_depend_on_the_stage() -> None:
    index, value = feature_indices("call me kal", Stage.INTRO, 14)
    again, _ = feature_indices("call me kal", Stage.INTRO, 14)
    other_stage, _ = feature_indices("call me kal", Stage.PRESENTATION, 14)
    assert index.min() >= 0
    assert index.max() < 1 << 14
    assert np.array_equal(index, again)
    assert np.array_equal(index[:-1], other_stage[:-1])
    assert index[-1] != other_stage[-1]
    assert np.all(np.abs(value) > 0)
    empty, _ = feature_indices("", None, 14)
    assert len(empty) >= 1  # the stage feature alone


def _probs(intent: Intent, objection: Objection | None = None) -> IntentProbabilities:
    vector = np.full(len(CLASSES), 0.01)
    name = intent.value if objection is None else f"objection:{objection.value}"
    vector[CLASSES.index(name)] = 1.0
    return probabilities_from_vector(vector / vector.sum())


def test_a_trusted_rule_stands_and_an_unsure_one_defers_to_the_classifier() -> None:
    trusted = IntentMatch(Intent.DO_NOT_CALL, None, 0.95)
    assert combine(trusted, _probs(Intent.CALLBACK_REQUEST)).intent is Intent.DO_NOT_CALL
    unsure = IntentMatch(Intent.QUESTION, None, RULE_TRUSTED - 0.15)
    assert combine(unsure, _probs(Intent.ASK_DETAILS)).intent is Intent.ASK_DETAILS
    agree = combine(IntentMatch(Intent.BUSY, None, 0.9), _probs(Intent.BUSY))
    differ = combine(IntentMatch(Intent.BUSY, None, 0.9), _probs(Intent.OTHER))
    assert agree.score > differ.score


def test_the_classifier_names_the_objection_the_rules_could_not() -> None:
    only_objection = IntentMatch(Intent.OBJECTION, None, 0.9)
    got = combine(only_objection, _probs(Intent.OBJECTION, Objection.TRUST))
    assert (got.intent, got.objection) == (Intent.OBJECTION, Objection.TRUST)
    typed = IntentMatch(Intent.OBJECTION, Objection.PRICE, 0.9)
    assert combine(typed, _probs(Intent.OBJECTION, Objection.TRUST)).objection is Objection.PRICE
    from_classifier = combine(IntentMatch(Intent.OTHER, None, 0.4),
                              _probs(Intent.OBJECTION, Objection.NO_NEED))
    assert from_classifier.objection is Objection.NO_NEED


def test_calibration_is_monotone_and_a_probability() -> None:
    calibration = classifier_model().calibration
    assert np.all(np.diff(calibration.scores) > 0)
    assert np.all(np.diff(calibration.accuracy) >= 0)
    assert 0.0 < calibration.accuracy[0] <= calibration.accuracy[-1] < 1.0
    grid = np.linspace(0.0, 1.0, 101)
    mapped = [calibration(float(s)) for s in grid]
    assert np.all(np.diff(mapped) >= 0)


def test_one_routing_threshold_everywhere() -> None:
    assert dialogue.LLM_BELOW_CONFIDENCE is LLM_BELOW_CONFIDENCE
    assert engine.LLM_BELOW_CONFIDENCE is LLM_BELOW_CONFIDENCE
    assert llm_refine.LLM_BELOW_CONFIDENCE is LLM_BELOW_CONFIDENCE
    rule = Analysis(Intent.OTHER, confidence=LLM_BELOW_CONFIDENCE - 0.01)
    merged = llm_refine.merge_llm_analysis(rule, {"intent": "busy"}, NOW)
    assert merged.intent is Intent.BUSY
    sure = Analysis(Intent.OTHER, confidence=LLM_BELOW_CONFIDENCE)
    assert llm_refine.merge_llm_analysis(sure, {"intent": "busy"}, NOW).intent is Intent.OTHER


def test_explicit_turns_are_confident_and_unknown_ones_are_not() -> None:
    assert dialogue.analyze("please don't call me again", Stage.INTRO).confidence >= (
        LLM_BELOW_CONFIDENCE)
    assert dialogue.analyze("the mango trees are flowering", Stage.DISCOVERY).confidence < (
        LLM_BELOW_CONFIDENCE)

"""``python -m bench.train_classifier``: fit the fallback classifier and its calibration.

Reads the labelled tuning data (``tests/data/utterances*.jsonl``; never the frozen
held-out split under ``tests/data/frozen/``) and writes
``dialogue/analysis/intent_model.npz``:

* the weights of a multinomial logistic regression (scikit-learn, L2, lbfgs) over
  the hashed features of ``dialogue.analysis.classifier.feature_indices``, one
  class per non-objection intent and per objection type;
* the calibration of ``dialogue.analysis.confidence.score``: 5-fold cross-validated
  class probabilities (seeded folds) go through ``dialogue.analysis.reading.read``
  exactly as at run time, and on the turns of the splits in ``CALIBRATION_SPLITS``
  — tuning turns the rules were never tuned on — the score is mapped to the
  observed accuracy by isotonic regression (pool-adjacent-violators), each pooled
  block smoothed as (right + 1) / (turns + 2). The splits are ``calib`` (309
  turns, mostly short and plain, written after the rules' last change before
  issue 16's budget work) and ``calib2`` (356 turns written from LABELS.md before
  that work, weighted toward the turns the rules are half-sure of: content-bearing
  yes/no, plain facts, hedges, busy without a callback, varied objections and
  "interested", wrong person). Alone, ``calib`` has almost no turns scoring in
  0.7–0.95 and so cannot say how often those turns are right; together the two
  cover the whole range;
* the sha256 of the data files, so ``tests/dialogue/test_classifier.py`` fails when
  the data changed and the model was not retrained.

Deterministic: fixed folds, a deterministic solver, sorted inputs. Needs the
``dev`` extra (scikit-learn); the run time needs numpy only.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from dialogue.analysis.classifier import (
    CLASSES,
    FEATURE_VERSION,
    feature_indices,
    probabilities_from_vector,
)
from dialogue.analysis.confidence import LLM_BELOW_CONFIDENCE
from dialogue.analysis.lexicon import normalize
from dialogue.analysis.reading import read
from dialogue.analysis.scoring import LabelledTurn, parse_labelled

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "tests" / "data"
ARTIFACT = ROOT / "dialogue" / "analysis" / "intent_model.npz"
BITS = 14
C = 30.0
FOLDS = 5
SEED = 0
CALIBRATION_SPLITS = ("calib", "calib2")
CANDIDATES = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
TARGET_ABOVE = 0.975


def data_files() -> list[Path]:
    """The tuning data, in a fixed order (the frozen split is in a subfolder)."""
    return sorted(DATA_DIR.glob("utterances*.jsonl"))


def data_sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_turns(files: list[Path]) -> list[LabelledTurn]:
    turns: list[LabelledTurn] = []
    for path in files:
        turns += parse_labelled(path.read_text(encoding="utf-8").splitlines())
    return turns


def label(turn: LabelledTurn) -> int:
    name = turn.intent.value if turn.objection is None else f"objection:{turn.objection.value}"
    return CLASSES.index(name)


def design_matrix(turns: list[LabelledTurn]) -> sp.csr_matrix:
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, turn in enumerate(turns):
        index, value = feature_indices(normalize(turn.text).plain, turn.stage, BITS)
        rows += [i] * len(index)
        cols += index.tolist()
        vals += value.tolist()
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(turns), 1 << BITS))


def fit(x: sp.csr_matrix, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=5000, tol=1e-6).fit(x, y)


def probabilities(model: LogisticRegression, x: sp.csr_matrix) -> np.ndarray:
    """Probabilities over all ``CLASSES`` (a class absent from training gets 0)."""
    out = np.zeros((x.shape[0], len(CLASSES)))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def fitted_weights(x: sp.csr_matrix, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights (buckets × ``CLASSES``) and biases of the model fitted on all turns."""
    model = fit(x, y)
    weights = np.zeros((1 << BITS, len(CLASSES)))
    weights[:, model.classes_] = model.coef_.T
    bias = np.full(len(CLASSES), -1e4)  # a class absent from the data is never predicted
    bias[model.classes_] = model.intercept_
    return weights, bias


def cross_validated(x: sp.csr_matrix, y: np.ndarray) -> np.ndarray:
    out = np.zeros((x.shape[0], len(CLASSES)))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    for train, test in folds.split(x, y):
        out[test] = probabilities(fit(x[train], y[train]), x[test])
    return out


def isotonic(scores: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: knots (mean score per block) and smoothed accuracy."""
    order = np.argsort(scores, kind="stable")
    blocks: list[list[float]] = []  # [score sum, right, count]
    for s, r in zip(scores[order], right[order], strict=True):
        blocks.append([float(s), float(r), 1.0])
        while len(blocks) > 1 and (
            blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]
        ):
            last = blocks.pop()
            blocks[-1] = [a + b for a, b in zip(blocks[-1], last, strict=True)]
    knots = np.array([b[0] / b[2] for b in blocks])
    accuracy = np.maximum.accumulate(np.array([(b[1] + 1) / (b[2] + 2) for b in blocks]))
    return knots, accuracy


def threshold_table(confidence: np.ndarray, right: np.ndarray) -> None:
    """Coverage and accuracy of the calibration turns at candidate thresholds, and
    the rule that picks ``LLM_BELOW_CONFIDENCE``: the lowest candidate at which
    the turns at or above it are at least ``TARGET_ABOVE`` right."""
    chosen = None
    print("threshold | turns below | right at/above")
    for threshold in CANDIDATES:
        above = confidence >= threshold
        share = 1.0 - above.mean()
        accuracy = right[above].mean() if above.any() else float("nan")
        print(f"{threshold:.2f} | {share:.1%} | {accuracy:.1%}")
        if chosen is None and accuracy >= TARGET_ABOVE:
            chosen = threshold
    print(f"rule: lowest threshold with >= {TARGET_ABOVE:.1%} right at/above: {chosen} "
          f"(shipped: LLM_BELOW_CONFIDENCE = {LLM_BELOW_CONFIDENCE})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_classifier", description=__doc__)
    parser.add_argument("--out", type=Path, default=ARTIFACT)
    args = parser.parse_args(argv)

    files = data_files()
    turns = load_turns(files)
    x, y = design_matrix(turns), np.array([label(t) for t in turns])
    weights, bias = fitted_weights(x, y)

    held = cross_validated(x, y)
    scores, right = [], []
    for turn, row in zip(turns, held, strict=True):
        if turn.split not in CALIBRATION_SPLITS:
            continue
        got = read(normalize(turn.text), turn.stage, turn.now, probabilities_from_vector(row),
                   lambda raw: raw)
        scores.append(got.confidence)
        right.append(got.intent is turn.intent)
    knots, accuracy = isotonic(np.array(scores), np.array(right, dtype=float))
    threshold_table(np.interp(scores, knots, accuracy), np.array(right))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        feature_version=np.int64(FEATURE_VERSION),
        bits=np.int64(BITS),
        classes=np.array(CLASSES),
        weights=weights.astype(np.float16),
        bias=bias.astype(np.float32),
        data_sha256=np.array(data_sha256(files)),
        calibration_scores=knots,
        calibration_accuracy=accuracy,
    )
    fitted = (held.argmax(axis=1) == y).mean()
    print(f"{len(turns)} turns from {', '.join(f.name for f in files)}; "
          f"cross-validated class accuracy {fitted:.3f}; "
          f"{len(scores)} calibration turns, {len(knots)} knots; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

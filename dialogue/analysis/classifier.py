"""The fallback classifier: multinomial logistic regression over hashed n-grams.

It reads a turn where the rules are unsure (see ``combine``). Trained offline by
``python -m bench.train_classifier`` on the labelled tuning data; the weights ship
in ``intent_model.npz`` next to this module together with the sha256 of the data
they were fitted on. Evaluation needs numpy alone.

Features of one turn, built from the ``plain`` normal form (``lexicon``):

* character 2–5-grams of ``" " + plain + " "`` (bytes of its UTF-8, so ``₹`` is
  a few bytes, which is harmless),
* word unigrams and bigrams,
* the stage (``None`` is its own value),

each hashed with CRC-32 (a different seed per kind) into ``2**bits`` buckets
with a sign bit, so collisions cancel rather than add up. Each kind is scaled by
``1/sqrt(count)`` so that long turns do not swamp the stage. The score of class
``k`` is ``bias[k] + sum(sign * scale * weights[bucket, k])`` — exactly the dot
product the trainer optimised, so training and run time agree by construction.

Classes are the intents other than ``objection`` plus one class per objection
type (``objection:price`` …): one softmax gives both the intent (an objection's
probability is the sum over its types) and the type.
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass
from importlib import resources
from typing import Final

import numpy as np
import numpy.typing as npt

from dialogue.model import Intent, Objection, Stage

__all__ = [
    "CLASSES",
    "Calibration",
    "ClassifierModel",
    "IntentProbabilities",
    "feature_indices",
    "load_model",
]

FEATURE_VERSION: Final = 1
_CHAR_ORDERS: Final = (2, 3, 4, 5)
_SEED_CHAR: Final = 0x51
_SEED_WORD: Final = 0x77
_SEED_BIGRAM: Final = 0x7B
_SEED_STAGE: Final = 0x53
_ARTIFACT: Final = "intent_model.npz"

#: Output classes, in the order of the weight matrix's columns.
CLASSES: Final[tuple[str, ...]] = (
    *(intent.value for intent in Intent if intent is not Intent.OBJECTION),
    *(f"objection:{kind.value}" for kind in Objection),
)


def feature_indices(
    plain: str, stage: Stage | None, bits: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Bucket indices and signed, scaled values of one turn's features.

    Repeated indices are allowed: the model's score is linear in the values.
    """
    mask = (1 << bits) - 1
    crc = zlib.crc32
    data = (" " + plain + " ").encode()
    hashes: list[int] = []
    scales: list[float] = []
    for n in _CHAR_ORDERS:
        for i in range(len(data) - n + 1):
            hashes.append(crc(data[i:i + n], _SEED_CHAR + n))
    char_count = len(hashes)
    if char_count:
        scales.extend([1.0 / math.sqrt(char_count)] * char_count)
    words = plain.encode().split()
    word_hashes = [crc(word, _SEED_WORD) for word in words]
    word_hashes += [crc(a + b" " + b, _SEED_BIGRAM) for a, b in itertools.pairwise(words)]
    if word_hashes:
        hashes.extend(word_hashes)
        scales.extend([1.0 / math.sqrt(len(word_hashes))] * len(word_hashes))
    hashes.append(crc((stage.value if stage is not None else "-").encode(), _SEED_STAGE))
    scales.append(1.0)
    raw = np.array(hashes, dtype=np.int64)
    signs = np.where((raw >> 31) & 1, -1.0, 1.0)
    return raw & mask, signs * np.array(scales)


@dataclass(frozen=True, slots=True)
class IntentProbabilities:
    """The classifier's reading of one turn."""

    intents: dict[Intent, float]  # sums to 1; objection = sum of its types
    objections: dict[Objection, float]  # P(type | objection), sums to 1

    def best(self) -> tuple[Intent, float]:
        intent = max(self.intents, key=self.intents.__getitem__)
        return intent, self.intents[intent]

    def best_objection(self) -> Objection:
        return max(self.objections, key=self.objections.__getitem__)


@dataclass(frozen=True, slots=True)
class Calibration:
    """A monotone map from ``score`` to the probability that the intent is right.

    ``scores`` are increasing knots and ``accuracy`` the fitted probability at
    each; between knots the map is linear, outside it is flat.
    """

    scores: npt.NDArray[np.float64]
    accuracy: npt.NDArray[np.float64]

    def __call__(self, value: float) -> float:
        return float(np.interp(value, self.scores, self.accuracy))


@dataclass(frozen=True, slots=True)
class ClassifierModel:
    """Weights (buckets × classes), biases, and the calibration of ``combine``'s score."""

    bits: int
    weights: npt.NDArray[np.float32]
    bias: npt.NDArray[np.float32]
    data_sha256: str
    calibration: Calibration

    def scores(self, plain: str, stage: Stage | None) -> npt.NDArray[np.float64]:
        """Raw class scores (logits), in ``CLASSES`` order."""
        index, value = feature_indices(plain, stage, self.bits)
        return np.asarray(value @ self.weights[index] + self.bias, dtype=np.float64)

    def predict(self, plain: str, stage: Stage | None) -> IntentProbabilities:
        logits = self.scores(plain, stage)
        exp = np.exp(logits - logits.max())
        probs = exp / exp.sum()
        return probabilities_from_vector(probs)


_OBJECTION_START: Final = len(Intent) - 1


def probabilities_from_vector(probs: npt.NDArray[np.float64]) -> IntentProbabilities:
    """Fold a probability vector over ``CLASSES`` into intents and objection types."""
    values = probs.tolist()
    intents = {Intent(name): values[i] for i, name in enumerate(CLASSES[:_OBJECTION_START])}
    types = values[_OBJECTION_START:]
    total = sum(types)
    intents[Intent.OBJECTION] = total
    objections = {
        kind: (p / total if total > 0 else 1.0 / len(types))
        for kind, p in zip(Objection, types, strict=True)
    }
    return IntentProbabilities(intents, objections)


def load_model() -> ClassifierModel:
    """The shipped model (read once by ``dialogue.analysis``)."""
    with resources.files("dialogue.analysis").joinpath(_ARTIFACT).open("rb") as stream:
        archive = np.load(stream, allow_pickle=False)
        if int(archive["feature_version"]) != FEATURE_VERSION:
            raise ValueError(f"{_ARTIFACT}: feature version {archive['feature_version']}")
        if tuple(str(c) for c in archive["classes"]) != CLASSES:
            raise ValueError(f"{_ARTIFACT}: classes differ from this code's")
        return ClassifierModel(
            bits=int(archive["bits"]),
            weights=archive["weights"].astype(np.float32),
            bias=archive["bias"].astype(np.float32),
            data_sha256=str(archive["data_sha256"]),
            calibration=Calibration(archive["calibration_scores"].astype(np.float64),
                                    archive["calibration_accuracy"].astype(np.float64)),
        )

"""Self-training: the model labels unlabelled news, and its confident labels become training rows.

The choice, kept simple: the teacher is a first pass of this same run (the same data, settings and
seed), calibrated on the dev split exactly as the model that ships is (``finsent.training.calibration``),
so "confident" means a calibrated probability, on the scale the registry's gate checks. It labels
the unlabelled pool; the texts whose top probability reaches ``train.self_training_threshold`` join
the labelled rows with loss weight ``train.self_training_weight``, and a second fine-tune starts again
from the base (after TAPT, if on), as a student trained on more rows, not the teacher nudged further.

Why not the registry's champion: training would then depend on the registry (a room above it), a
first run has none, and the benchmark that decides the switch (``bench/bench_recipe.py``) has no
champion either; a first pass is available everywhere and has seen exactly this run's labels. The cost
is a second fine-tune.

Leakage: the pool is built by ``finsent.data.prepare.unlabelled_pool``, which drops every copy of a
dev or test row before any model sees it; the dev split only calibrates the teacher and selects the
weights, as in every run.

Pure: probabilities in, rows out; ``finsent.training.train`` runs the two passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from finsent.vocabulary import LABELS


@dataclass(frozen=True)
class PseudoLabels:
    texts: list[str]
    labels: np.ndarray  # int64 class ids
    confidence: np.ndarray  # the top calibrated probability of each kept text
    candidates: int  # texts scored

    def summary(self) -> dict:
        counts = np.bincount(self.labels, minlength=len(LABELS)) if len(self.labels) else np.zeros(len(LABELS), dtype=int)
        return {
            "candidates": self.candidates,
            "pseudo_labelled": len(self.texts),
            "by_class": {name: int(counts[i]) for i, name in enumerate(LABELS)},
            "mean_confidence": float(self.confidence.mean()) if len(self.confidence) else None,
        }


def pseudo_label(texts: Sequence[str], probabilities: np.ndarray, threshold: float) -> PseudoLabels:
    """The texts whose top (calibrated) probability is at least ``threshold``, labelled with its class."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(texts), len(LABELS)):
        raise ValueError(f"pseudo_label: probabilities of shape {probabilities.shape} for {len(texts)} texts and {len(LABELS)} classes")
    confidence = probabilities.max(axis=1)
    keep = np.flatnonzero(confidence >= threshold)
    return PseudoLabels(
        texts=[texts[int(i)] for i in keep],
        labels=probabilities[keep].argmax(axis=1).astype(np.int64),
        confidence=confidence[keep],
        candidates=len(texts),
    )


def with_pseudo_rows(train: pd.DataFrame, pseudo: PseudoLabels, weight: float) -> tuple[pd.DataFrame, np.ndarray]:
    """The labelled rows followed by the pseudo-labelled ones (text, label), and each row's loss weight
    (1 for a label, ``weight`` for a pseudo-label)."""
    rows = pd.concat([train[["text", "label"]], pd.DataFrame({"text": pseudo.texts, "label": pseudo.labels})], ignore_index=True)
    weights = np.concatenate([np.ones(len(train)), np.full(len(pseudo.texts), weight)]).astype(np.float32)
    return rows, weights

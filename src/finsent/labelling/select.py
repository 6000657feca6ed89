"""Which texts to label next: pure strategies over the champion's outputs on the candidates.

Every strategy takes the candidates' row ids and the champion's view of them (class probabilities,
sentence embeddings), and returns the ``n`` ids it wants labelled, most wanted first, each with the
score that chose it:
- ``uncertainty``: the highest entropy of the probabilities (normalised by log 3, so 1 is a uniform
  guess): where the champion cannot tell the classes apart.
- ``margin``: the smallest gap between the two most likely classes: where it hesitates between two.
- ``diverse``: spread over the embedding space, so that one batch does not spend its labels on the
  same story told twenty ways. The rule: the ``n x diverse_pool_factor`` most uncertain candidates
  form the pool (diversity alone would pick outliers the champion is sure about); k-center greedy
  on their unit-length embeddings then starts from the most uncertain one and each time adds the
  candidate farthest from every one chosen so far. The score is that distance (for the first pick,
  its distance to the farthest pool member: the radius the pick covers).
- ``drifted``: what a domain classifier finds most unlike the training data: logistic regression on
  the champion's embeddings, training reference (0) against candidates (1), as the drift check's
  embedding signal does. Each candidate is scored by a classifier fitted on the other folds
  (cross-fitting), so a candidate's score never comes from a model that saw it; the score is the
  classifier's probability that the text is not training-like.
Equal scores are ordered by a seeded random permutation: a selection depends on its inputs and the
seed alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from finsent.config import LABEL_STRATEGIES, LabelParams
from finsent.errors import FinsentError


class SelectionError(FinsentError, ValueError):
    """The candidates cannot be ranked: misaligned inputs, too few rows for a strategy, an unknown strategy."""


@dataclass(frozen=True)
class Selection:
    strategy: str
    score_name: str  # what ``scores`` measure
    ids: np.ndarray  # the chosen candidates' row ids, most wanted first
    scores: np.ndarray  # the score that chose each, aligned with ``ids``


# --- scores ---------------------------------------------------------------------------------------


def entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of each row of class probabilities, divided by log(classes): 0 is certain, 1 uniform."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -terms.sum(axis=1) / math.log(probs.shape[1])


def margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of each row: 0 is a coin toss between two classes."""
    top = np.sort(np.asarray(probs, dtype=np.float64), axis=1)
    return top[:, -1] - top[:, -2]


def ranked(values: np.ndarray, n: int, seed: int, *, descending: bool) -> np.ndarray:
    """The positions of the ``n`` best values; equal values in a seeded random order."""
    tiebreak = np.random.default_rng(seed).permutation(len(values))
    primary = -np.asarray(values, dtype=np.float64) if descending else np.asarray(values, dtype=np.float64)
    return np.lexsort((tiebreak, primary))[:n]


def k_center_greedy(points: np.ndarray, n: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center: start at ``first``, then add the point farthest from all chosen so far.

    Returns the chosen positions in order and, for each, its distance to the nearest earlier choice
    (the first: its distance to the farthest point). Equal distances go to the lowest position.
    """
    points = np.asarray(points, dtype=np.float64)
    n = min(n, len(points))
    chosen = [int(first)]
    nearest = np.linalg.norm(points - points[first], axis=1)
    scores = [float(nearest.max())]
    while len(chosen) < n:
        nearest[chosen] = -1.0  # never again
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        scores.append(float(nearest[pick]))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[pick], axis=1))
    return np.asarray(chosen, dtype=np.int64), np.asarray(scores)


def domain_scores(reference: np.ndarray, candidates: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """For each candidate, the probability that it is a candidate, not a training text, from a logistic
    regression (standardised embeddings, balanced classes) fitted on the other folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    reference, candidates = np.asarray(reference), np.asarray(candidates)
    if reference.ndim != 2 or candidates.ndim != 2 or reference.shape[1] != candidates.shape[1]:
        raise SelectionError(f"reference embeddings {reference.shape} and candidate embeddings {candidates.shape} do not match")
    smaller = min(len(reference), len(candidates))
    if smaller < 2:
        raise SelectionError(
            f"drifted needs at least 2 training reference rows and 2 candidates; got {len(reference)} and {len(candidates)}"
        )
    x = np.concatenate([reference, candidates]).astype(np.float64)
    y = np.concatenate([np.zeros(len(reference), dtype=np.int64), np.ones(len(candidates), dtype=np.int64)])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))
    split = StratifiedKFold(n_splits=min(folds, smaller), shuffle=True, random_state=seed)
    probs = cross_val_predict(model, x, y, cv=split, method="predict_proba")
    return probs[len(reference) :, 1]


# --- strategies -----------------------------------------------------------------------------------


def _check(ids: np.ndarray, n: int, **aligned: np.ndarray | None) -> None:
    if n < 1:
        raise SelectionError(f"n must be >= 1, not {n}")
    for name, values in aligned.items():
        if values is not None and len(values) != len(ids):
            raise SelectionError(f"{len(values)} rows of {name} for {len(ids)} candidate ids")


def by_uncertainty(ids: np.ndarray, probs: np.ndarray, n: int, seed: int) -> Selection:
    _check(ids, n, probs=probs)
    scores = entropy(probs)
    rows = ranked(scores, n, seed, descending=True)
    return Selection("uncertainty", "entropy", np.asarray(ids)[rows], scores[rows])


def by_margin(ids: np.ndarray, probs: np.ndarray, n: int, seed: int) -> Selection:
    _check(ids, n, probs=probs)
    scores = margin(probs)
    rows = ranked(scores, n, seed, descending=False)
    return Selection("margin", "margin", np.asarray(ids)[rows], scores[rows])


def by_diversity(ids: np.ndarray, probs: np.ndarray, embeddings: np.ndarray, n: int, pool_factor: int, seed: int) -> Selection:
    _check(ids, n, probs=probs, embeddings=embeddings)
    pool = ranked(entropy(probs), n * pool_factor, seed, descending=True)  # most uncertain first
    vectors = np.asarray(embeddings, dtype=np.float64)[pool]
    vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    picks, scores = k_center_greedy(vectors, n, first=0)
    return Selection("diverse", "distance_to_nearest_pick", np.asarray(ids)[pool[picks]], scores)


def by_drift(ids: np.ndarray, embeddings: np.ndarray, reference_embeddings: np.ndarray, n: int, folds: int, seed: int) -> Selection:
    _check(ids, n, embeddings=embeddings)
    scores = domain_scores(reference_embeddings, embeddings, folds, seed)
    rows = ranked(scores, n, seed, descending=True)
    return Selection("drifted", "p_unlike_training", np.asarray(ids)[rows], scores[rows])


def choose(
    strategy: str,
    ids: np.ndarray,
    probs: np.ndarray,
    embeddings: np.ndarray | None,
    n: int,
    p: LabelParams,
    reference_embeddings: np.ndarray | None = None,
) -> Selection:
    """The ``n`` candidates (fewer when there are fewer) that ``strategy`` wants labelled."""
    if strategy not in LABEL_STRATEGIES:
        raise SelectionError(f"unknown strategy {strategy!r}; choose one of {', '.join(LABEL_STRATEGIES)}")
    if strategy == "uncertainty":
        return by_uncertainty(ids, probs, n, p.seed)
    if strategy == "margin":
        return by_margin(ids, probs, n, p.seed)
    if embeddings is None:
        raise SelectionError(f"{strategy} needs the champion's embeddings of the candidates")
    if strategy == "diverse":
        return by_diversity(ids, probs, embeddings, n, p.diverse_pool_factor, p.seed)
    if reference_embeddings is None:
        raise SelectionError("drifted needs the champion's embeddings of its training reference")
    return by_drift(ids, embeddings, reference_embeddings, n, p.drift_folds, p.seed)

"""Label-free performance estimation: how accurate the champion is on a window whose labels have not
arrived, with an interval.

Every method reads the champion's *calibrated* probabilities (``finsent.training.calibration``: the
scorer applies the calibration saved with the model) and returns a ``PerformanceEstimate``: estimated
accuracy and macro-F1, each with a ``level`` interval from seeded, bounded resampling draws.

- ``cbpe`` (confidence-based performance estimation, NannyML's CBPE): the window's expected confusion
  matrix, row r counting ``probs[r, i]`` towards (true i, predicted argmax). Expected accuracy is the mean
  top-class probability; macro-F1 comes from the expected matrix. Interval: labels drawn from the
  probabilities. Needs nothing but the window; exact when the probabilities are calibrated *on the window*,
  which a shift breaks (the champion's confidence barely moves when accuracy falls 11 points on other news).
- ``atc`` (average thresholded confidence, Garg et al. 2022): the threshold on the negative entropy of
  the probabilities above which the labelled reference has as many rows as it has correct ones; the
  window's share above it is its estimated accuracy. Reads confidence only through a rank, so an overall
  shrink of confidence under shift counts fully.
- ``importance_weighting``: the labelled reference (the champion's dev split, held out from training,
  with its outputs) re-weighted to look like the window. A logistic-regression domain classifier on the
  champion's sentence embeddings (the ones the drift signal uses) tells reference from window,
  cross-fitted so that no reference row is weighted by a classifier that saw it; its odds p/(1-p) (with
  balanced classes, the density ratio) are clipped at ``max_weight``. Accuracy and macro-F1 are the
  weighted ones of the reference; the interval draws ``effective rows`` (Kish: (sum w)^2 / sum w^2) rows in
  proportion to the weights. Does not read confidence at all, but cannot see a drop on text unlike any
  reference row (its effective rows then collapse, and its interval widens).
- ``doubly_robust``: CBPE on the window plus the importance-weighted calibration residual of the
  reference (actual minus expected confusion matrix, weighted to the window). Right when either part is
  right: calibration that holds where the window lies, or weights that describe the shift; in domain the
  residual is near zero and it is CBPE with the window's own rows.

``estimate_performance`` runs the methods ``EstimateParams.methods`` asks for and whose inputs exist
(no reference: only ``cbpe`` and the ones that need no reference), and names ``chosen``: the one the
retrain policy and the dashboard read. Pure: arrays in, estimates out; ``finsent.monitoring.run`` does the
I/O (the reference rows, the forward passes).

Why ``cbpe`` is ``estimate.chosen`` (``bench/bench_estimation.py`` on the calibrated MiniLM champion of
``make run``, test accuracy 0.870; ``bench/results/estimation_cpu.json``): it alone meets both goals. On 20
in-domain windows of 500 rows its mean absolute error is 0.013 (atc 0.029, doubly_robust 0.029,
importance_weighting 0.034, the raw mean confidence 0.039), and it reports at least half of every strong
drop: class-prior shifts (real drops 0.066 and 0.075: 0.72 of each) and the COVID slice (real drop 0.070:
1.18). Calibration is what makes it work: the raw mean confidence moves the wrong way on the prior shifts
(-0.37 and -0.41 of the drop). The reference-based methods also report every strong drop but err more in
domain, where their dev split (953 rows) is noisier than the window itself. On a stand-in whose
calibration held less well (the frozen encoder with a logistic head, ``estimation_cpu_probe.json``), atc
was the better choice: rerun the bench when the recipe or the encoder changes, and set ``estimate.chosen``
by what it shows. Left out: the EM prior adjustment of the probabilities (Saerens et al. 2002) fixed
class-prior shift on the stand-in (errors 0.00-0.06) but erred 0.08-0.13 on the form slices and 0.36 on
the held-out topic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from finsent.config import EstimateParams
from finsent.errors import FinsentError
from finsent.vocabulary import LABELS

N_CLASSES = len(LABELS)
# Resampling cells (draws x rows) per block: bounds the memory of a draw block (~4 bytes a cell for the
# drawn labels, three comparisons deep) whatever the window's size. 2,000 rows x 400 draws fits in two blocks.
MAX_DRAW_CELLS = 400_000
MAX_DRAW_CELLS_TOTAL = 8_000_000  # draws are cut to this many cells in all (a 40,000-row window: 200 draws)
MIN_DRAWS = 50
# The domain classifier: L2-regularised logistic regression on standardised embeddings, cross-fitted
# over DOMAIN_FOLDS folds. A weak C keeps the weights smooth: a classifier that separates reference
# from window row by row gives a few huge weights, not a better estimate.
DOMAIN_C = 0.05
DOMAIN_FOLDS = 5
MIN_REFERENCE_ROWS = 30  # fewer labelled reference rows: the reference-based methods are skipped (their intervals show the rest)
REFERENCE_METHODS = frozenset({"atc", "importance_weighting", "doubly_robust"})
EMBEDDING_METHODS = frozenset({"importance_weighting", "doubly_robust"})


class EstimationError(FinsentError, ValueError):
    """The inputs cannot be estimated from: probabilities that are not (rows, classes), misaligned arrays."""


@dataclass(frozen=True)
class PerformanceEstimate:
    """One method's estimate of a window's accuracy and macro-F1, each with its interval."""

    method: str
    estimated_accuracy: float
    accuracy_low: float
    accuracy_high: float
    estimated_macro_f1: float
    macro_f1_low: float
    macro_f1_high: float
    rows: int  # window rows it is about
    level: float  # the intervals' coverage
    reference_rows: int = 0  # labelled reference rows it read (0: none)
    effective_rows: float | None = None  # weighted reference: Kish's effective sample size

    @property
    def accuracy_interval_width(self) -> float:
        return self.accuracy_high - self.accuracy_low

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Reference:
    """Labelled rows held out from training, with the champion's outputs on them: the anchor of every
    method but ``cbpe``. ``embeddings`` (the drift signal's sentence embeddings) only for the weighted ones."""

    probs: np.ndarray  # calibrated, (rows, classes)
    labels: np.ndarray  # class ids, (rows,)
    embeddings: np.ndarray | None = None  # (rows, hidden)

    def __post_init__(self) -> None:
        probs = check_probs(self.probs, "reference probabilities")
        labels = np.asarray(self.labels)
        if labels.shape != (len(probs),) or (len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1])):
            raise EstimationError(f"reference labels must be {len(probs)} class ids in 0..{probs.shape[1] - 1}")
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "labels", labels.astype(np.int64))
        if self.embeddings is not None:
            embeddings = np.asarray(self.embeddings, dtype=np.float64)
            if embeddings.ndim != 2 or len(embeddings) != len(probs):
                raise EstimationError(f"reference embeddings must be ({len(probs)}, hidden), got {embeddings.shape}")
            object.__setattr__(self, "embeddings", embeddings)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Estimation:
    """Every method's estimate of one window, the one chosen, and what could not be computed."""

    estimates: dict[str, PerformanceEstimate]
    chosen: str | None
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why
    domain_auc: float | None = None  # how well the domain classifier told reference from window (0.5: alike)

    @property
    def chosen_estimate(self) -> PerformanceEstimate | None:
        return self.estimates.get(self.chosen) if self.chosen else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "methods": {name: e.to_dict() for name, e in self.estimates.items()},
            "skipped": dict(self.skipped),
            "domain_auc": None if self.domain_auc is None else round(self.domain_auc, 6),
            "note": "estimates from the champion's calibrated probabilities, not from labels",
        }


# --- confusion matrices ---------------------------------------------------------------------------


def check_probs(probs: Any, what: str = "probabilities") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise EstimationError(f"{what} must have shape (rows, classes >= 2), got {p.shape}")
    if not np.isfinite(p).all() or (p < -1e-9).any() or (len(p) and not np.allclose(p.sum(axis=1), 1.0, atol=1e-3)):
        raise EstimationError(f"{what} must be finite, non-negative and sum to 1 in each row")
    return np.clip(p, 0.0, None)


def one_hot(ids: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((len(ids), classes))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def confusion_fractions(actual: np.ndarray, predicted: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The (true i, predicted j) matrix of shares, summing to 1: row r adds ``actual[r, i]`` (a one-hot
    label, or probabilities: the expected matrix) at its predicted class, weighted by ``weights``."""
    w = np.ones(len(actual)) if weights is None else np.asarray(weights, dtype=np.float64)
    matrix = (actual * w[:, None]).T @ one_hot(predicted, actual.shape[1])
    total = matrix.sum()
    return matrix / total if total > 0 else matrix


def accuracy_of(matrices: np.ndarray) -> np.ndarray | float:
    """Accuracy of one (classes, classes) matrix, or of a stack (..., classes, classes)."""
    m = np.asarray(matrices, dtype=np.float64)
    total = m.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.trace(m, axis1=-2, axis2=-1) / total
    return float(out) if m.ndim == 2 else out


def macro_f1_of(matrices: np.ndarray) -> np.ndarray | float:
    """Macro-F1 of a confusion matrix (or a stack), over the classes that occur as truth or prediction
    (scikit-learn's ``f1_score(average="macro")`` on the same rows)."""
    m = np.asarray(matrices, dtype=np.float64)
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    denominator = m.sum(axis=-1) + m.sum(axis=-2)  # actual + predicted of each class
    present = denominator > 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2.0 * tp / np.where(present, denominator, 1.0), 0.0)
    out = f1.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)
    return float(out) if m.ndim == 2 else out


def realised(labels: np.ndarray, predicted: np.ndarray, classes: int = N_CLASSES) -> tuple[float, float]:
    """Accuracy and macro-F1 of predictions against labels (what the estimates estimate)."""
    matrix = confusion_fractions(one_hot(np.asarray(labels, dtype=np.int64), classes), np.asarray(predicted, dtype=np.int64))
    return float(accuracy_of(matrix)), float(macro_f1_of(matrix))


def mean_confidence(probs: np.ndarray) -> float:
    """The naive estimate: the mean top-class probability (CBPE's accuracy when ``probs`` are calibrated)."""
    return float(check_probs(probs).max(axis=1).mean())


# --- resampling -----------------------------------------------------------------------------------


def _draw_count(draws: int, rows: int) -> int:
    return max(MIN_DRAWS, min(draws, MAX_DRAW_CELLS_TOTAL // max(rows, 1)))


def _blocks(draws: int, rows: int) -> list[int]:
    per_block = max(1, MAX_DRAW_CELLS // max(rows, 1))
    return [min(per_block, draws - start) for start in range(0, draws, per_block)]


def sampled_label_matrices(probs: np.ndarray, predicted: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` confusion matrices (shares) of ``predicted`` against labels drawn from ``probs``."""
    n, k = probs.shape
    cumulative = np.cumsum(probs, axis=1)[:, :-1]
    out = []
    for size in _blocks(draws, n):
        u = rng.random((size, n, 1))
        labels = (u > cumulative[None, :, :]).sum(axis=2)  # inverse CDF: (size, n) class ids
        cells = (np.arange(size)[:, None] * k * k + labels * k + predicted[None, :]).ravel()
        out.append(np.bincount(cells, minlength=size * k * k).reshape(size, k, k) / max(n, 1))
    return np.concatenate(out) if out else np.zeros((0, k, k))


def resampled_rows(weights: np.ndarray, size: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` x ``size`` row indices drawn with replacement in proportion to ``weights``."""
    p = weights / weights.sum()
    return rng.choice(len(weights), size=(draws, size), replace=True, p=p)


def effective_rows(weights: np.ndarray) -> float:
    """Kish's effective sample size of weighted rows: (sum w)^2 / sum w^2."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum() ** 2 / (w**2).sum()) if (w > 0).any() else 0.0


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def _estimate(
    method: str, point: np.ndarray, draws: np.ndarray, rows: int, level: float, *, reference_rows: int = 0, ess: float | None = None
) -> PerformanceEstimate:
    """A ``PerformanceEstimate`` from a point confusion matrix and resampled ones; the interval always
    holds the point (a skewed resampling distribution must not leave it outside)."""
    acc, f1 = float(accuracy_of(point)), float(macro_f1_of(point))
    acc_low, acc_high = _interval(np.asarray(accuracy_of(draws)), level)
    f1_low, f1_high = _interval(np.asarray(macro_f1_of(draws)), level)
    return PerformanceEstimate(
        method=method,
        estimated_accuracy=acc,
        accuracy_low=min(acc_low, acc),
        accuracy_high=max(acc_high, acc),
        estimated_macro_f1=f1,
        macro_f1_low=min(f1_low, f1),
        macro_f1_high=max(f1_high, f1),
        rows=rows,
        level=level,
        reference_rows=reference_rows,
        effective_rows=ess,
    )


# --- the methods ----------------------------------------------------------------------------------


def cbpe(probs: np.ndarray, *, level: float = 0.9, draws: int = 400, seed: int = 0) -> PerformanceEstimate:
    """The expected confusion matrix of the window's calibrated probabilities; interval from labels drawn
    from them."""
    p = check_probs(probs)
    predicted = p.argmax(axis=1)
    rng = np.random.default_rng(seed)
    sampled = sampled_label_matrices(p, predicted, _draw_count(draws, len(p)), rng)
    return _estimate("cbpe", confusion_fractions(p, predicted), sampled, len(p), level)


def negative_entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1.0)
    return (p * np.log(p)).sum(axis=1)


def atc_threshold(reference: Reference) -> float:
    """The negative-entropy threshold above which the reference holds as many rows as it has correct."""
    score = negative_entropy(reference.probs)
    accuracy = float((reference.probs.argmax(axis=1) == reference.labels).mean())
    return float(np.quantile(score, 1.0 - accuracy))


def _atc_matrix(probs: np.ndarray, predicted: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Rows above the threshold count as correct; the others as wrong, their truth spread over the other
    classes by their probabilities (uniformly when the row gave them nothing)."""
    k = probs.shape[1]
    others = probs * (1.0 - one_hot(predicted, k))
    mass = others.sum(axis=1, keepdims=True)
    uniform = (1.0 - one_hot(predicted, k)) / (k - 1)
    wrong = np.where(mass > 1e-12, others / np.where(mass > 1e-12, mass, 1.0), uniform)
    actual = np.where(above[:, None], one_hot(predicted, k), wrong)
    return confusion_fractions(actual, predicted)


def atc(probs: np.ndarray, reference: Reference, *, level: float = 0.9, draws: int = 400, seed: int = 0) -> PerformanceEstimate:
    """Average thresholded confidence (negative entropy). Interval: each draw resamples the reference
    (so its threshold moves as a re-drawn dev split would move it) and the window's rows."""
    p = check_probs(probs)
    predicted = p.argmax(axis=1)
    score = negative_entropy(p)
    above = score >= atc_threshold(reference)
    ref_score = negative_entropy(reference.probs)
    ref_correct = reference.probs.argmax(axis=1) == reference.labels
    rng = np.random.default_rng(seed)
    n_draws = _draw_count(draws, max(len(p), len(reference)))
    ref_rows = resampled_rows(np.ones(len(reference)), len(reference), n_draws, rng)
    rows = resampled_rows(np.ones(len(p)), len(p), n_draws, rng)
    sampled = []
    for r, c in zip(ref_rows, rows, strict=True):
        threshold = np.quantile(ref_score[r], 1.0 - ref_correct[r].mean())
        sampled.append(_atc_matrix(p[c], predicted[c], score[c] >= threshold))
    return _estimate("atc", _atc_matrix(p, predicted, above), np.stack(sampled), len(p), level, reference_rows=len(reference))


@dataclass(frozen=True)
class DomainWeights:
    """Importance weights of the reference rows (mean 1) and how separable reference and window were."""

    weights: np.ndarray
    auc: float  # cross-fitted ROC AUC of the domain classifier
    clipped_share: float  # share of reference rows whose weight was clipped


def domain_weights(
    reference_embeddings: np.ndarray, current_embeddings: np.ndarray, *, max_weight: float = 20.0, seed: int = 0
) -> DomainWeights:
    """Weights that make the reference look like the window: the cross-fitted odds p/(1-p) of a
    class-balanced logistic regression telling window (1) from reference (0), clipped at ``max_weight``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ref = np.asarray(reference_embeddings, dtype=np.float64)
    cur = np.asarray(current_embeddings, dtype=np.float64)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        raise EstimationError(f"embeddings must be (rows, hidden) on both sides with one width, got {ref.shape} and {cur.shape}")
    folds = min(DOMAIN_FOLDS, len(ref), len(cur))
    if folds < 2:
        raise EstimationError(f"the domain classifier needs at least 2 rows a side, got {len(ref)} and {len(cur)}")
    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(len(ref), dtype=np.int64), np.ones(len(cur), dtype=np.int64)])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=DOMAIN_C, class_weight="balanced", max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    p_window = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    p_ref = np.clip(p_window[: len(ref)], 1e-9, 1 - 1e-9)
    odds = p_ref / (1.0 - p_ref)
    clipped = odds > max_weight
    weights = np.minimum(odds, max_weight)
    weights = weights / weights.mean()
    return DomainWeights(weights=weights, auc=float(roc_auc_score(y, p_window)), clipped_share=float(clipped.mean()))


def importance_weighted(
    reference: Reference, weights: np.ndarray, rows: int, *, level: float = 0.9, draws: int = 400, seed: int = 0
) -> PerformanceEstimate:
    """The reference's accuracy and macro-F1 under ``weights``; interval from drawing ``effective rows``
    reference rows in proportion to the weights."""
    w = _check_weights(weights, len(reference))
    predicted = reference.probs.argmax(axis=1)
    actual = one_hot(reference.labels, reference.probs.shape[1])
    ess = effective_rows(w)
    size = max(1, round(ess))
    rng = np.random.default_rng(seed)
    picks = resampled_rows(w, size, _draw_count(draws, size), rng)
    sampled = np.stack([confusion_fractions(actual[r], predicted[r]) for r in picks])
    point = confusion_fractions(actual, predicted, w)
    return _estimate("importance_weighting", point, sampled, rows, level, reference_rows=len(reference), ess=ess)


def doubly_robust(
    probs: np.ndarray, reference: Reference, weights: np.ndarray, *, level: float = 0.9, draws: int = 400, seed: int = 0
) -> PerformanceEstimate:
    """CBPE's expected matrix of the window plus the reference's weighted residual (actual minus expected
    matrix); interval from both resamplings added draw by draw."""
    p = check_probs(probs)
    w = _check_weights(weights, len(reference))
    predicted = p.argmax(axis=1)
    ref_predicted = reference.probs.argmax(axis=1)
    residual = one_hot(reference.labels, reference.probs.shape[1]) - reference.probs  # per row, at its predicted class
    point = _non_negative(confusion_fractions(p, predicted) + _residual_matrix(residual, ref_predicted, w))
    rng = np.random.default_rng(seed)
    ess = effective_rows(w)
    n_draws = _draw_count(draws, max(len(p), round(ess)))
    sampled_window = sampled_label_matrices(p, predicted, n_draws, rng)
    picks = resampled_rows(w, max(1, round(ess)), n_draws, rng)
    sampled_residual = np.stack([_residual_matrix(residual[r], ref_predicted[r], np.ones(len(r))) for r in picks])
    sampled = np.stack([_non_negative(m) for m in sampled_window + sampled_residual])
    return _estimate("doubly_robust", point, sampled, len(p), level, reference_rows=len(reference), ess=ess)


def _residual_matrix(residual: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted mean of each row's residual placed at its predicted class (sums to 0)."""
    return (residual * weights[:, None]).T @ one_hot(predicted, residual.shape[1]) / weights.sum()


def _non_negative(matrix: np.ndarray) -> np.ndarray:
    """A corrected matrix can dip below 0 in a rare cell; clipped, and the shares summed to 1 again."""
    clipped = np.clip(matrix, 0.0, None)
    total = clipped.sum()
    return clipped / total if total > 0 else clipped


def _check_weights(weights: np.ndarray, rows: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (rows,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise EstimationError(f"weights must be {rows} finite non-negative numbers, not all zero")
    return w


# --- all of them ----------------------------------------------------------------------------------


def estimate_performance(
    probs: np.ndarray,
    p: EstimateParams,
    *,
    reference: Reference | None = None,
    current_embeddings: np.ndarray | None = None,
    methods: Sequence[str] | None = None,
) -> Estimation:
    """The window's estimates by every method in ``methods`` (default ``p.methods``) whose inputs exist.

    ``probs``: the window's calibrated probabilities (all its rows). ``current_embeddings``: the sentence
    embeddings of the window (all rows or a random sample of them), for the weighted methods, with
    ``reference.embeddings``. ``chosen`` is ``p.chosen`` when it was computed, else ``cbpe`` when that was.
    """
    wanted = list(p.methods if methods is None else methods)
    window = check_probs(probs, "window probabilities")
    skipped: dict[str, str] = {}
    estimates: dict[str, PerformanceEstimate] = {}
    if len(window) < p.min_rows:
        return Estimation({}, None, {m: f"{len(window)} window rows (needs {p.min_rows})" for m in wanted})
    kwargs: dict[str, Any] = {"level": p.level, "draws": p.draws, "seed": p.seed}
    no_reference = None
    if reference is None:
        no_reference = "no labelled reference (the champion's dev split) available"
    elif len(reference) < MIN_REFERENCE_ROWS:
        no_reference = f"{len(reference)} labelled reference rows (needs {MIN_REFERENCE_ROWS})"
    no_embeddings = None
    if reference is not None and (reference.embeddings is None or current_embeddings is None):
        no_embeddings = "no champion embeddings of the reference and the window"
    weights: DomainWeights | None = None
    for method in wanted:
        if method in REFERENCE_METHODS and no_reference:
            skipped[method] = no_reference
            continue
        if method in EMBEDDING_METHODS and no_embeddings:
            skipped[method] = no_embeddings
            continue
        if method == "cbpe":
            estimates[method] = cbpe(window, **kwargs)
            continue
        assert reference is not None  # the reference-based methods were skipped without one
        if method == "atc":
            estimates[method] = atc(window, reference, **kwargs)
            continue
        if weights is None:
            assert reference.embeddings is not None and current_embeddings is not None
            weights = domain_weights(reference.embeddings, current_embeddings, max_weight=p.max_weight, seed=p.seed)
        if method == "importance_weighting":
            estimates[method] = importance_weighted(reference, weights.weights, len(window), **kwargs)
        elif method == "doubly_robust":
            estimates[method] = doubly_robust(window, reference, weights.weights, **kwargs)
    chosen = p.chosen if p.chosen in estimates else ("cbpe" if "cbpe" in estimates else None)
    return Estimation(estimates, chosen, skipped, weights.auc if weights is not None else None)

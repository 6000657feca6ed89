"""Promotion gate: may a newly registered version become champion?

Pure checks on predictions over the same frozen evaluation rows; no MLflow, no files. Each check
returns a ``CheckResult``; ``decide`` runs them and returns a ``GateDecision`` that the registry
records whatever the outcome.

With a champion, the challenger must pass the absolute floor, beat the champion under a paired test
(bootstrap CI of the macro-F1 gain, or McNemar on discordant rows), lose no class recall and no
slice beyond a tolerance, stay within the ECE bound and pass the behaviour floors. Without one, the
floor, ECE and behaviour checks alone decide. The probabilities judged are the ones the model serves
(``eval/predictions.csv``: after the calibration saved with it), so the ECE bound is the calibrated one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from finsent.config import EvaluateParams, GateParams
from finsent.errors import FinsentError
from finsent.evaluation.behaviour import TEST_TYPES, BehaviourResult
from finsent.evaluation.evaluate import expected_calibration_error, slice_masks
from finsent.vocabulary import LABELS

N_CLASSES = len(LABELS)
_BOOTSTRAP_CHUNK = 250  # resamples per vectorised step: bounds memory at chunk x rows indices


class GateError(FinsentError, ValueError):
    """The gate was given inputs it cannot judge (shapes, labels, missing rows)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    value: float | None  # the number compared with threshold
    threshold: float | None
    detail: str
    numbers: dict[str, float] = field(default_factory=dict)  # everything else worth recording


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    has_champion: bool
    checks: list[CheckResult]
    reasons: list[str]
    summary: dict[str, float]

    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def to_tags(self, prefix: str = "gate.", max_chars: int = 250) -> dict[str, str]:
        """Flat, short string tags for an MLflow model version; the full record is ``to_dict``."""
        tags = {
            f"{prefix}decision": "promoted" if self.promote else "rejected",
            f"{prefix}mode": "vs_champion" if self.has_champion else "first_model",
            f"{prefix}failed": ",".join(self.failed()) or "none",
            f"{prefix}reasons": _clip("; ".join(self.reasons), max_chars),
        }
        for tag, key in _HEADLINE_TAGS.items():
            if key in self.summary:
                tags[f"{prefix}{tag}"] = _fmt(self.summary[key])
        for check in self.checks:
            tags[f"{prefix}{check.name}"] = "pass" if check.passed else "fail"
            if check.value is not None:
                tags[f"{prefix}{check.name}.value"] = _fmt(check.value)
            if check.threshold is not None:
                tags[f"{prefix}{check.name}.threshold"] = _fmt(check.threshold)
        return tags


_HEADLINE_TAGS = {  # tag -> summary key: the numbers worth reading straight off a model version
    "macro_f1": "absolute_floor",
    "macro_f1_champion": "paired_gain.macro_f1_champion",
    "gain": "paired_gain.gain",
    "gain_ci_low": "paired_gain.ci_low",
    "gain_ci_high": "paired_gain.ci_high",
    "p_value": "paired_gain.p_value",
    "ece": "calibration",
}


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def _plain(obj: Any) -> Any:
    """numpy scalars and NaN out, so the record is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    return obj


# --- metrics from confusion counts (vectorised over bootstrap resamples) -----------------------


def _confusions(y_true: np.ndarray, y_pred: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Confusion matrices (k, C, C) for k row-index resamples ``rows`` (k, n)."""
    codes = y_true * N_CLASSES + y_pred
    k = rows.shape[0]
    flat = codes[rows] + (N_CLASSES * N_CLASSES) * np.arange(k)[:, None]
    return np.bincount(flat.ravel(), minlength=k * N_CLASSES * N_CLASSES).reshape(k, N_CLASSES, N_CLASSES)


def _macro_f1_from_confusions(cm: np.ndarray) -> np.ndarray:
    """Macro-F1 over all classes, 0 for a class with no true or predicted rows (sklearn's zero_division=0)."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    denominator = cm.sum(axis=-1) + cm.sum(axis=-2)  # 2TP + FP + FN
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return f1.mean(axis=-1)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(_macro_f1_from_confusions(_confusions(y_true, y_pred, np.arange(len(y_true))[None, :]))[0])


def class_recalls(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Recall per class; NaN for a class absent from ``y_true``."""
    out = {}
    for i, name in enumerate(LABELS):
        support = y_true == i
        out[name] = float((y_pred[support] == i).mean()) if support.any() else math.nan
    return out


def paired_bootstrap_gain(
    y_true: np.ndarray, pred_new: np.ndarray, pred_old: np.ndarray, samples: int, confidence: float, seed: int
) -> tuple[float, float, float]:
    """Macro-F1 gain (new - old) and its percentile CI, resampling the same row indices for both."""
    rng = np.random.default_rng(seed)
    n = len(y_true)
    diffs = np.empty(samples)
    for start in range(0, samples, _BOOTSTRAP_CHUNK):
        k = min(_BOOTSTRAP_CHUNK, samples - start)
        rows = rng.integers(0, n, size=(k, n))
        diffs[start : start + k] = _macro_f1_from_confusions(_confusions(y_true, pred_new, rows)) - _macro_f1_from_confusions(
            _confusions(y_true, pred_old, rows)
        )
    alpha = 1.0 - confidence
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return macro_f1(y_true, pred_new) - macro_f1(y_true, pred_old), float(low), float(high)


# --- the checks ---------------------------------------------------------------------------------


def check_absolute_floor(y_true: np.ndarray, pred: np.ndarray, p: GateParams) -> CheckResult:
    score = macro_f1(y_true, pred)
    passed = score >= p.min_macro_f1
    detail = f"macro-F1 {score:.4f} {'>=' if passed else '<'} floor {p.min_macro_f1:.4f}"
    return CheckResult("absolute_floor", passed, score, p.min_macro_f1, detail)


def check_paired_gain(y_true: np.ndarray, pred_new: np.ndarray, pred_old: np.ndarray, p: GateParams) -> CheckResult:
    """The challenger's macro-F1 gain must hold up under a paired test on the same rows.

    bootstrap: the lower bound of the two-sided ``confidence`` CI of the gain must exceed ``min_gain``.
    mcnemar: the exact one-sided McNemar test on discordant rows (challenger right and champion wrong,
    vs the reverse) must reject at (1 - confidence) / 2, the same level as the bootstrap's lower
    bound, and the macro-F1 gain itself must exceed ``min_gain`` (McNemar judges accuracy only).
    """
    new_right, old_right = pred_new == y_true, pred_old == y_true
    wins, losses = int((new_right & ~old_right).sum()), int((~new_right & old_right).sum())
    numbers = {"macro_f1_challenger": macro_f1(y_true, pred_new), "macro_f1_champion": macro_f1(y_true, pred_old)}
    numbers.update(gain=numbers["macro_f1_challenger"] - numbers["macro_f1_champion"], wins=wins, losses=losses)
    pct = f"{p.confidence:.0%}"
    if p.test == "bootstrap":
        gain, low, high = paired_bootstrap_gain(y_true, pred_new, pred_old, p.bootstrap_samples, p.confidence, p.seed)
        numbers.update(ci_low=low, ci_high=high)
        passed = low > p.min_gain
        detail = (
            f"macro-F1 gain {gain:+.4f}, {pct} paired bootstrap CI [{low:+.4f}, {high:+.4f}] "
            f"({p.bootstrap_samples} resamples); lower bound {'>' if passed else '<='} {p.min_gain}"
        )
        return CheckResult("paired_gain", passed, low, p.min_gain, detail, numbers)
    alpha = (1.0 - p.confidence) / 2
    p_value = binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue if wins + losses else 1.0
    numbers["p_value"] = float(p_value)
    passed = p_value < alpha and numbers["gain"] > p.min_gain
    detail = (
        f"McNemar exact: challenger right/champion wrong on {wins} rows, the reverse on {losses}; "
        f"one-sided p {p_value:.4g} {'<' if p_value < alpha else '>='} {alpha:.4g}; "
        f"macro-F1 gain {numbers['gain']:+.4f} {'>' if numbers['gain'] > p.min_gain else '<='} {p.min_gain}"
    )
    return CheckResult("paired_gain", passed, float(p_value), alpha, detail, numbers)


def check_class_recall(y_true: np.ndarray, pred_new: np.ndarray, pred_old: np.ndarray, p: GateParams) -> CheckResult:
    new, old = class_recalls(y_true, pred_new), class_recalls(y_true, pred_old)
    drops = {name: old[name] - new[name] for name in LABELS if not math.isnan(old[name])}
    worst = max(drops, key=drops.__getitem__)
    over = [f"{name} {old[name]:.3f}->{new[name]:.3f}" for name, d in drops.items() if d > p.max_recall_drop]
    numbers = {f"recall_{name}_challenger": new[name] for name in LABELS}
    numbers.update({f"recall_{name}_champion": old[name] for name in LABELS})
    detail = (
        f"recall dropped beyond {p.max_recall_drop} for {', '.join(over)}"
        if over
        else f"worst recall change {-drops[worst]:+.4f} ({worst}), allowed drop {p.max_recall_drop}"
    )
    return CheckResult("class_recall", not over, drops[worst], p.max_recall_drop, detail, numbers)


def check_slices(
    y_true: np.ndarray,
    pred_new: np.ndarray,
    pred_old: np.ndarray,
    texts: pd.Series,
    p: GateParams,
    eval_params: EvaluateParams,
) -> CheckResult:
    """Macro-F1 on each slice (cashtag, URL, length); slices under ``min_slice_rows`` rows do not gate."""
    numbers: dict[str, float] = {}
    gating_drops: dict[str, float] = {}
    small = []
    for name, mask in slice_masks(texts.reset_index(drop=True), eval_params).items():
        rows = int(mask.sum())
        if rows == 0:
            continue
        new, old = macro_f1(y_true[mask], pred_new[mask]), macro_f1(y_true[mask], pred_old[mask])
        numbers.update({f"{name}_rows": rows, f"{name}_challenger": new, f"{name}_champion": old})
        if rows >= p.min_slice_rows:
            gating_drops[name] = old - new
        else:
            small.append(f"{name} ({rows} rows, change {new - old:+.3f})")
    note = f"; not gating: {', '.join(small)}" if small else ""
    if not gating_drops:
        return CheckResult("slices", True, None, p.max_slice_drop, f"no slice has {p.min_slice_rows}+ rows{note}", numbers)
    worst = max(gating_drops, key=gating_drops.__getitem__)
    over = [f"{name} {-d:+.3f}" for name, d in gating_drops.items() if d > p.max_slice_drop]
    detail = (
        f"slice macro-F1 dropped beyond {p.max_slice_drop}: {', '.join(over)}{note}"
        if over
        else f"worst slice macro-F1 change {-gating_drops[worst]:+.4f} ({worst}), allowed drop {p.max_slice_drop}{note}"
    )
    return CheckResult("slices", not over, gating_drops[worst], p.max_slice_drop, detail, numbers)


def check_calibration(y_true: np.ndarray, probs: np.ndarray, p: GateParams, eval_params: EvaluateParams) -> CheckResult:
    ece, _ = expected_calibration_error(y_true, probs, eval_params.calibration_bins)
    passed = ece <= p.max_ece
    return CheckResult("calibration", passed, ece, p.max_ece, f"ECE {ece:.4f} {'<=' if passed else '>'} bound {p.max_ece}", {"ece": ece})


def check_behaviour(result: BehaviourResult, p: GateParams) -> list[CheckResult]:
    """One check per test type of the behaviour suite, each against its pass-rate floor."""
    checks = []
    for kind in TEST_TYPES:
        floor = p.behaviour_floors[kind]
        rate = result.pass_rates.get(kind)
        counts = result.counts.get(kind, {})
        if rate is None or not counts.get("total"):
            checks.append(CheckResult(f"behaviour_{kind}", False, None, floor, f"no {kind} cases were run"))
            continue
        passed = rate >= floor
        detail = f"{kind} pass rate {rate:.3f} ({counts['passed']}/{counts['total']}) {'>=' if passed else '<'} floor {floor}"
        checks.append(CheckResult(f"behaviour_{kind}", passed, rate, floor, detail))
    return checks


# --- the decision ------------------------------------------------------------------------------


def _as_probs(probs: Any, n: int, who: str) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, N_CLASSES):
        raise GateError(f"{who} probabilities have shape {probs.shape}, expected ({n}, {N_CLASSES})")
    if not np.isfinite(probs).all():
        raise GateError(f"{who} probabilities hold NaN or inf")
    return probs


def decide(
    y_true: Any,
    probs_challenger: Any,
    probs_champion: Any | None,
    texts: Sequence[str] | pd.Series,
    behaviour_result: BehaviourResult,
    p: GateParams,
    eval_params: EvaluateParams,
) -> GateDecision:
    """Run every check on the same evaluation rows and promote only if all of them pass."""
    y_true = np.asarray(y_true)
    if y_true.ndim != 1 or len(y_true) == 0:
        raise GateError(f"y_true must be a non-empty 1-d array of labels, got shape {y_true.shape}")
    if not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0 or y_true.max() >= N_CLASSES:
        raise GateError(f"y_true must hold integer labels 0..{N_CLASSES - 1} (no unknown -1 rows in the evaluation set)")
    n = len(y_true)
    texts = pd.Series(list(texts), dtype=object)
    if len(texts) != n:
        raise GateError(f"{len(texts)} texts for {n} labels: the gate needs the evaluation rows in the same order")
    challenger = _as_probs(probs_challenger, n, "challenger")
    pred_new = challenger.argmax(axis=1)

    checks = [check_absolute_floor(y_true, pred_new, p)]
    if probs_champion is not None:
        pred_old = _as_probs(probs_champion, n, "champion").argmax(axis=1)
        checks += [
            check_paired_gain(y_true, pred_new, pred_old, p),
            check_class_recall(y_true, pred_new, pred_old, p),
            check_slices(y_true, pred_new, pred_old, texts, p, eval_params),
        ]
    checks.append(check_calibration(y_true, challenger, p, eval_params))
    checks += check_behaviour(behaviour_result, p)

    promote = all(c.passed for c in checks)
    failed = [c for c in checks if not c.passed]
    reasons = [f"{c.name}: {c.detail}" for c in (checks if promote else failed)]
    summary: dict[str, float] = {"rows": n}
    for c in checks:
        if c.value is not None:
            summary[c.name] = c.value
        summary.update({f"{c.name}.{k}": v for k, v in c.numbers.items()})
    summary.update({f"behaviour_mft_{name}": rate for name, rate in behaviour_result.class_pass_rates.items()})
    return GateDecision(promote=promote, has_champion=probs_champion is not None, checks=checks, reasons=reasons, summary=summary)

"""Evaluation: metrics, calibration and slices from predicted probabilities.

The metric functions are pure (arrays in, numbers out); ``run`` scores a saved model on the
evaluation frame and writes ``metrics.json``, ``predictions.csv`` and the plots.

Every number is of what the model serves: the probabilities after the calibration saved with it
(``finsent.training.calibration``). ``ece_uncalibrated`` and ``nll_uncalibrated`` are the raw
softmax's, so a report shows what calibration gained on the test set; the reliability figure draws
both curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from finsent.config import EvaluateParams, TrainParams
from finsent.data.frames import read_dataset
from finsent.evaluation.behaviour import BEHAVIOUR_FILE, run_suite
from finsent.files import write_json
from finsent.training.calibration import IDENTITY, Calibration
from finsent.training.score import Scorer
from finsent.vocabulary import CASHTAG, LABELS, PROBABILITY_COLUMNS, URL


@dataclass(frozen=True)
class EvalSummary:
    out_dir: str
    rows: int
    accuracy: float
    macro_f1: float
    ece: float  # of the calibrated probabilities the model serves
    ece_uncalibrated: float | None = None  # of its raw softmax
    calibration: str = "none"  # the kind saved with the model: none | temperature | vector


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> tuple[float, list[dict]]:
    """Top-label ECE with equal-width confidence bins, and the bins for a reliability plot."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        if not in_bin.any():
            continue
        acc, conf = float(correct[in_bin].mean()), float(confidence[in_bin].mean())
        ece += in_bin.mean() * abs(acc - conf)
        bins.append({"lo": float(lo), "hi": float(hi), "count": int(in_bin.sum()), "accuracy": acc, "confidence": conf})
    return float(ece), bins


def log_loss(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at 1e-12)."""
    picked = np.asarray(probs, dtype=np.float64)[np.arange(len(y_true)), y_true]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()) if len(y_true) else float("nan")


def slice_masks(texts: pd.Series, p: EvaluateParams) -> dict[str, np.ndarray]:
    lengths = texts.str.len().to_numpy()
    return {
        "has_cashtag": (texts.str.count(CASHTAG) > 0).to_numpy(),
        "no_cashtag": (texts.str.count(CASHTAG) == 0).to_numpy(),
        "has_url": texts.str.contains(URL).to_numpy(),
        "no_url": ~texts.str.contains(URL).to_numpy(),
        "short": lengths < p.short_text_chars,
        "medium": (lengths >= p.short_text_chars) & (lengths <= p.long_text_chars),
        "long": lengths > p.long_text_chars,
    }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    labels = list(range(len(LABELS)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(LABELS)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def compute_metrics(
    y_true: np.ndarray, probs: np.ndarray, texts: pd.Series, p: EvaluateParams, probs_uncalibrated: np.ndarray | None = None
) -> dict:
    """The metrics of ``probs`` (what the model serves); with ``probs_uncalibrated`` (its raw softmax),
    also their ECE, reliability bins and NLL under ``*_uncalibrated`` keys."""
    y_pred = probs.argmax(axis=1)
    metrics = classification_metrics(y_true, y_pred)
    metrics["ece"], metrics["reliability"] = expected_calibration_error(y_true, probs, p.calibration_bins)
    metrics["nll"] = log_loss(y_true, probs)
    if probs_uncalibrated is not None:
        ece, bins = expected_calibration_error(y_true, probs_uncalibrated, p.calibration_bins)
        metrics["ece_uncalibrated"], metrics["reliability_uncalibrated"] = ece, bins
        metrics["nll_uncalibrated"] = log_loss(y_true, probs_uncalibrated)
    metrics["slices"] = {}
    for name, mask in slice_masks(texts.reset_index(drop=True), p).items():
        if mask.sum() == 0:
            continue
        m = classification_metrics(y_true[mask], y_pred[mask])
        metrics["slices"][name] = {"rows": int(mask.sum()), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    metrics["rows"] = int(len(y_true))
    return metrics


def flat_metrics(metrics: dict) -> dict[str, float]:
    """The scalar metrics with MLflow-friendly names (per_class.bearish.recall -> recall_bearish)."""
    flat = {k: float(metrics[k]) for k in ("accuracy", "macro_f1", "weighted_f1", "ece")}
    flat.update({k: float(metrics[k]) for k in ("nll", "ece_uncalibrated", "nll_uncalibrated") if k in metrics})
    for name, m in metrics["per_class"].items():
        for key in ("precision", "recall", "f1"):
            flat[f"{key}_{name}"] = m[key]
    for name, m in metrics["slices"].items():
        flat[f"slice_{name}_macro_f1"] = m["macro_f1"]
        flat[f"slice_{name}_accuracy"] = m["accuracy"]
    return flat


def plot_confusion_matrix(matrix: list[list[int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_reliability(
    bins: list[dict], ece: float, path: Path, bins_uncalibrated: list[dict] | None = None, ece_uncalibrated: float | None = None
) -> None:
    """The reliability curve of the served probabilities and, when given, of the raw softmax beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    curves = [(bins, f"calibrated (ECE {ece:.3f})" if bins_uncalibrated is not None else "model", "o-")]
    if bins_uncalibrated is not None:
        curves.insert(0, (bins_uncalibrated, f"uncalibrated (ECE {ece_uncalibrated:.3f})", "s--"))
    for curve, label, style in curves:
        if curve:
            ax.plot([b["confidence"] for b in curve], [b["accuracy"] for b in curve], style, label=label)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    title = f"Reliability (ECE {ece:.3f})"
    if ece_uncalibrated is not None:
        title = f"Reliability (ECE {ece_uncalibrated:.3f} -> {ece:.3f})"
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(p: EvaluateParams, model_dir: str | Path, eval_path: str | Path, out_dir: str | Path, train_params: TrainParams) -> EvalSummary:
    """Score the prepared evaluation CSV with the model in ``model_dir``; write metrics, predictions,
    plots and the behaviour suite's result (``behaviour.json``, which the register stage gates on) to
    ``out_dir``. The model is loaded once for both."""
    eval_df = read_dataset(eval_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scorer = Scorer.from_dir(model_dir, max_length=train_params.max_length, batch_size=p.batch_size, device=train_params.device)
    calibration: Calibration = scorer.calibration
    logits = scorer.predict_logits(eval_df["text"].tolist())  # one forward pass for both
    probs = calibration.probabilities(logits).astype(np.float32)  # what Scorer.predict_proba serves
    y_true = eval_df["label"].to_numpy(dtype=np.int64)
    metrics = compute_metrics(y_true, probs, eval_df["text"], p, probs_uncalibrated=IDENTITY.probabilities(logits))
    metrics["calibration"] = calibration.to_dict()
    write_json(out_dir / "metrics.json", metrics)
    predictions = pd.DataFrame(probs, columns=list(PROBABILITY_COLUMNS))
    predictions.insert(0, "label", y_true)
    predictions.insert(1, "predicted", probs.argmax(axis=1))
    predictions.to_csv(out_dir / "predictions.csv", index=False)
    plot_confusion_matrix(metrics["confusion_matrix"], out_dir / "confusion_matrix.png")
    plot_reliability(
        metrics["reliability"],
        metrics["ece"],
        out_dir / "reliability.png",
        metrics["reliability_uncalibrated"],
        metrics["ece_uncalibrated"],
    )
    write_json(out_dir / BEHAVIOUR_FILE, run_suite(scorer.predict_proba).to_dict())
    return EvalSummary(
        out_dir=str(out_dir),
        rows=len(y_true),
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        ece=metrics["ece"],
        ece_uncalibrated=metrics["ece_uncalibrated"],
        calibration=calibration.kind,
    )

"""The test metrics as markdown, from the dict evaluate writes as eval/metrics.json."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsent.config import EvaluateParams
from finsent.evaluation.evaluate import compute_metrics
from finsent.evaluation.markdown import metrics_markdown, per_class_rows


def metrics() -> dict:
    rng = np.random.default_rng(0)
    y_true = rng.choice(3, size=300)
    probs = rng.dirichlet([1, 1, 1], size=300)
    probs[np.arange(200), y_true[:200]] += 2  # mostly right
    probs /= probs.sum(axis=1, keepdims=True)
    texts = pd.Series([f"$AAPL row {i}" for i in range(300)])
    return compute_metrics(y_true, probs, texts, EvaluateParams())


def test_headline_and_one_row_per_class():
    m = metrics()
    text = metrics_markdown(m, dev_macro_f1=0.71234)
    assert f"| macro-F1 | {m['macro_f1']:.4g} |" in text
    assert f"| accuracy | {m['accuracy']:.4g} |" in text
    assert f"| ECE (calibration error) | {m['ece']:.4g} |" in text
    assert "| dev macro-F1 (weights kept) | 0.7123 |" in text
    assert "| test rows | 300 |" in text
    bearish = m["per_class"]["bearish"]
    row = f"| bearish | {bearish['precision']:.4g} | {bearish['recall']:.4g} | {bearish['f1']:.4g} | {bearish['support']} |"
    assert row in text
    assert [r[0] for r in per_class_rows(m)] == ["bearish", "bullish", "neutral"]


def test_no_dev_split_and_missing_keys_are_shown_not_raised():
    text = metrics_markdown({"macro_f1": 0.5})
    assert "dev macro-F1" not in text
    assert "| accuracy | n/a |" in text
    assert "Per class" not in text


def test_ece_before_calibration_and_the_calibration_are_shown():
    m = metrics() | {"ece_uncalibrated": 0.0531, "calibration": {"kind": "temperature", "temperature": 1.8}}
    text = metrics_markdown(m)
    assert "| ECE before calibration | 0.0531 |" in text
    assert "| calibration (fitted on dev) | temperature scaling (T = 1.800) |" in text
    assert "| ECE before calibration | n/a |" in metrics_markdown({"ece": 0.02})  # a run from before calibration

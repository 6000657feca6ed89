import json

import numpy as np
import pandas as pd
import pytest

from finsent.config import EvaluateParams, TrainParams
from finsent.evaluation.evaluate import compute_metrics, expected_calibration_error, flat_metrics, run


def test_ece_zero_when_confidence_matches_accuracy():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]])
    ece, bins = expected_calibration_error(y, probs, 10)
    assert ece == pytest.approx(0.0)
    overconfident = np.array([[0.9, 0.05, 0.05]] * 4)  # always bearish at 0.9, right half the time
    ece, _ = expected_calibration_error(y, overconfident, 10)
    assert ece == pytest.approx(0.4)


def test_metrics_slices_and_flat_names():
    texts = pd.Series(
        ["$AAPL up https://t.co/x", "stocks fall", "meeting today at noon for the board of the company to vote", "$TSLA down"]
    )
    y = np.array([1, 0, 2, 0])
    probs = np.eye(3)[[1, 0, 2, 1]] * 0.8 + 0.2 / 3
    m = compute_metrics(y, probs, texts, EvaluateParams(short_text_chars=20, long_text_chars=50))
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["confusion_matrix"][0] == [1, 1, 0]
    assert m["slices"]["has_cashtag"]["rows"] == 2
    assert m["slices"]["has_url"]["rows"] == 1
    assert m["slices"]["long"]["rows"] == 1
    flat = flat_metrics(m)
    assert {"macro_f1", "recall_bearish", "slice_has_cashtag_macro_f1", "ece"} <= set(flat)


def test_run_writes_metrics_predictions_and_plots(tiny_model_dir, tmp_path, tfns_valid):
    eval_df = tfns_valid.sample(60, random_state=0)
    eval_df.to_csv(tmp_path / "eval.csv", index=False)
    summary = run(EvaluateParams(), tiny_model_dir, tmp_path / "eval.csv", tmp_path / "eval", TrainParams())
    out = tmp_path / "eval"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == 60 == summary.rows
    predictions = pd.read_csv(out / "predictions.csv")
    assert np.allclose(predictions[["p_bearish", "p_bullish", "p_neutral"]].sum(axis=1), 1.0, atol=1e-5)
    for png in ("confusion_matrix.png", "reliability.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_run_reports_the_served_calibrated_probabilities_and_the_raw_ones(tiny_model_dir, tmp_path, tfns_valid):
    import shutil

    from finsent.training.calibration import IDENTITY, Calibration, save_calibration
    from finsent.training.score import Scorer

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    calibration = Calibration(kind="temperature", temperature=0.05)  # sharpens the near-uniform tiny model
    save_calibration(calibration, model_dir)
    eval_df = tfns_valid.sample(60, random_state=0)
    eval_df.to_csv(tmp_path / "eval.csv", index=False)
    summary = run(EvaluateParams(), model_dir, tmp_path / "eval.csv", tmp_path / "eval", TrainParams())
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    served = pd.read_csv(tmp_path / "eval" / "predictions.csv")[["p_bearish", "p_bullish", "p_neutral"]].to_numpy()
    scorer = Scorer.from_dir(model_dir)
    texts = eval_df["text"].tolist()
    np.testing.assert_allclose(served, scorer.predict_proba(texts), atol=1e-6)  # what the model serves
    y = eval_df["label"].to_numpy()
    raw = IDENTITY.probabilities(scorer.predict_logits(texts))
    assert metrics["ece"] == pytest.approx(expected_calibration_error(y, served, 15)[0], abs=1e-6)
    assert metrics["ece_uncalibrated"] == pytest.approx(expected_calibration_error(y, raw, 15)[0], abs=1e-6)
    assert metrics["ece"] != pytest.approx(metrics["ece_uncalibrated"])
    assert metrics["calibration"]["kind"] == "temperature" == summary.calibration
    assert (summary.ece, summary.ece_uncalibrated) == (metrics["ece"], metrics["ece_uncalibrated"])
    assert {"ece", "ece_uncalibrated", "nll", "nll_uncalibrated"} <= set(flat_metrics(metrics))
    assert metrics["reliability_uncalibrated"] and metrics["reliability"]


def test_without_calibration_served_and_raw_agree(tiny_model_dir, tmp_path, tfns_valid):
    eval_df = tfns_valid.sample(30, random_state=1)
    eval_df.to_csv(tmp_path / "eval.csv", index=False)
    summary = run(EvaluateParams(), tiny_model_dir, tmp_path / "eval.csv", tmp_path / "eval", TrainParams())
    assert summary.calibration == "none"
    assert summary.ece == pytest.approx(summary.ece_uncalibrated, abs=1e-6)


def test_log_loss_is_the_mean_negative_log_probability_of_the_truth():
    from finsent.evaluation.evaluate import log_loss

    probs = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
    assert log_loss(np.array([0, 1]), probs) == pytest.approx(-(np.log(0.5) + np.log(0.8)) / 2)

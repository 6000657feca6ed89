"""Label-free performance estimation: exact on a hand-computed case, intervals that cover the truth on
calibrated data, and the weighted methods recovering accuracy under a covariate shift that fools
confidence."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from finsent.config import ConfigError, EstimateParams, from_dict
from finsent.monitoring import estimate as est
from finsent.monitoring.report import estimate_tags_and_metrics

P = EstimateParams(draws=200, min_rows=20)


def test_cbpe_is_the_expected_confusion_matrix_worked_by_hand():
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.5, 0.25, 0.25]])
    got = est.cbpe(probs, draws=100, seed=1)
    # Predicted 0, 1, 2, 0. Expected matrix (x4): column 0 = rows 0 and 3 = (1.3, 0.35, 0.35); column 1
    # = (0.2, 0.7, 0.1); column 2 = (0.1, 0.3, 0.6). F1 of class k = 2 tp / (actual + predicted).
    f1 = [2 * 1.3 / (1.6 + 2.0), 2 * 0.7 / (1.35 + 1.0), 2 * 0.6 / (1.05 + 1.0)]
    assert got.estimated_accuracy == pytest.approx((0.8 + 0.7 + 0.6 + 0.5) / 4)
    assert got.estimated_macro_f1 == pytest.approx(np.mean(f1))
    assert got.accuracy_low <= got.estimated_accuracy <= got.accuracy_high and got.rows == 4 and got.reference_rows == 0


def test_realised_metrics_match_scikit_learn_and_certain_probabilities_are_exact():
    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    predicted[predicted == 1] = 2  # a class never predicted still counts (it is in the labels)
    accuracy, macro_f1 = est.realised(labels, predicted)
    assert accuracy == pytest.approx(accuracy_score(labels, predicted))
    assert macro_f1 == pytest.approx(f1_score(labels, predicted, average="macro"))
    certain = est.one_hot(labels, 3)  # probability 1 on the true class: nothing left to estimate
    got = est.cbpe(certain, draws=60)
    assert (got.estimated_accuracy, got.accuracy_low, got.accuracy_high) == (1.0, 1.0, 1.0)


def calibrated_window(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn from them: calibrated by construction."""
    probs = rng.dirichlet([0.6, 0.6, 0.6], size=rows)
    labels = (rng.random((rows, 1)) > np.cumsum(probs, axis=1)[:, :-1]).sum(axis=1)
    return probs, labels


def test_cbpe_interval_covers_the_realised_accuracy_on_calibrated_windows():
    rng = np.random.default_rng(7)
    hits_acc = hits_f1 = 0
    trials = 40
    for seed in range(trials):
        probs, labels = calibrated_window(rng, 500)
        got = est.cbpe(probs, level=0.9, draws=300, seed=seed)
        accuracy, macro_f1 = est.realised(labels, probs.argmax(axis=1))
        hits_acc += got.accuracy_low <= accuracy <= got.accuracy_high
        hits_f1 += got.macro_f1_low <= macro_f1 <= got.macro_f1_high
        assert abs(got.estimated_accuracy - accuracy) < 0.08
    # 90% intervals: 36 of 40 expected; 30 or fewer would happen by chance less than once in 1,000 runs.
    assert hits_acc > 30 and hits_f1 > 30, (hits_acc, hits_f1)


def test_the_same_seed_gives_the_same_interval_and_large_windows_draw_less():
    rng = np.random.default_rng(3)
    probs, _ = calibrated_window(rng, 400)
    assert est.cbpe(probs, seed=5) == est.cbpe(probs, seed=5)
    assert est._draw_count(400, 1_000_000) == est.MIN_DRAWS and est._draw_count(400, 100_000) == 80 and est._draw_count(400, 2000) == 400
    big, _ = calibrated_window(rng, 60_000)
    assert 0 < est.cbpe(big, draws=400).accuracy_interval_width < 0.01


def shifted_world(rng: np.random.Generator, rows: int, share_hard: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings, probabilities and labels of rows from two regions the model is equally sure about:
    ``easy`` (right 95% of the time, confidence 0.95: calibrated) and ``hard`` (right 55% of the
    time at the same 0.95: over-confident, as a fine-tuned model is on unfamiliar text)."""
    hard = rng.random(rows) < share_hard
    embeddings = rng.normal(size=(rows, 8))
    embeddings[:, 0] += np.where(hard, 2.5, -2.5)  # where a row lies is what the domain classifier sees
    predicted = rng.integers(0, 3, rows)
    correct = rng.random(rows) < np.where(hard, 0.55, 0.95)
    labels = np.where(correct, predicted, (predicted + rng.integers(1, 3, rows)) % 3)
    probs = np.full((rows, 3), 0.025)
    probs[np.arange(rows), predicted] = 0.95
    return embeddings, probs, labels


def test_weighting_recovers_accuracy_under_a_covariate_shift_that_confidence_misses():
    rng = np.random.default_rng(11)
    ref_emb, ref_probs, ref_labels = shifted_world(rng, 2000, share_hard=0.15)  # the dev split: mostly easy
    cur_emb, cur_probs, cur_labels = shifted_world(rng, 600, share_hard=0.8)  # the window: mostly hard
    truth, _ = est.realised(cur_labels, cur_probs.argmax(axis=1))
    reference = est.Reference(ref_probs, ref_labels, ref_emb)
    got = est.estimate_performance(cur_probs, P, reference=reference, current_embeddings=cur_emb)
    assert truth == pytest.approx(0.63, abs=0.05)
    assert abs(got.estimates["cbpe"].estimated_accuracy - truth) > 0.25  # confidence says 0.95
    assert abs(got.estimates["atc"].estimated_accuracy - truth) > 0.25  # one confidence everywhere: no rank to use
    for method in ("importance_weighting", "doubly_robust"):
        e = got.estimates[method]
        assert abs(e.estimated_accuracy - truth) < 0.06, (method, e)
        assert e.reference_rows == 2000 and 50 < e.effective_rows < 2000
    assert got.domain_auc is not None and got.domain_auc > 0.7

    # No shift: the weights stay near 1 and every reference-based estimate agrees with the truth.
    same_emb, same_probs, same_labels = shifted_world(rng, 600, share_hard=0.15)
    truth, _ = est.realised(same_labels, same_probs.argmax(axis=1))
    got = est.estimate_performance(same_probs, P, reference=reference, current_embeddings=same_emb)
    assert got.domain_auc is not None and got.domain_auc < 0.6
    for method in ("importance_weighting", "doubly_robust"):
        assert abs(got.estimates[method].estimated_accuracy - truth) < 0.04, method


def test_weights_are_clipped_and_average_one():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(300, 4))
    cur = rng.normal(size=(300, 4)) + np.array([3.0, 0, 0, 0])  # almost no overlap
    weights = est.domain_weights(ref, cur, max_weight=5.0, seed=0)
    assert weights.weights.mean() == pytest.approx(1.0)
    assert weights.clipped_share > 0
    unclipped = est.domain_weights(ref, cur, max_weight=1e6, seed=0)
    assert unclipped.clipped_share == 0 and unclipped.weights.max() > weights.weights.max()
    assert weights.auc > 0.95


def test_atc_on_the_reference_itself_gives_its_accuracy():
    rng = np.random.default_rng(4)
    probs, labels = calibrated_window(rng, 1000)
    reference = est.Reference(probs, labels)
    accuracy, _ = est.realised(labels, probs.argmax(axis=1))
    assert est.atc(probs, reference, draws=60).estimated_accuracy == pytest.approx(accuracy, abs=0.002)


def test_what_cannot_be_computed_is_skipped_with_its_reason_and_cbpe_stands_in():
    rng = np.random.default_rng(5)
    probs, _ = calibrated_window(rng, 100)
    alone = est.estimate_performance(probs, P)
    assert set(alone.estimates) == {"cbpe"} and alone.chosen == "cbpe"
    assert set(alone.skipped) == {"atc", "importance_weighting", "doubly_robust"}
    assert "no labelled reference" in alone.skipped["doubly_robust"]
    reference = est.Reference(*calibrated_window(rng, 200))  # no embeddings: ATC only
    partial = est.estimate_performance(probs, P, reference=reference)
    assert set(partial.estimates) == {"cbpe", "atc"} and "embeddings" in partial.skipped["importance_weighting"]
    small = est.estimate_performance(probs[:5], P)
    assert small.estimates == {} and small.chosen is None and "5 window rows" in small.skipped["cbpe"]
    few = est.estimate_performance(probs, P, reference=est.Reference(*calibrated_window(rng, 10)))
    assert "10 labelled reference rows" in few.skipped["atc"]
    as_json = alone.to_dict()
    assert as_json["chosen"] == "cbpe" and as_json["methods"]["cbpe"]["rows"] == 100 and "not from labels" in as_json["note"]


def test_bad_inputs_are_estimation_errors():
    with pytest.raises(est.EstimationError, match="sum to 1"):
        est.cbpe(np.array([[0.5, 0.6, 0.1]] * 3))
    with pytest.raises(est.EstimationError, match="shape"):
        est.cbpe(np.array([0.5, 0.5]))
    with pytest.raises(est.EstimationError, match="labels"):
        est.Reference(np.full((3, 3), 1 / 3), np.array([0, 1, 3]))
    with pytest.raises(est.EstimationError, match="embeddings"):
        est.Reference(np.full((3, 3), 1 / 3), np.array([0, 1, 2]), np.zeros((2, 4)))


def test_params_are_checked_when_loaded():
    with pytest.raises(ConfigError, match="estimate.methods"):
        from_dict(EstimateParams, {"methods": ["cbpe", "magic"]})
    with pytest.raises(ConfigError, match="estimate.chosen"):
        from_dict(EstimateParams, {"methods": ["cbpe"], "chosen": "doubly_robust"})
    with pytest.raises(ConfigError, match="level"):
        from_dict(EstimateParams, {"level": 1.0})


def test_mlflow_names_say_estimate():
    rng = np.random.default_rng(6)
    probs, _ = calibrated_window(rng, 100)
    estimated = est.estimate_performance(probs, P).to_dict() | {"estimated_drop": 0.07}
    tags, metrics = estimate_tags_and_metrics(estimated)
    assert tags["estimate.chosen"] == "cbpe" and "no labelled reference" in tags["estimate.skipped.atc"]
    assert metrics["estimated_accuracy"] == estimated["methods"]["cbpe"]["estimated_accuracy"]
    assert metrics["estimated_accuracy_low"] <= metrics["estimated_accuracy"] <= metrics["estimated_accuracy_high"]
    assert metrics["estimated_drop"] == 0.07 and "estimated_accuracy.cbpe" in metrics
    assert all(k.startswith("estimate") for k in metrics) and "accuracy" not in metrics
    assert estimate_tags_and_metrics(None) == ({"estimate.chosen": "none"}, {})

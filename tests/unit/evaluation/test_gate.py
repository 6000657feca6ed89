"""Promotion gate on synthetic predictions over one fixed evaluation set."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score

from finsent.config import ConfigError, EvaluateParams, GateParams, load_params
from finsent.evaluation import gate
from finsent.evaluation.behaviour import BehaviourResult
from finsent.evaluation.gate import GateError, decide

N_ROWS = 2000
EVAL = EvaluateParams()
# Fewer resamples than production keeps the file fast; the decisions below do not sit near the edge.
PARAMS = GateParams(bootstrap_samples=500, seed=7)


@pytest.fixture(scope="module")
def y_true() -> np.ndarray:
    return np.random.default_rng(0).choice(3, size=N_ROWS, p=[0.15, 0.2, 0.65])


@pytest.fixture(scope="module")
def texts() -> pd.Series:
    """Rows cycle through the slices: 30% with a cashtag, 40% with a URL, short/medium/long."""
    rows = []
    for i in range(N_ROWS):
        short, medium, long = "Shares move on news", "Company shares move after the quarterly report came out this morning", "x" * 130
        body = (short, medium, long)[i % 3]
        cashtag = "$ABC " if i % 10 < 3 else ""
        url = " https://t.co/abc123" if i % 5 < 2 else ""
        rows.append(f"{cashtag}{body}{url}")
    return pd.Series(rows)


@pytest.fixture(scope="module")
def champion(y_true: np.ndarray) -> np.ndarray:
    """A champion right on 85% of rows; its errors go to a random other class."""
    return with_errors(y_true, np.random.default_rng(1).random(N_ROWS) < 0.15, seed=2)


def with_errors(y_true: np.ndarray, wrong: np.ndarray, seed: int) -> np.ndarray:
    shift = np.random.default_rng(seed).integers(1, 3, size=len(y_true))
    return np.where(wrong, (y_true + shift) % 3, y_true)


def fix(pred: np.ndarray, y_true: np.ndarray, share: float, seed: int, where: np.ndarray | None = None) -> np.ndarray:
    """Correct ``share`` of the wrong rows (within ``where``)."""
    rows = np.flatnonzero((pred != y_true) & (True if where is None else where))
    chosen = np.random.default_rng(seed).choice(rows, size=int(share * len(rows)), replace=False)
    out = pred.copy()
    out[chosen] = y_true[chosen]
    return out


def break_(pred: np.ndarray, y_true: np.ndarray, count: int, seed: int, where: np.ndarray | None = None) -> np.ndarray:
    """Make ``count`` right rows (within ``where``) wrong."""
    rows = np.flatnonzero((pred == y_true) & (True if where is None else where))
    chosen = np.random.default_rng(seed).choice(rows, size=count, replace=False)
    out = pred.copy()
    out[chosen] = (y_true[chosen] + 1) % 3
    return out


def probs_of(pred: np.ndarray, y_true: np.ndarray | None = None, confidence: float | None = None) -> np.ndarray:
    """Probabilities with argmax ``pred``; by default the confidence equals the accuracy (calibrated)."""
    if confidence is None:
        confidence = float((pred == y_true).mean())
    probs = np.full((len(pred), 3), (1 - confidence) / 2)
    probs[np.arange(len(pred)), pred] = confidence
    return probs


def behaviour(invariance: float = 1.0, directional: float = 1.0, mft: float = 1.0) -> BehaviourResult:
    rates = {"minimum_functionality": mft, "invariance": invariance, "directional": directional}
    return BehaviourResult(
        pass_rates=rates,
        counts={k: {"passed": round(100 * v), "total": 100} for k, v in rates.items()},
        class_pass_rates={"bearish": mft, "bullish": mft, "neutral": mft},
    )


def judge(y_true, new, old, texts, params=PARAMS, result=None, confidence=None) -> gate.GateDecision:
    return decide(
        y_true,
        probs_of(new, y_true, confidence),
        None if old is None else probs_of(old, y_true),
        texts,
        result or behaviour(),
        params,
        EVAL,
    )


# --- the three guarantees --------------------------------------------------------------------------


def test_clearly_better_challenger_is_promoted(y_true, champion, texts):
    better = fix(champion, y_true, 0.4, seed=3)
    decision = judge(y_true, better, champion, texts)
    assert decision.promote, decision.reasons
    assert decision.failed() == []
    assert decision.summary["paired_gain.gain"] > 0.03
    assert decision.summary["paired_gain.ci_low"] > 0


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("broken", [1, 10, 60])
def test_worse_challenger_is_never_promoted(y_true, champion, texts, seed, broken):
    # Worse overall even though it also fixes some of the champion's errors.
    worse = break_(fix(champion, y_true, 0.05, seed=seed), y_true, broken + 20, seed=seed)
    decision = judge(y_true, worse, champion, texts)
    assert not decision.promote
    assert "paired_gain" in decision.failed()
    assert decision.summary["paired_gain.gain"] < 0


@pytest.mark.parametrize("seed", range(3))
def test_challenger_equal_within_noise_is_not_promoted(y_true, champion, texts, seed):
    # The same predictions except a few flips, half of them helping and half hurting.
    flipped = break_(fix(champion, y_true, 0.02, seed=seed), y_true, 6, seed=seed + 10)
    decision = judge(y_true, flipped, champion, texts)
    assert not decision.promote
    assert decision.failed() == ["paired_gain"]
    low, high = decision.summary["paired_gain.ci_low"], decision.summary["paired_gain.ci_high"]
    assert low <= 0 <= high


@pytest.mark.parametrize("seed", range(3))
def test_same_skill_different_errors_is_not_promoted(y_true, texts, seed):
    # Two models with the same number of errors on different rows: many discordant pairs, no real gain.
    rng = np.random.default_rng(100 + seed)
    wrong_old = np.zeros(N_ROWS, bool)
    wrong_old[rng.choice(N_ROWS, 300, replace=False)] = True
    wrong_new = np.zeros(N_ROWS, bool)
    wrong_new[rng.choice(N_ROWS, 300, replace=False)] = True
    old, new = with_errors(y_true, wrong_old, seed), with_errors(y_true, wrong_new, seed + 1)
    decision = judge(y_true, new, old, texts)
    assert not decision.promote
    assert "paired_gain" in decision.failed()


def test_a_handful_of_one_sided_fixes_is_within_noise(y_true, champion, texts):
    rows = np.flatnonzero(champion != y_true)[:3]
    tweaked = champion.copy()
    tweaked[rows] = y_true[rows]
    assert not judge(y_true, tweaked, champion, texts).promote


def test_identical_challenger_is_not_promoted(y_true, champion, texts):
    decision = judge(y_true, champion, champion, texts)
    assert not decision.promote
    assert decision.summary["paired_gain.ci_low"] == 0.0


# --- each check can block on its own -----------------------------------------------------------------


def test_recall_drop_in_one_class_blocks(y_true, champion, texts):
    bearish = y_true == 0
    # Much better on bullish and neutral, but loses ~8% of bearish recall.
    better_elsewhere = fix(champion, y_true, 0.6, seed=4, where=~bearish)
    challenger = break_(better_elsewhere, y_true, int(0.08 * bearish.sum()), seed=5, where=bearish)
    decision = judge(y_true, challenger, champion, texts)
    assert not decision.promote
    assert "class_recall" in decision.failed()
    assert "paired_gain" not in decision.failed()
    assert decision.summary["class_recall"] > PARAMS.max_recall_drop
    assert "bearish" in next(c.detail for c in decision.checks if c.name == "class_recall")


def test_slice_drop_blocks(y_true, champion, texts):
    cashtag = texts.str.contains("$", regex=False).to_numpy()
    better_elsewhere = fix(champion, y_true, 0.8, seed=6, where=~cashtag)
    challenger = break_(better_elsewhere, y_true, int(0.12 * cashtag.sum()), seed=7, where=cashtag)
    decision = judge(y_true, challenger, champion, texts)
    assert not decision.promote
    assert decision.failed() == ["slices"]
    assert "has_cashtag" in next(c.detail for c in decision.checks if c.name == "slices")


def test_small_slices_are_reported_but_do_not_gate(y_true, champion, texts):
    cashtag = texts.str.contains("$", regex=False).to_numpy()
    challenger = break_(fix(champion, y_true, 0.8, seed=6, where=~cashtag), y_true, 70, seed=7, where=cashtag)
    lenient = dataclasses.replace(PARAMS, min_slice_rows=N_ROWS + 1)
    decision = judge(y_true, challenger, champion, texts, params=lenient)
    slices = next(c for c in decision.checks if c.name == "slices")
    assert slices.passed and "not gating" in slices.detail
    assert slices.numbers["has_cashtag_rows"] == cashtag.sum()


def test_ece_over_bound_blocks(y_true, champion, texts):
    better = fix(champion, y_true, 0.4, seed=3)
    decision = judge(y_true, better, champion, texts, confidence=0.5)  # right 91% of the time, says 50%
    assert not decision.promote
    assert decision.failed() == ["calibration"]
    assert decision.summary["calibration"] > PARAMS.max_ece


@pytest.mark.parametrize("kind", ["invariance", "directional", "mft"])
def test_behaviour_below_floor_blocks(y_true, champion, texts, kind):
    better = fix(champion, y_true, 0.4, seed=3)
    decision = judge(y_true, better, champion, texts, result=behaviour(**{kind: 0.5}))
    assert not decision.promote
    name = "behaviour_minimum_functionality" if kind == "mft" else f"behaviour_{kind}"
    assert decision.failed() == [name]


def test_behaviour_without_cases_blocks(y_true, champion, texts):
    empty = BehaviourResult(pass_rates={}, counts={}, class_pass_rates={})
    decision = judge(y_true, fix(champion, y_true, 0.4, seed=3), champion, texts, result=empty)
    assert not decision.promote
    assert len([n for n in decision.failed() if n.startswith("behaviour_")]) == 3


def test_absolute_floor_blocks_even_a_better_challenger(y_true, texts):
    poor_old = with_errors(y_true, np.random.default_rng(8).random(N_ROWS) < 0.4, seed=9)
    poor_new = fix(poor_old, y_true, 0.2, seed=10)
    decision = judge(y_true, poor_new, poor_old, texts)
    assert not decision.promote
    assert decision.failed() == ["absolute_floor"]


# --- first model -----------------------------------------------------------------------------------


def test_first_model_needs_only_floor_calibration_and_behaviour(y_true, champion, texts):
    decision = judge(y_true, champion, None, texts)
    assert decision.promote, decision.reasons
    assert not decision.has_champion
    assert [c.name for c in decision.checks] == [
        "absolute_floor",
        "calibration",
        "behaviour_minimum_functionality",
        "behaviour_invariance",
        "behaviour_directional",
    ]


def test_first_model_below_floor_is_not_promoted(y_true, texts):
    poor = with_errors(y_true, np.random.default_rng(8).random(N_ROWS) < 0.4, seed=9)
    decision = judge(y_true, poor, None, texts)
    assert not decision.promote
    assert decision.failed() == ["absolute_floor"]
    assert decision.reasons[0].startswith("absolute_floor: macro-F1")


# --- the paired tests ------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_under_seed(y_true, champion):
    better = fix(champion, y_true, 0.1, seed=11)
    first = gate.paired_bootstrap_gain(y_true, better, champion, 300, 0.95, seed=1)
    assert first == gate.paired_bootstrap_gain(y_true, better, champion, 300, 0.95, seed=1)
    assert first[1:] != gate.paired_bootstrap_gain(y_true, better, champion, 300, 0.95, seed=2)[1:]
    assert first[1] < first[0] < first[2]


def test_vectorised_metrics_match_sklearn(y_true, champion):
    assert gate.macro_f1(y_true, champion) == pytest.approx(f1_score(y_true, champion, average="macro", labels=[0, 1, 2]))
    rows = np.random.default_rng(3).integers(0, N_ROWS, size=(2, N_ROWS))
    cms = gate._confusions(y_true, champion, rows)
    for k in range(2):
        assert (cms[k] == confusion_matrix(y_true[rows[k]], champion[rows[k]], labels=[0, 1, 2])).all()
    # A class never predicted nor present scores 0, as sklearn's zero_division=0 does.
    y, pred = np.array([0, 0, 1]), np.array([0, 1, 1])
    assert gate.macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0))


def test_mcnemar_path(y_true, champion, texts):
    mcnemar = dataclasses.replace(PARAMS, test="mcnemar")
    better = fix(champion, y_true, 0.4, seed=3)
    decision = judge(y_true, better, champion, texts, params=mcnemar)
    assert decision.promote, decision.reasons
    check = next(c for c in decision.checks if c.name == "paired_gain")
    assert check.numbers["losses"] == 0 and check.numbers["wins"] == (better != champion).sum()
    assert check.value < 1e-6 and "McNemar" in check.detail

    worse = break_(champion, y_true, 40, seed=12)
    assert "paired_gain" in judge(y_true, worse, champion, texts, params=mcnemar).failed()
    # 5 wins, 0 losses: one-sided exact p = 1/32 > 0.025, so still within noise.
    rows = np.flatnonzero(champion != y_true)[:5]
    tweaked = champion.copy()
    tweaked[rows] = y_true[rows]
    noisy = judge(y_true, tweaked, champion, texts, params=mcnemar)
    assert noisy.failed() == ["paired_gain"]
    assert noisy.summary["paired_gain"] == pytest.approx(1 / 32)


def test_min_gain_raises_the_bar(y_true, champion, texts):
    better = fix(champion, y_true, 0.4, seed=3)
    strict = dataclasses.replace(PARAMS, min_gain=0.2)
    assert judge(y_true, better, champion, texts, params=strict).failed() == ["paired_gain"]


# --- the record --------------------------------------------------------------------------------------


def test_decision_is_json_and_tags(y_true, champion, texts):
    decision = judge(y_true, fix(champion, y_true, 0.4, seed=3), champion, texts)
    record = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert record["promote"] is True and len(record["checks"]) == len(decision.checks)
    tags = decision.to_tags()
    assert tags["gate.decision"] == "promoted" and tags["gate.failed"] == "none"
    assert tags["gate.paired_gain"] == "pass" and float(tags["gate.paired_gain.value"]) > 0
    assert all(isinstance(v, str) and len(v) <= 250 for v in tags.values())
    assert float(tags["gate.macro_f1"]) == pytest.approx(decision.summary["absolute_floor"], rel=1e-3)
    assert float(tags["gate.gain"]) > 0 and "gate.ece" in tags and "gate.p_value" not in tags

    rejected = judge(y_true, break_(champion, y_true, 60, seed=1), champion, texts).to_tags(prefix="g.")
    assert rejected["g.decision"] == "rejected" and "paired_gain" in rejected["g.failed"]
    assert "paired_gain" in rejected["g.reasons"]


def test_every_decision_records_reasons(y_true, champion, texts):
    for new in (champion, fix(champion, y_true, 0.4, seed=3)):
        decision = judge(y_true, new, champion, texts)
        assert decision.reasons and all(":" in r for r in decision.reasons)


# --- bad input ---------------------------------------------------------------------------------------


def test_bad_inputs_raise_specific_errors(y_true, champion, texts):
    good = probs_of(champion, y_true)
    args = dict(behaviour_result=behaviour(), p=PARAMS, eval_params=EVAL)
    with pytest.raises(GateError, match="shape"):
        decide(y_true, good[:-1], None, texts, **args)
    with pytest.raises(GateError, match="champion"):
        decide(y_true, good, good[:, :2], texts, **args)
    with pytest.raises(GateError, match="texts"):
        decide(y_true, good, None, texts[:10], **args)
    with pytest.raises(GateError, match="-1"):
        decide(np.where(np.arange(N_ROWS) == 0, -1, y_true), good, None, texts, **args)
    with pytest.raises(GateError, match="NaN"):
        decide(y_true, np.where(np.arange(N_ROWS)[:, None] == 0, np.nan, good), None, texts, **args)


def test_gate_params_reject_unsafe_settings():
    with pytest.raises(ConfigError, match="min_gain"):
        GateParams(min_gain=-0.01)  # would let a worse challenger through
    with pytest.raises(ConfigError, match="test"):
        GateParams(test="t-test")
    with pytest.raises(ConfigError, match="behaviour_floors"):
        GateParams(behaviour_floors={"invariance": 0.9})
    with pytest.raises(ConfigError, match="behaviour_floors"):
        GateParams(behaviour_floors={"invariance": 2.0, "directional": 0.8, "minimum_functionality": 0.9})


def test_params_yaml_has_the_gate_section():
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[3] / "params.yaml")
    assert params.gate.test in {"bootstrap", "mcnemar"} and params.gate.min_gain >= 0

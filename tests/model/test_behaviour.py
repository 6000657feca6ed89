"""The finance behaviour suite: its content, and a runner that passes good models and fails bad ones."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from finsent.config import GateParams
from finsent.evaluation.behaviour import TEST_TYPES, BehaviourError, load_suite, parse_suite, run_suite
from finsent.evaluation.gate import check_behaviour
from finsent.vocabulary import LABELS

BEARISH, BULLISH, NEUTRAL = (LABELS.index(name) for name in ("bearish", "bullish", "neutral"))

# A keyword "oracle": what a model that reads finance headlines sensibly would at least get right.
BULL_WORDS = [
    "jump",
    "rall",
    "soar",
    "surge",
    "beat",
    "raise",
    "lift",
    "boost",
    "upgrade",
    "outperform",
    "record high",
    "record revenue",
    "record profit",
    "record annual",
    "record quarterly",
    "climb",
    "gain",
    "rise",
    "rebound",
    "tops",
    "exceed",
    "above",
    "better",
    "strong",
    "accelerat",
    "grew",
    "expand",
    "narrow",
    "hire",
    "buy rating",
    "to buy",
    "wins",
    "approve",
    "reinstate",
    "positive",
    "best",
    "doubl",
    "buyback",
    "repurchase",
    "returns to profit",
    "to a quarterly profit",
    "all-time high",
]
BEAR_WORDS = [
    "tumble",
    "plunge",
    "sink",
    "slump",
    "fall",
    "fell",
    "drop",
    "slide",
    "crash",
    "crater",
    "cut",
    "slash",
    "lower",
    "miss",
    "downgrade",
    "underperform",
    "sell rating",
    "to sell",
    "loss",
    "widen",
    "record low",
    "lay off",
    "layoffs",
    "bankrupt",
    "suspend",
    "halt",
    "withdraw",
    "warn",
    "weak",
    "slow",
    "shrank",
    "shrink",
    "trail",
    "falls short",
    "below",
    "worse",
    "reject",
    "block",
    "loses",
    "negative",
    "junk",
    "fear",
    "deteriorat",
    "stall",
    "worries",
    "lowest",
    "ground",
    "sell off",
]


def keyword_lean(text: str) -> int:
    lowered = text.lower()
    bull = sum(bool(re.search(r"\b" + re.escape(w), lowered)) for w in BULL_WORDS if w)
    bear = sum(bool(re.search(r"\b" + re.escape(w), lowered)) for w in BEAR_WORDS if w)
    return bull - bear


def keyword_predictor(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 3))
    for i, text in enumerate(texts):
        lean = keyword_lean(text)
        out[i, BULLISH] = 1 / (1 + np.exp(-2 * lean)) if lean else 0.1
        out[i, BEARISH] = 1 / (1 + np.exp(2 * lean)) if lean else 0.1
        out[i, NEUTRAL] = 0.8 if lean == 0 else 0.05
    return out / out.sum(axis=1, keepdims=True)


def constant_predictor(texts: list[str]) -> np.ndarray:
    return np.tile([0.2, 0.2, 0.6], (len(texts), 1))


@pytest.fixture(scope="module")
def suite():
    return load_suite()


# --- the suite's content -----------------------------------------------------------------------------


def test_suite_has_every_type_and_class(suite):
    per_class = {name: [c for c in suite.minimum_functionality if LABELS[c.label] == name] for name in LABELS}
    assert all(len(cases) >= 30 for cases in per_class.values()), {k: len(v) for k, v in per_class.items()}
    assert len(suite.invariance) >= 15 and len(suite.directional) >= 30
    assert all(len(case.texts) >= 2 and len(set(case.texts)) == len(case.texts) for case in suite.invariance)
    assert {c.direction for c in suite.directional} == {-1, 1}


def test_suite_covers_the_finance_perturbations(suite):
    inv = " ".join(case.name for case in suite.invariance)
    assert "ticker" in inv and "company" in inv and "format" in inv
    number_formats = next(case.texts for case in suite.invariance if "price format" in case.name)
    assert any("$" in t for t in number_formats) and any("dollars" in t for t in number_formats)
    pairs = [(c.base.lower(), c.changed.lower()) for c in suite.directional]
    for bull, bear in (("raise", "cut"), ("beats", "misses"), ("upgrade", "downgrade"), ("rise", "fall")):
        assert any(bull in b and bear in c for b, c in pairs), (bull, bear)


def test_texts_are_deduplicated(suite):
    texts = suite.texts()
    assert len(texts) == len(set(texts))
    assert set(texts) >= {c.text for c in suite.minimum_functionality}


# --- the runner can pass and can fail -----------------------------------------------------------------


def test_keyword_oracle_passes_the_floors(suite):
    result = run_suite(keyword_predictor, suite)
    assert result.pass_rates["minimum_functionality"] >= 0.9, result.failures["minimum_functionality"]
    assert result.pass_rates["invariance"] == 1.0, result.failures["invariance"]
    assert result.pass_rates["directional"] >= 0.9, result.failures["directional"]
    assert all(c.passed for c in check_behaviour(result, GateParams()))


def test_constant_predictor_fails_directional_and_mft(suite):
    result = run_suite(constant_predictor, suite, max_failures=5)
    assert result.pass_rates["directional"] == 0.0  # it never moves
    assert result.pass_rates["minimum_functionality"] == pytest.approx(1 / 3, abs=0.02)
    assert result.class_pass_rates == {"bearish": 0.0, "bullish": 0.0, "neutral": 1.0}
    assert result.pass_rates["invariance"] == 1.0  # trivially consistent
    assert len(result.failures["directional"]) == 5
    assert result.counts["directional"] == {"passed": 0, "total": len(suite.directional)}
    failed = [c.name for c in check_behaviour(result, GateParams()) if not c.passed]
    assert failed == ["behaviour_minimum_functionality", "behaviour_directional"]


def test_directional_checks_the_direction_not_just_movement(suite):
    def backwards(texts: list[str]) -> np.ndarray:
        return keyword_predictor(texts)[:, [BULLISH, BEARISH, NEUTRAL]]  # bearish and bullish swapped

    result = run_suite(backwards, suite)
    assert result.pass_rates["directional"] <= 0.1
    assert result.failures["directional"][0]["direction"] in {"up", "down"}


def test_directional_needs_a_real_move(suite):
    # A model that leans the right way by a hair, as a barely trained one does, is not reading the change.
    def timid(texts: list[str]) -> np.ndarray:
        return 0.99 * constant_predictor(texts) + 0.01 * keyword_predictor(texts)

    assert run_suite(keyword_predictor, suite).pass_rates["directional"] >= 0.9
    assert run_suite(timid, suite).pass_rates["directional"] == 0.0
    lenient = dataclasses.replace(suite, directional_min_shift=0.0)
    assert run_suite(timid, lenient).pass_rates["directional"] >= 0.9


def test_invariance_catches_a_ticker_sensitive_model(suite):
    def hates_tesla(texts: list[str]) -> np.ndarray:
        probs = keyword_predictor(texts)
        probs[["TSLA" in t or "Tesla" in t for t in texts]] = [0.9, 0.05, 0.05]
        return probs

    result = run_suite(hates_tesla, suite)
    assert result.pass_rates["invariance"] < 0.9
    failing = result.failures["invariance"][0]
    assert any("TSLA" in t or "Tesla" in t for t in failing["predictions"])


def test_suite_is_scored_in_one_call(suite):
    calls = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return constant_predictor(texts)

    run_suite(counting, suite)
    assert calls == [len(suite.texts())]


def test_result_is_a_plain_dict(suite):
    import json

    record = run_suite(constant_predictor, suite).to_dict()
    assert set(record["pass_rates"]) == set(TEST_TYPES)
    json.dumps(record)


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_output, match",
    [(lambda texts: np.ones((len(texts), 2)), "shape"), (lambda texts: np.full((len(texts), 3), np.nan), "non-finite")],
)
def test_bad_predictor_output_is_rejected(suite, bad_output, match):
    with pytest.raises(BehaviourError, match=match):
        run_suite(bad_output, suite)


def minimal_suite() -> dict:
    return {
        "fillers": {"ticker": ["$A", "$B"]},
        "minimum_functionality": {name: [f"a {name} sentence"] for name in LABELS},
        "invariance": [{"template": "{ticker} rises", "fillers": "ticker"}],
        "directional": [{"base": "up", "changed": "down", "direction": "down"}],
    }


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("directional"), "missing"),
        (lambda s: s["minimum_functionality"].pop("neutral"), "classes"),
        (lambda s: s["invariance"][0].update(template="{ticker} and {company}"), "exactly one"),
        (lambda s: s["invariance"][0].update(fillers="banks"), "no shared filler list"),
        (lambda s: s["invariance"][0].update(fillers=["$A"]), "at least two"),
        (lambda s: s["directional"][0].update(direction="sideways"), "up or down"),
        (lambda s: s["minimum_functionality"]["bullish"].append("a bearish sentence"), "twice"),
        (lambda s: s.update(directional_min_shift=-1), "directional_min_shift"),
        (lambda s: s.update(directionl=[]), "unknown top-level"),
    ],
)
def test_malformed_suite_is_rejected(edit, match):
    raw = minimal_suite()
    parse_suite(raw)  # the unedited one is valid
    edit(raw)
    with pytest.raises(BehaviourError, match=match):
        parse_suite(raw)


# --- plumbing with a real (tiny, random) transformer ----------------------------------------------------


@pytest.mark.slow
def test_suite_runs_on_a_tiny_random_bert(suite):
    from finsent.training.score import Scorer
    from testkit.tiny_bert import minilm_tokenizer, tiny_bert

    tok = minilm_tokenizer()
    model = tiny_bert(tok, max_position_embeddings=512)  # the transformers default
    scorer = Scorer(tok, model, max_length=64, batch_size=64, device="cpu")
    result = run_suite(scorer.predict_proba, suite)
    assert set(result.pass_rates) == set(TEST_TYPES)
    assert all(0.0 <= rate <= 1.0 for rate in result.pass_rates.values())
    assert sum(c["total"] for c in result.counts.values()) == len(suite.minimum_functionality) + len(suite.invariance) + len(
        suite.directional
    )

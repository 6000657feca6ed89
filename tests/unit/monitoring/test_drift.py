"""Drift report and verdict with real Evidently, on small generated batches and a tiny random BERT."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score
from transformers import BertForSequenceClassification

from finsent.config import ConfigError, DriftParams, from_dict
from finsent.monitoring import drift
from finsent.monitoring.drift import DriftError, champion_outputs, drift_report, split_word_share, text_shares
from finsent.training.score import Scorer
from testkit.tiny_bert import minilm_tokenizer, tiny_bert

# Small samples and a small t-SNE plot keep each report to a few seconds.
P = DriftParams(max_rows=300, embedding_plot_rows=60, min_labelled_rows=50)

COMPANIES = ["$AAPL", "$TSLA", "$MSFT", "$AMZN", "$NVDA", "$JPM", "$XOM", "$KO"]
FIN_VERBS = [
    "beats estimates",
    "misses revenue forecast",
    "raises guidance",
    "cuts dividend",
    "shares slide",
    "stock jumps after earnings",
    "downgraded at Morgan Stanley",
    "price target raised to",
]
SPORT = [
    "the striker scored twice in the second half",
    "the home team won the derby on penalties",
    "she served an ace to close the final set",
    "the coach praised the defence after the draw",
    "fans cheered as the marathon runners crossed the line",
    "the goalkeeper saved a late header",
]


def finance(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    texts = [f"{rng.choice(COMPANIES)} {rng.choice(FIN_VERBS)} {rng.integers(1, 400)} https://t.co/{rng.integers(10**6)}" for _ in range(n)]
    labels = rng.choice(3, size=n, p=[0.15, 0.2, 0.65])
    return pd.DataFrame({"text": texts, "label": labels, "predicted": labels})


def sports(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    texts = [f"{rng.choice(SPORT)} on {rng.choice(['Saturday', 'Sunday', 'Monday'])}" for _ in range(n)]
    labels = rng.choice(3, size=n, p=[0.15, 0.2, 0.65])
    return pd.DataFrame({"text": texts, "label": labels, "predicted": labels})


@pytest.fixture(scope="module")
def tokenizer():
    return minilm_tokenizer()


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    return tiny_bert(tokenizer, max_position_embeddings=512).eval()  # the transformers default


def embed(model, tokenizer, df):
    return drift.embed(model, tokenizer, df["text"].tolist())


# --- features -------------------------------------------------------------------------------------


def test_text_shares():
    got = text_shares(pd.Series(["$AAPL up 5% https://t.co/x", "plain words only", ""]))
    assert got.loc[0, "cashtag_share"] == pytest.approx(1 / 4)
    assert got.loc[0, "url_share"] == pytest.approx(1 / 4)
    assert got.loc[0, "digit_share"] == pytest.approx(1 / 26)
    assert got.loc[1].tolist() == [0.0, 0.0, 0.0]
    assert got.loc[2].tolist() == [0.0, 0.0, 0.0]  # empty text: no division by zero


def test_split_word_share_counts_words_cut_into_pieces(tokenizer):
    got = split_word_share(["the market is open", "$AAPL zxqvbnm", ""], tokenizer)
    assert got[0] == 0.0
    assert got[1] == 1.0  # "$" + "aapl", and an unknown word in several pieces
    assert got[2] == 0.0


def test_champion_outputs_match_the_scorer_and_ignore_batching(tokenizer, tiny_model):
    texts = ["$AAPL beats", "a much longer text about rates, inflation and the central bank", "x", "$TSLA cuts"]
    emb, probs = champion_outputs(tiny_model, tokenizer, texts, batch_size=3)
    emb_one, _ = champion_outputs(tiny_model, tokenizer, texts, batch_size=1)
    assert emb.shape == (4, 32) and probs.shape == (4, 3)
    assert np.allclose(emb, emb_one, atol=1e-5)  # padding does not leak into the mean
    scorer = Scorer(tokenizer, tiny_model, max_length=128, batch_size=2, device="cpu")
    assert np.allclose(probs, scorer.predict_proba(texts), atol=1e-5)


# --- verdicts -------------------------------------------------------------------------------------


def test_same_distribution_gives_no_drift(tokenizer, tiny_model):
    ref, cur = finance(300, 1), finance(300, 2)
    result = drift_report(
        ref,
        cur,
        P,
        tokenizer=tokenizer,
        reference_embeddings=embed(tiny_model, tokenizer, ref),
        current_embeddings=embed(tiny_model, tokenizer, cur),
    )
    verdict = result.verdict
    assert verdict.signals_checked == ["text_descriptors", "text_content", "embeddings", "prediction", "performance"]
    assert not verdict.drift, verdict.details
    assert verdict.signals_fired == []
    for signal in verdict.signals_checked:
        assert {"value", "threshold", "fired"} <= set(verdict.details[signal])


def test_other_domain_batch_drifts_with_the_signals_named(tokenizer, tiny_model):
    ref, cur = finance(300, 1), sports(300, 3)
    verdict = drift_report(
        ref,
        cur,
        P,
        tokenizer=tokenizer,
        reference_embeddings=embed(tiny_model, tokenizer, ref),
        current_embeddings=embed(tiny_model, tokenizer, cur),
    ).verdict
    assert verdict.drift
    assert {"text_descriptors", "text_content", "embeddings"} <= set(verdict.signals_fired)
    assert "prediction" not in verdict.signals_fired  # same class shares
    drifted = verdict.details["text_descriptors"]["drifted_columns"]
    assert {"cashtag_share", "url_share", "digit_share"} <= set(drifted)


def test_reversed_class_shares_fire_prediction_drift_only():
    ref = finance(300, 1)
    cur = finance(300, 2)
    cur["predicted"] = cur["label"] = cur["label"].map({2: 0, 0: 2, 1: 1})  # neutral-heavy -> bearish-heavy
    verdict = drift_report(ref, cur, replace(P, signals=["text_content", "prediction"])).verdict
    assert verdict.signals_fired == ["prediction"]
    shares = verdict.details["prediction"]
    assert shares["current_shares"]["bearish"] > 0.5 > shares["reference_shares"]["bearish"]


def test_performance_drop_fires_and_matches_macro_f1():
    ref, cur = finance(300, 1), finance(300, 2)
    rng = np.random.default_rng(0)
    wrong = rng.random(len(cur)) < 0.4
    cur.loc[wrong, "predicted"] = (cur.loc[wrong, "label"] + 1) % 3
    verdict = drift_report(ref, cur, replace(P, signals=["performance"]), baseline_macro_f1=0.9).verdict
    perf = verdict.details["performance"]
    expected = f1_score(cur["label"], cur["predicted"], average="macro")
    assert perf["value"] == pytest.approx(expected, abs=1e-6)
    assert perf["threshold"] == pytest.approx(0.85) and perf["baseline_source"] == "given"
    assert verdict.signals_fired == ["performance"]
    # without a given baseline the reference rows' own macro-F1 (1.0 here) is used
    own = drift_report(ref, cur, replace(P, signals=["performance"])).verdict.details["performance"]
    assert own["baseline"] == pytest.approx(1.0) and own["baseline_source"] == "reference rows"


def test_signals_without_inputs_are_skipped_not_guessed():
    ref, cur = finance(100, 1), finance(100, 2)
    cur = cur.drop(columns="predicted")
    cur["label"] = -1
    verdict = drift_report(ref, cur, P).verdict
    assert set(verdict.skipped) == {"embeddings", "prediction", "performance"}
    assert verdict.signals_checked == ["text_descriptors", "text_content"]
    assert "split_word_share" not in verdict.details["text_descriptors"]["columns"]  # no tokenizer given


def test_bad_inputs_are_clear_errors(tokenizer, tiny_model):
    with pytest.raises(DriftError, match="at least 20"):
        drift_report(finance(100, 1), finance(5, 2), P)
    with pytest.raises(DriftError, match="no text column"):
        drift_report(finance(100, 1), finance(100, 2).rename(columns={"text": "body"}), P)
    ref, cur = finance(50, 1), finance(50, 2)
    with pytest.raises(DriftError, match="embeddings for"):
        drift_report(ref, cur, P, reference_embeddings=np.zeros((49, 4)), current_embeddings=np.zeros((50, 4)))
    with pytest.raises(ConfigError, match="unknown"):
        from_dict(DriftParams, {"signals": ["text_content", "vibes"]})


# --- stage ----------------------------------------------------------------------------------------


def test_run_embeds_with_the_champion_and_saves_html_json_and_verdict(tmp_path, tokenizer, tiny_model):
    ref = finance(400, 1).drop(columns="predicted")  # training data: the champion predicts it
    cur = sports(120, 3)
    summary = drift.run(replace(P, max_rows=150), ref, cur, tmp_path / "drift", model=tiny_model, tokenizer=tokenizer)
    assert (summary.reference_rows, summary.current_rows) == (150, 120)
    assert set(summary.paths) == {
        "drift_html", "drift_json", "drift_snapshot", "performance_html", "performance_json", "performance_snapshot", "verdict_json"
    }  # fmt: skip
    html = (tmp_path / "drift" / "drift_report.html").read_text()
    assert "<html" in html.lower() and 'src="http' not in html  # self-contained: opens offline
    report = json.loads((tmp_path / "drift" / "drift_report.json").read_text())
    names = " ".join(m["metric_name"] for m in report["metrics"])
    assert "EmbeddingsDrift" in names and "ValueDrift(column=text" in names
    from evidently.core.report import Snapshot  # the whole snapshot loads back, for the Evidently workspace

    assert {m["id"] for m in report["metrics"]} <= set(Snapshot.load(summary.paths["drift_snapshot"]).metric_results)
    verdict = json.loads((tmp_path / "drift" / "verdict.json").read_text())
    assert verdict == summary.verdict
    assert verdict["drift"] and "text_content" in verdict["signals_fired"]
    assert "embeddings" in verdict["details"] and "prediction" in verdict["details"]


def test_reference_cache_is_reused_only_for_the_same_model_and_texts(tmp_path, tokenizer, tiny_model):
    texts = finance(40, 1)["text"].tolist()
    cache = tmp_path / "cache" / "reference.npz"
    first = drift.cached_champion_outputs(tiny_model, tokenizer, texts, cache)
    written = cache.stat().st_mtime_ns
    again = drift.cached_champion_outputs(tiny_model, tokenizer, texts, cache)
    assert cache.stat().st_mtime_ns == written  # read, not recomputed
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    torch.manual_seed(1)
    other = BertForSequenceClassification(tiny_model.config).eval()  # another champion, same shape
    got = drift.cached_champion_outputs(other, tokenizer, texts, cache)
    fresh = champion_outputs(other, tokenizer, texts)
    assert np.allclose(got[0], fresh[0]) and not np.allclose(got[0], first[0])
    fewer = drift.cached_champion_outputs(other, tokenizer, texts[:10], cache)
    assert fewer[0].shape[0] == 10
    with pytest.raises(DriftError, match="both"):
        drift.run(P, finance(50, 1), finance(50, 2), tmp_path / "out", model=tiny_model)

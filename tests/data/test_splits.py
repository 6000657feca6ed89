"""The dev split carved from TFNS training data, and the test set (TFNS validation) kept out of every
training decision: not in the training rows, not in dev, not in what augmentation adds, and not able
to change the trained weights or the weights the dev split selects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from finsent import augment

from finsent.data import prepare

from finsent.training import train
from finsent.augment.overlap import EvalOverlapIndex
from finsent.config import load_params, replace
from finsent.data.frames import read_dataset
from finsent.data.split import dev_split
from finsent.data.validate import normalise_text

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def splits(tfns_train, tfns_valid):
    return prepare.assemble([tfns_train], tfns_valid, load_params(REPO / "params.yaml").data)


def keys(df: pd.DataFrame) -> set[str]:
    return set(df["text"].map(normalise_text))


def test_dev_split_is_stratified_and_about_a_tenth(splits):
    total = len(splits.train) + len(splits.dev)
    assert 0.095 < len(splits.dev) / total < 0.105
    both = pd.concat([splits.train, splits.dev])
    for label in range(3):
        share_dev = (splits.dev["label"] == label).mean()
        share_all = (both["label"] == label).mean()
        assert abs(share_dev - share_all) < 0.005, label


def test_dev_split_is_seeded_and_independent_of_row_order(tfns_train):
    _, dev = dev_split(tfns_train, 0.1, seed=7)
    _, again = dev_split(tfns_train.sample(frac=1.0, random_state=3), 0.1, seed=7)
    _, other_seed = dev_split(tfns_train, 0.1, seed=8)
    assert keys(dev) == keys(again)
    assert keys(dev) != keys(other_seed)


def test_no_text_is_in_two_splits(splits):
    train, dev, test = keys(splits.train), keys(splits.dev), keys(splits.test)
    assert not train & dev and not train & test and not dev & test


def test_augmented_rows_resemble_neither_dev_nor_test(splits, tmp_path):
    p = load_params(REPO / "params.yaml").augment
    for name in ("train", "dev", "test"):
        getattr(splits, name).to_csv(tmp_path / f"{name}.csv", index=False)
    augment.run(p, tmp_path / "train.csv", [tmp_path / "dev.csv", tmp_path / "test.csv"], tmp_path / "augmented.csv")
    augmented = read_dataset(tmp_path / "augmented.csv")
    index = EvalOverlapIndex(pd.concat([splits.dev, splits.test])["text"], p.near_duplicate_threshold)
    assert not any(index.mask(augmented["text"].tolist()))


def test_test_labels_cannot_change_training_or_the_selected_weights(project, tiny_model_dir):
    """Two copies of a project that differ only in the test set's labels (shuffled): the training
    rows, the dev split, the dev history and the trained weights must be identical."""
    import shutil

    other = project.parent / "shuffled"
    shutil.copytree(project, other)
    test_file = other / "datasets" / "tfns" / "sent_valid.csv"
    frame = pd.read_csv(test_file)
    frame["label"] = np.random.default_rng(0).permutation(frame["label"].to_numpy())
    frame.to_csv(test_file, index=False)

    outcomes = []
    for root in (project, other):
        from finsent.data import versioning
        p = replace(load_params(root / "params.yaml"), train={"base_model": str(tiny_model_dir), "epochs": 2.0, "progress": False, "learning_rate": 5e-3})
        versioning.ensure_data(root, p.data, log=lambda *_: None)
        prepared = prepare.run(p.data, root, root / "artifacts" / "data")
        augmented = augment.run(p.augment, prepared.train_path, [prepared.dev_path, prepared.eval_path], root / "artifacts" / "aug.csv")
        summary = train.run(dataclasses.replace(p.train, checkpoint_every_minutes=0.0), augmented.output, root / "artifacts" / "train", log=lambda _: None, dev_path=prepared.dev_path)
        from transformers import AutoModelForSequenceClassification

        weights = AutoModelForSequenceClassification.from_pretrained(summary.model_dir).state_dict()
        outcomes.append((read_dataset(augmented.output), read_dataset(prepared.dev_path), summary, weights, read_dataset(prepared.eval_path)))

    (train_a, dev_a, summary_a, weights_a, test_a), (train_b, dev_b, summary_b, weights_b, test_b) = outcomes
    assert not (test_a["label"].to_numpy() == test_b["label"].to_numpy()).all()  # the test sets do differ
    pd.testing.assert_frame_equal(train_a, train_b)
    pd.testing.assert_frame_equal(dev_a, dev_b)
    assert summary_a.dev_history == summary_b.dev_history and summary_a.selected == summary_b.selected
    for name, tensor in weights_a.items():
        assert torch.equal(tensor, weights_b[name]), name

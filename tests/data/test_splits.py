"""The dev split carved from TFNS training data, and the test set (TFNS validation) kept out of every
training decision: not in the training rows, not in dev, not in what augmentation adds, not in the
unlabelled news that task-adaptive pre-training and self-training read, and not able to change the
trained weights or the weights the dev split selects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from finsent import augment
from finsent.augment.overlap import EvalOverlapIndex
from finsent.config import load_params, replace
from finsent.data import prepare
from finsent.data.frames import read_dataset
from finsent.data.split import dev_split
from finsent.data.validate import normalise_text
from finsent.training import train
from testkit.tiny_bert import TINY_RECIPE

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

        p = replace(
            load_params(root / "params.yaml"),
            train={"base_model": str(tiny_model_dir), "epochs": 2.0, "progress": False, "learning_rate": 5e-3, **TINY_RECIPE},
        )
        versioning.ensure_data(root, p.data, log=lambda *_: None)
        prepared = prepare.run(p.data, root, root / "artifacts" / "data")
        augmented = augment.run(p.augment, prepared.train_path, [prepared.dev_path, prepared.eval_path], root / "artifacts" / "aug.csv")
        summary = train.run(
            dataclasses.replace(p.train, checkpoint_every_minutes=0.0),
            augmented.output,
            root / "artifacts" / "train",
            log=lambda _: None,
            dev_path=prepared.dev_path,
        )
        from transformers import AutoModelForSequenceClassification

        weights = AutoModelForSequenceClassification.from_pretrained(summary.model_dir).state_dict()
        outcomes.append(
            (read_dataset(augmented.output), read_dataset(prepared.dev_path), summary, weights, read_dataset(prepared.eval_path))
        )

    (train_a, dev_a, summary_a, weights_a, test_a), (train_b, dev_b, summary_b, weights_b, test_b) = outcomes
    assert not (test_a["label"].to_numpy() == test_b["label"].to_numpy()).all()  # the test sets do differ
    pd.testing.assert_frame_equal(train_a, train_b)
    pd.testing.assert_frame_equal(dev_a, dev_b)
    assert summary_a.dev_history == summary_b.dev_history and summary_a.selected == summary_b.selected
    for name, tensor in weights_a.items():
        assert torch.equal(tensor, weights_b[name]), name


def fresh_news(n: int) -> list[str]:
    """Unlabelled texts that are in no TFNS split."""
    words = ["beats", "misses", "holds", "raises", "cuts"]
    return [f"$ZZQ{i} {words[i % 5]} guidance in unscheduled update number {i}" for i in range(n)]


def mangled(text: str) -> str:
    """The same row as ``data`` sees it: another case, other spacing."""
    return "  " + " ".join(text.upper().split()) + " "


def test_the_unlabelled_pool_holds_no_copy_of_a_dev_or_test_row(splits, tfns_valid):
    fresh = fresh_news(50)
    news = (
        fresh
        + [mangled(t) for t in splits.dev["text"][:40]]
        + [mangled(t) for t in tfns_valid["text"][:40]]
        + list(splits.train["text"][:10])
    )
    pool = prepare.unlabelled_pool(news, [splits.train], [splits.dev, splits.test, tfns_valid])
    assert pool.texts == fresh
    assert not keys(pd.DataFrame({"text": pool.texts})) & (keys(splits.dev) | keys(tfns_valid))
    assert pool.dropped_heldout == 80 and pool.dropped_labelled == 10


def test_copies_of_dev_and_test_rows_in_the_news_cannot_change_tapt_self_training_or_the_weights(project, tiny_model_dir):
    """The same project trained with TAPT and self-training on two news sets: one clean, one that also
    holds copies of every dev and test row. The unlabelled pool, what TAPT and self-training report,
    and the trained weights must be identical: no dev or test text reached them."""
    from transformers import AutoModelForSequenceClassification

    from finsent.data import versioning

    train_settings = {
        "base_model": str(tiny_model_dir),
        "epochs": 1.0,
        "progress": False,
        "learning_rate": 5e-3,
        "checkpoint_every_minutes": 0.0,
        "tapt_steps": 6,
        "tapt_batch_size": 8,
        "self_training_threshold": 0.5,
        **TINY_RECIPE,
    }
    p = replace(load_params(project / "params.yaml"), train=train_settings)
    versioning.ensure_data(project, p.data, log=lambda *_: None)
    clean = fresh_news(60)
    first = prepare.run(p.data, project, project / "artifacts" / "probe")  # the dev and test rows of this project
    heldout = read_dataset(first.dev_path)["text"].tolist() + read_dataset(first.eval_path)["text"].tolist()
    dirty = [mangled(t) for t in heldout[:30]] + clean[:30] + heldout + clean[30:]  # before, among and after the clean news

    outcomes = []
    for name, news in (("clean", clean), ("dirty", dirty)):
        out = project / "artifacts" / name
        prepared = prepare.run(p.data, project, out / "data", news_texts=news)
        augmented = augment.run(p.augment, prepared.train_path, [prepared.dev_path, prepared.eval_path], out / "aug.csv")
        summary = train.run(
            p.train,
            augmented.output,
            out / "train",
            log=lambda _: None,
            dev_path=prepared.dev_path,
            unlabelled_path=prepared.unlabelled_path,
        )
        weights = AutoModelForSequenceClassification.from_pretrained(summary.model_dir).state_dict()
        outcomes.append((prepared, pd.read_csv(prepared.unlabelled_path), summary, weights))

    (prep_a, pool_a, summary_a, weights_a), (prep_b, pool_b, summary_b, weights_b) = outcomes
    assert prep_a.unlabelled_dropped_heldout == 0 and prep_b.unlabelled_dropped_heldout == 30 + len(heldout)
    pd.testing.assert_frame_equal(pool_a, pool_b)
    assert pool_a["text"].tolist() == clean
    assert summary_a.unlabelled_texts == len(clean) and summary_a.tapt["texts"] == summary_b.tapt["texts"]
    assert summary_a.self_training["pseudo_labelled"] > 0 and summary_a.self_training == summary_b.self_training
    assert summary_a.dev_history == summary_b.dev_history
    for name, tensor in weights_a.items():
        assert torch.equal(tensor, weights_b[name]), name

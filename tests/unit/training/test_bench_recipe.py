"""bench/bench_recipe.py with a dev split per seed, run whole on the tiny BERT: seed i trains and selects
on split i, the test set is one, and distillation (whose teachers trained on one another's dev rows)
refuses to run."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from testkit.bench_modules import bench_module

SEEDS = [1, 2]


@pytest.fixture(scope="module")
def bench():
    return bench_module("bench_recipe")


@pytest.fixture(scope="module")
def study(bench, tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    for seed in SEEDS:
        bench.prepare(root / f"dev{seed}", max_train_rows=120, dev_seed=seed)
    out = root / "study.json"
    bench.run(root / "dev{seed}", str(tiny_model_dir), SEEDS, ["baseline", "distill_ensemble"], out, epochs=1.0)
    return root, json.loads(out.read_text())


@pytest.mark.slow
def test_each_seed_trains_and_selects_on_its_own_dev_split(study):
    root, results = study
    devs = [pd.read_csv(root / f"dev{seed}" / "dev.csv") for seed in SEEDS]
    assert [json.loads((root / f"dev{seed}" / "prepare.json").read_text())["dev_seed"] for seed in SEEDS] == SEEDS
    assert abs(len(devs[0]) - len(devs[1])) <= 1  # the same share, rounded per class
    assert len(set(devs[0]["text"]) & set(devs[1]["text"])) < len(devs[0]) / 2  # two draws, not one
    assert (root / "dev1" / "test.csv").read_bytes() == (root / "dev2" / "test.csv").read_bytes()
    runs = results["variants"]["baseline"]["runs"]
    assert [(r["seed"], r["data"]) for r in runs] == [(seed, str(root / f"dev{seed}")) for seed in SEEDS]
    assert results["data"] == str(root / "dev{seed}")
    for seed in SEEDS:  # the baseline of each seed is saved with its own split
        assert (root / f"dev{seed}" / "teachers" / f"baseline-seed{seed}" / "config.json").is_file()
    # Teacher 2 trained on rows that are seed 1's dev split: distilling from it would leak into selection.
    assert "distill_ensemble" not in results["variants"]


@pytest.mark.slow
def test_folders_with_different_test_sets_are_refused(bench, study, tiny_model_dir):
    root, _ = study
    shutil.copytree(root / "dev2", root / "dev3", ignore=shutil.ignore_patterns("teachers"))
    test = pd.read_csv(root / "dev3" / "test.csv")
    test.iloc[:-1].to_csv(root / "dev3" / "test.csv", index=False)
    with pytest.raises(SystemExit, match="test sets of .* differ"):
        bench.run(root / "dev{seed}", str(tiny_model_dir), [1, 3], ["baseline"], root / "refused.json", epochs=1.0)
    assert not (root / "refused.json").exists()


@pytest.mark.slow
def test_a_study_on_one_dev_split_does_not_take_runs_on_a_split_per_seed(bench, study, tiny_model_dir):
    root, _ = study
    with pytest.raises(SystemExit, match="holds runs with a dev split per seed"):
        bench.run(root / "dev1", str(tiny_model_dir), [1], ["baseline"], root / "study.json", epochs=1.0)

"""bench/bench_active.py, the simulated labelling loop of issue 16, run whole on the tiny BERT at tiny sizes:
the JSON it writes, picks that never repeat nor come from the test set, and arms that share their start."""

from __future__ import annotations

import json

import numpy as np
import pytest

from testkit.bench_modules import bench_module

SEEDS = (1, 2)
ROUNDS, PER_ROUND, START_FRACTION, POOL_ROWS, TEST_ROWS = 2, 15, 0.02, 90, 60
ARGS = [
    "--learner", "finetune", "--seeds", *map(str, SEEDS), "--rounds", str(ROUNDS), "--per-round", str(PER_ROUND), "--epochs", "1",
    "--start-fraction", str(START_FRACTION), "--pool-rows", str(POOL_ROWS), "--test-rows", str(TEST_ROWS),
]  # fmt: skip


@pytest.fixture(scope="module")
def bench():
    return bench_module("bench_active")


@pytest.fixture(scope="module")
def honest(bench):
    return bench.honest_rows()


@pytest.fixture(scope="module")
def ran(bench, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("active") / "active.json"
    results = bench.main([*ARGS, "--encoder", str(tiny_model_dir), "--out", str(out)], log=lambda _: None)
    return results, out


@pytest.mark.slow  # the whole bench loop on the tiny BERT (the `ran` fixture: ~10 CPU-s)
def test_the_json_holds_the_budget_every_arm_and_round_and_the_labels_to_reach_random(bench, ran):
    results, out = ran
    written = json.loads(out.read_text())
    assert written["summary"] == results["summary"] and written["table"] == results["table"]
    budget = written["budget"]
    strategies = [bench.RANDOM, "uncertainty", "margin", "diverse", "drifted"]
    assert budget["settings"]["strategies"] == strategies and budget["seeds"] == list(SEEDS)
    assert (budget["settings"]["rounds"], budget["settings"]["per_round"], budget["settings"]["epochs"]) == (ROUNDS, PER_ROUND, 1.0)
    assert budget["settings"]["learner"] == "finetune"
    start = budget["start_rows"]
    assert start == round(START_FRACTION * written["data"]["honest_train_rows"])
    assert budget["labelled_rows_per_round"] == [start + r * PER_ROUND for r in range(ROUNDS + 1)]
    assert budget["fits"] == len(SEEDS) * (1 + len(strategies) * ROUNDS)
    assert budget["wall_seconds"] > 0 and budget["estimate_seconds_idle"]["total"] > 0
    assert written["data"]["test_rows_scored"] == TEST_ROWS

    summary = written["summary"]
    assert summary["seeds"] == list(SEEDS) and list(summary["strategies"]) == strategies
    for strategy, entry in summary["strategies"].items():
        assert [r["labelled"] for r in entry["rounds"]] == budget["labelled_rows_per_round"], strategy
        for r in entry["rounds"]:
            assert 0.0 <= r["macro_f1_mean"] <= 1.0 and r["macro_f1_std"] >= 0.0 and 0.0 <= r["accuracy_mean"] <= 1.0
        needed = entry["labels_to_reach_random_final"]
        assert needed is None or start <= needed <= budget["labelled_rows_per_round"][-1]
        assert strategy in written["table"]
    random = summary["strategies"][bench.RANDOM]
    assert summary["random_final_macro_f1"] == random["rounds"][-1]["macro_f1_mean"]
    assert random["labels_to_reach_random_final"] is not None and random["labels_saved_vs_random"] == 0.0
    per_seed = [written["runs"][str(s)]["arms"]["margin"]["rounds"][1]["macro_f1"] for s in SEEDS]
    assert summary["strategies"]["margin"]["rounds"][1]["macro_f1_mean"] == pytest.approx(np.mean(per_seed))


@pytest.mark.slow
def test_every_arm_starts_from_the_same_rows_and_picks_new_pool_rows_never_test_rows(bench, ran, honest):
    from finsent.augment.overlap import overlap_key

    results, _ = ran
    rows, test, _ = honest
    test_keys = {overlap_key(t) for t in test["text"]}
    for seed in SEEDS:
        run = results["runs"][str(seed)]
        start, pool = bench.start_and_pool(rows, START_FRACTION, POOL_ROWS, seed)
        assert run["start_digest"] == bench.digest(start) and run["pool_ids"] == pool.tolist()
        assert not set(start) & set(pool)
        round0 = None
        for strategy, arm in run["arms"].items():
            assert arm["start_digest"] == run["start_digest"], strategy  # random and the strategies alike
            first = {k: arm["rounds"][0][k] for k in ("labelled", "macro_f1", "accuracy")}
            assert round0 is None or first == round0, strategy
            round0 = first
            picked = [i for r in arm["rounds"] for i in r.get("picked", [])]
            assert [len(r.get("picked", [])) for r in arm["rounds"]] == [PER_ROUND] * ROUNDS + [0], strategy
            assert len(set(picked)) == len(picked), f"{strategy} picked a row twice"
            assert set(picked) <= set(pool.tolist()), f"{strategy} picked outside its pool"
            assert not {overlap_key(rows["text"][i]) for i in picked} & test_keys, f"{strategy} picked a test row"
        # the strategies act: uncertainty's first picks are not random's
        assert run["arms"]["uncertainty"]["rounds"][0]["picked"] != run["arms"][bench.RANDOM]["rounds"][0]["picked"]


@pytest.mark.slow
def test_a_rerun_with_the_same_settings_keeps_the_finished_seeds(bench, ran, tiny_model_dir):
    results, out = ran
    said: list[str] = []
    again = bench.main([*ARGS, "--encoder", str(tiny_model_dir), "--out", str(out)], log=said.append)
    assert sum("skipped" in line for line in said) == len(SEEDS)
    assert again["runs"] == results["runs"] and again["summary"] == results["summary"]


@pytest.mark.parametrize(
    ("scores", "needed"),
    [
        ([0.50, 0.60, 0.70], 300.0),  # reached at the last round
        ([0.50, 0.90, 0.70], 150.0),  # first crossing, halfway between rounds 0 and 1
        ([0.75, 0.60, 0.65], 100.0),  # already at the start
        ([0.50, 0.60, 0.69], None),  # never
    ],
)
def test_labels_to_reach_interpolates_between_rounds(bench, scores, needed):
    assert bench.labels_to_reach([100, 200, 300], scores, 0.70) == (None if needed is None else pytest.approx(needed))


@pytest.mark.slow
def test_the_head_learner_runs_the_same_loop_and_gives_the_same_numbers_twice(bench, ran, tiny_model_dir, tmp_path):
    """The default learner: a logistic head on frozen embeddings, refitted each round. Its fits are
    deterministic: a second run from scratch gives every arm the same scores, so arms differ only by
    the rows they picked."""
    args = [a for a in ARGS if a not in ("--learner", "finetune")]
    first, second = (
        bench.main([*args, "--encoder", str(tiny_model_dir), "--out", str(tmp_path / name)], log=lambda _: None)
        for name in ("head.json", "again.json")
    )
    written = json.loads((tmp_path / "head.json").read_text())
    assert written["budget"]["settings"]["learner"] == "head" and written["summary"] == first["summary"]
    assert set(written["budget"]["estimate_seconds_idle"]) == {"embed", "total"}
    finetuned, _ = ran
    for seed in SEEDS:
        run, same_rows = first["runs"][str(seed)], finetuned["runs"][str(seed)]
        assert run["start_digest"] == same_rows["start_digest"] and run["pool_ids"] == same_rows["pool_ids"]
        for strategy, arm in run["arms"].items():
            again = second["runs"][str(seed)]["arms"][strategy]["rounds"]
            assert [(r["macro_f1"], r.get("picked")) for r in arm["rounds"]] == [(r["macro_f1"], r.get("picked")) for r in again], strategy

"""The search's pure parts: the space, each trial's settings, the params file written back. (On a throw-away
project: tests/integration/test_tune_project.py; the whole search: tests/integration/test_tuning_flow.py.)"""

from __future__ import annotations

import optuna
import pytest
import yaml

from finsent.config import ConfigError, TrainParams, TuneParams, replace
from finsent.params_file import set_values
from finsent.training import tune

TEXT = """# header comment
train:
  epochs: 2.0             # keep me
  learning_rate: 1.0e-4
  on_cuda:                # GPU settings
    learning_rate: 3.0e-4
    epochs: 8.0
  tags: {a: 1}
evaluate:
  batch_size: 256
"""


def test_values_are_written_in_place_with_comments_kept():
    out = set_values(TEXT, {("train", "epochs"): 3.5, ("train", "on_cuda", "learning_rate"): 1e-05, ("train", "schedule"): "cosine"})
    assert "  epochs: 3.5             # keep me" in out and "# header comment" in out and "# GPU settings" in out
    parsed = yaml.safe_load(out)
    assert parsed["train"]["on_cuda"] == {"learning_rate": 1e-05, "epochs": 8.0}
    assert parsed["train"]["learning_rate"] == 1e-4 and parsed["train"]["schedule"] == "cosine"
    assert parsed["evaluate"] == {"batch_size": 256}


def test_values_the_editor_cannot_place_are_refused():
    with pytest.raises(ConfigError, match="section"):
        set_values(TEXT, {("tune", "n_trials"): 3})
    with pytest.raises(ConfigError, match="block"):
        set_values(TEXT, {("train", "tags"): {"a": 2}})


def test_distributions_follow_the_space():
    space = {
        "learning_rate": {"low": 1e-5, "high": 1e-3, "log": True},
        "batch_size": {"low": 16, "high": 64, "step": 16},
        "schedule": {"choices": ["linear", "cosine"]},
    }
    dists = tune.distributions(space)
    assert isinstance(dists["learning_rate"], optuna.distributions.FloatDistribution) and dists["learning_rate"].log
    assert isinstance(dists["batch_size"], optuna.distributions.IntDistribution) and dists["batch_size"].step == 16
    assert dists["schedule"].choices == ("linear", "cosine")


def test_searched_values_win_over_the_gpu_overrides():
    train = TrainParams(learning_rate=1e-4, epochs=2.0, on_cuda={"learning_rate": 3e-4, "epochs": 8.0, "batch_size": 256})
    p = tune.trial_train_params(train, TuneParams(epochs=4.0), {"learning_rate": 2e-4}, "cuda:1")
    assert p.learning_rate == 2e-4 and p.epochs == 4.0 and p.device == "cuda:1"
    assert p.on_cuda == {"batch_size": 256}  # tune.epochs and the searched lr win on a GPU too
    assert tune.current_values(train, {"learning_rate": {}, "schedule": {}}, on_cuda=True) == {"learning_rate": 3e-4, "schedule": "linear"}
    assert tune.current_values(train, {"learning_rate": {}}, on_cuda=False) == {"learning_rate": 1e-4}


def test_parallel_trials_share_the_cpu_and_the_devices():
    p = tune.trial_train_params(TrainParams(), TuneParams(parallel_trials=2), {}, None)
    assert p.num_threads is not None and p.num_threads >= 1
    assert tune.trial_device(TuneParams(devices=["cuda:0", "cuda:1"]), 3) == "cuda:1"
    assert tune.waves(5, 2) == [2, 2, 1] and tune.waves(0, 2) == []


@pytest.mark.parametrize(
    "space, message",
    [
        ({"dropout": {"low": 0, "high": 1}}, "not tunable"),
        ({"learning_rate": {"low": 1e-3, "high": 1e-4}}, "low < high"),
        ({"learning_rate": {"low": 0.0, "high": 1e-3, "log": True}}, "log"),
        ({"schedule": {"choices": []}}, "choices"),
        ({}, "empty"),
    ],
)
def test_bad_search_spaces_are_rejected(space, message):
    with pytest.raises(ConfigError, match=message):
        TuneParams(search_space=space)


def test_search_needs_a_dev_split(tmp_path):
    with pytest.raises(tune.TuneError, match="dev split"):
        tune.trial_data(tmp_path / "train.csv", None, TuneParams(), 0)


@pytest.mark.parametrize(
    "space, message",
    [
        ({"schedule": {"choices": ["linear", "step"]}}, "'step' is not a valid train.schedule"),
        ({"label_smoothing": {"low": 0.0, "high": 1.5}}, "1.5 is not a valid train.label_smoothing"),
    ],
)
def test_search_values_must_be_valid_train_settings(space, message):
    with pytest.raises(ConfigError, match=message):
        TuneParams(search_space=space)


def test_the_search_refuses_to_start_without_a_dev_split(tmp_path):
    from finsent.config import Params

    p = replace(Params(), data={"dev_fraction": 0.0})
    with pytest.raises(tune.TuneError, match="dev_fraction"):
        tune.open_search(p, tmp_path, {})
    assert not (tmp_path / "artifacts").exists()


def test_a_study_resumes_only_where_its_scores_stay_comparable():
    from finsent.config import Params

    p = replace(Params(), tune={"search_space": {"learning_rate": {"low": 1e-5, "high": 1e-3, "log": True}}})
    basis = tune.study_basis(p, "md5-a")
    unchanged = [
        tune.study_basis(p, "md5-a"),
        tune.study_basis(p, None),  # a library call that knows no data version
        tune.study_basis(replace(p, train={"learning_rate": 3e-4, "device": "cuda", "progress": False, "num_threads": 1}), "md5-a"),
        tune.study_basis(
            replace(p, tune={"search_space": {"learning_rate": {"low": 1e-6, "high": 1e-2}, "schedule": {"choices": ["linear"]}}}), "md5-a"
        ),
        tune.study_basis(replace(p, tune={"n_trials": 50, "parallel_trials": 2}), "md5-a"),
    ]
    assert all(tune.basis_changes(basis, other) == [] for other in unchanged)
    assert tune.basis_changes(basis, tune.study_basis(p, "md5-b")) == ["data version: md5-a -> md5-b"]
    assert tune.basis_changes(basis, tune.study_basis(replace(p, train={"epochs": 5.0}), "md5-a")) == [
        f"train.epochs: {p.train.epochs!r} -> 5.0"
    ]
    assert tune.basis_changes(basis, tune.study_basis(replace(p, train={"on_cuda": {"batch_size": 128}}), "md5-a"))[0].startswith(
        "train.on_cuda.batch_size"
    )
    assert tune.basis_changes(basis, tune.study_basis(replace(p, tune={"max_train_rows": 500}), "md5-a")) == [
        "tune.max_train_rows: None -> 500"
    ]
    budgeted = replace(p, tune={"epochs": 1.0})  # trials train for tune.epochs, whatever train.epochs says
    assert (
        tune.basis_changes(tune.study_basis(budgeted, "md5-a"), tune.study_basis(replace(budgeted, train={"epochs": 5.0}), "md5-a")) == []
    )

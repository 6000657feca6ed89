"""The search's parts on a throw-away project (git, DVC remote, MLflow and Optuna stores): the tune command
refusing bad settings, the best values written back, and a study that resumes only where comparable."""

from __future__ import annotations

import optuna
import pytest

from finsent.cli import main
from finsent.config import load_params, replace
from finsent.training import tune

pytestmark = pytest.mark.integration


def test_tune_command_rejects_bad_settings_before_starting(project, capsys):
    assert main(["--root", str(project), "--set", "tune.search_space={dropout: {low: 0, high: 1}}", "tune"]) == 2
    assert "not tunable" in capsys.readouterr().err
    assert main(["--root", str(project), "tune", "--trials", "0"]) == 2


def test_write_best_targets_the_settings_in_effect(project):
    p = replace(load_params(project / "params.yaml"), tune={"write_params_to": "params.tuned.yaml"})
    target, written = tune.write_best(p, project, project / "params.yaml", {"learning_rate": 2e-4, "label_smoothing": 0.05}, on_cuda=True)
    assert target == project / "params.tuned.yaml" and (project / "params.yaml").read_text() != target.read_text()
    tuned = load_params(target)
    assert tuned.train.on_cuda["learning_rate"] == 2e-4 and tuned.train.label_smoothing == 0.05
    assert tuned.train.learning_rate == load_params(project / "params.yaml").train.learning_rate
    assert written == {"train.on_cuda.learning_rate": 2e-4, "train.label_smoothing": 0.05}


def test_best_values_go_to_the_params_file_in_use_by_default(project):
    other = project / "other.yaml"
    other.write_text((project / "params.yaml").read_text())
    p = load_params(other)
    target, _ = tune.write_best(p, project, other, {"label_smoothing": 0.07}, on_cuda=False)
    assert target == other and load_params(other).train.label_smoothing == 0.07
    assert load_params(project / "params.yaml").train.label_smoothing == 0.0


def test_resuming_under_other_data_or_settings_is_refused_before_the_study_changes(project, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = load_params(project / "params.yaml")
    first = tune.open_search(p, project, {"data.dvc_md5": "md5-a"})
    assert tune.open_search(p, project, {"data.dvc_md5": "md5-a"}).parent_run_id == first.parent_run_id
    study = tune.load_study(p.tune, first.storage)
    stale = study.ask(tune.distributions(p.tune.search_space))  # an interrupted trial, left RUNNING

    with pytest.raises(tune.TuneError, match=r"not comparable.*data version: md5-a -> md5-b.*study_name=finsent-tune-2"):
        tune.open_search(p, project, {"data.dvc_md5": "md5-b"})
    with pytest.raises(tune.TuneError, match=r"train\.max_length: 128 -> 64"):
        tune.open_search(replace(p, train={"max_length": 64}), project, {"data.dvc_md5": "md5-a"})
    trials = tune.load_study(p.tune, first.storage).get_trials()
    assert trials[stale.number].state == optuna.trial.TrialState.RUNNING  # refused runs requeued nothing

    other = tune.open_search(replace(p, tune={"study_name": "finsent-tune-2"}), project, {"data.dvc_md5": "md5-b"})
    assert other.parent_run_id != first.parent_run_id

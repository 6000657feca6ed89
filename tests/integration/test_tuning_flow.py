"""The tuning flow through Prefect: Optuna trials as parallel tasks, nested MLflow runs, the best
values written back into params.yaml, and a search that resumes where an interrupted one stopped."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from finsent.config import load_params, replace
from finsent.paths import RunLayout
from finsent.training import tune
from testkit.tiny_bert import TINY_RECIPE

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Parallel trials give each its share of the cores (torch.set_num_threads, process-wide):
    the tests that follow get them all back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


SPACE = {"learning_rate": {"low": 1.0e-3, "high": 1.0e-2, "log": True}, "schedule": {"choices": ["linear", "cosine"]}}


def overrides(tiny_model_dir, n_trials: int, parallel: int = 2) -> dict:
    return {
        "train": {
            "base_model": str(tiny_model_dir),
            "epochs": 2.0,
            "progress": False,
            "learning_rate": 5e-3,
            "eval_every_epochs": 1.0,
            **TINY_RECIPE,
        },
        "tune": {"n_trials": n_trials, "parallel_trials": parallel, "search_space": SPACE},
    }


def study_of(project):
    p = load_params(project / "params.yaml")
    return tune.load_study(p.tune, tune.storage_url(p.tune, project))


def children(project, parent_run_id: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return parent, runs


def test_search_runs_trials_as_nested_runs_writes_the_best_back_and_resumes(project, tiny_model_dir, monkeypatch):
    from flows.tuning import tuning_flow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reads = []  # every file a trial reads: the training rows and the dev split, never the test set
    read = tune.read_dataset
    monkeypatch.setattr(tune, "read_dataset", lambda path: reads.append(Path(path).resolve()) or read(path))
    before = (project / "params.yaml").read_text()
    summary = tuning_flow(root=str(project), overrides=overrides(tiny_model_dir, n_trials=3))
    [run_dir] = (project / "artifacts" / "runs").resolve().iterdir()
    run = RunLayout(run_dir)
    assert set(reads) == {run.augmented_train, run.prepared.dev}

    study = study_of(project)
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state.is_finished() for t in trials)
    baseline = trials[0]
    assert baseline.user_attrs["baseline"] and baseline.params == {"learning_rate": 5e-3, "schedule": "linear"}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number))
    assert summary.best_trial == best.number and summary.best_dev_macro_f1 == pytest.approx(best.value)
    assert summary.baseline_dev_macro_f1 == pytest.approx(baseline.value) and best.value >= baseline.value

    # Each trial is a nested run under the search's parent run, with its values and dev scores.
    parent, runs = children(project, summary.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["best_trial"] == str(best.number)
    assert sorted(int(r.data.tags["optuna.trial"]) for r in runs) == [0, 1, 2]
    for run in runs:
        trial = trials[int(run.data.tags["optuna.trial"])]
        assert float(run.data.params["learning_rate"]) == pytest.approx(trial.params["learning_rate"])
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert run.data.metrics["best_dev_macro_f1"] == pytest.approx(trial.value)
            assert "dev_macro_f1" in run.data.metrics

    # The best values are in params.yaml, its comments and other values untouched; it still loads.
    after = (project / "params.yaml").read_text()
    p = load_params(project / "params.yaml")
    assert p.train.learning_rate == best.params["learning_rate"] and p.train.schedule == best.params["schedule"]
    assert summary.written == {"train.learning_rate": best.params["learning_rate"], "train.schedule": best.params["schedule"]}
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(before.splitlines()) == len(after.splitlines()) and len(changed) <= 2
    assert all(a.split(":")[0] in {"  learning_rate", "  schedule"} for a, _ in changed)

    # An interrupted search left a trial running: the next run fails it, reruns its values, and only
    # adds the trials still missing, under the same parent run.
    p = load_params(project / "params.yaml")
    stale = study_of(project).ask(tune.distributions(SPACE))
    resumed = tuning_flow(root=str(project), overrides=overrides(tiny_model_dir, n_trials=4))
    trials = study_of(project).get_trials()
    assert trials[stale.number].state == optuna.trial.TrialState.FAIL and trials[stale.number].user_attrs["interrupted"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == stale.number]
    assert len(retry) == 1 and retry[0].params == stale.params and retry[0].state.is_finished()
    assert len(trials) == 5 and tune.finished_trials(study_of(project)) == 4
    assert resumed.parent_run_id == summary.parent_run_id

    # Nothing left to do: a rerun runs no trial.
    again = tuning_flow(root=str(project), overrides=overrides(tiny_model_dir, n_trials=4))
    assert len(study_of(project).get_trials()) == 5 and again.best_trial == resumed.best_trial


def test_a_second_search_of_the_same_study_is_refused_while_one_runs(project):
    p = replace(load_params(project / "params.yaml"))
    with tune.search_lock(project, p), pytest.raises(tune.TuneError, match="another search"), tune.search_lock(project, p):
        pass

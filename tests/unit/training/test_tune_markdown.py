"""The search's trials as table rows, and the note on the best trial, for Prefect's UI."""

from __future__ import annotations

import json

import optuna

from finsent.training.tune import SearchSummary, TrialRecord
from finsent.training.tune_markdown import best_trial_headline, best_trial_markdown, trial_rows

TRIALS = [
    TrialRecord(0, "COMPLETE", 0.61234567, {"learning_rate": 5e-5, "epochs": 2}, baseline=True, seconds=12.34),
    TrialRecord(1, "PRUNED", None, {"learning_rate": 1e-4, "epochs": 3}),
    TrialRecord(2, "FAIL", None, {"learning_rate": 2e-5, "epochs": 1}, interrupted=True),
    TrialRecord(3, "COMPLETE", 0.7, {"learning_rate": 3e-5, "epochs": 3}, seconds=9.0),
]
SUMMARY = SearchSummary(
    study_name="finsent-tune", best_trial=3, best_dev_macro_f1=0.7, best_params={"learning_rate": 3e-5, "epochs": 3},
    baseline_dev_macro_f1=0.61234567, trials={"COMPLETE": 2, "PRUNED": 1, "FAIL": 1}, params_file="/p/params.yaml",
    written={"train.learning_rate": 3e-5, "train.epochs": 3}, parent_run_id="parent1",
)  # fmt: skip


def test_one_row_per_trial_with_number_state_value_and_params():
    rows = trial_rows(TRIALS)
    assert [r["number"] for r in rows] == [0, 1, 2, 3]
    assert [r["state"] for r in rows] == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    assert rows[0]["value"] == 0.612346 and rows[1]["value"] is None
    assert rows[0]["params"] == "epochs=2, learning_rate=5e-05"
    assert rows[0]["note"].startswith("baseline") and rows[2]["note"].startswith("interrupted") and rows[3]["note"] == ""
    json.dumps(rows)  # a Prefect table artifact is sent as JSON


def test_best_trial_note():
    text = best_trial_markdown(SUMMARY)
    assert "Best trial **3**: dev macro-F1 **0.7** (baseline 0.6123, +0.0877)." in text
    assert "| train.learning_rate | 3e-05 |" in text and "| train.epochs | 3 |" in text
    assert "complete: 2, fail: 1, pruned: 1" in text
    assert "`/p/params.yaml`" in text and "`parent1`" in text
    assert best_trial_headline(SUMMARY) == "study finsent-tune: best trial 3, dev macro-F1 0.7"


def test_study_trials_reads_every_trial_of_the_stored_study(tmp_path):
    from finsent.config import Params, replace
    from finsent.training import tune

    p = replace(Params(), tune={"search_space": {"learning_rate": {"low": 1e-5, "high": 1e-3, "log": True}}})
    url = f"sqlite:///{tmp_path}/study.db"
    study = tune.load_study(p.tune, url, create=True)
    study.enqueue_trial({"learning_rate": 1e-4}, user_attrs={"baseline": True})
    study.tell(study.ask(tune.distributions(p.tune.search_space)), 0.5)
    study.tell(study.ask(tune.distributions(p.tune.search_space)), state=optuna.trial.TrialState.PRUNED)
    search = tune.Search(study_name=p.tune.study_name, storage=url, parent_run_id="", experiment_id="", trials_left=0, requeued=[])

    records = tune.study_trials(p, search)
    assert [(r.number, r.state, r.value, r.baseline) for r in records] == [(0, "COMPLETE", 0.5, True), (1, "PRUNED", None, False)]
    assert records[0].params == {"learning_rate": 1e-4} and records[0].seconds is not None

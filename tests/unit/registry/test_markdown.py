"""The training report published to Prefect's UI: the gate's decision with every reason, the metrics,
and where the run is in MLflow."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from finsent.config import EvaluateParams, GateParams
from finsent.evaluation.behaviour import BehaviourResult
from finsent.evaluation.gate import decide
from finsent.paths import RunLayout
from finsent.registry import markdown
from finsent.registry.versions import RegistrationSummary

SQLITE = "sqlite:////srv/project/mlflow.db"
METRICS = {
    "macro_f1": 0.8123,
    "accuracy": 0.85,
    "ece": 0.031,
    "rows": 120,
    "per_class": {"bearish": {"precision": 0.8, "recall": 0.7, "f1": 0.7467, "support": 20}},
}


def gate_reasons() -> tuple[list[str], list[str]]:
    """Real reasons from the gate: a first model that passes every check, then one refused against it."""
    rng = np.random.default_rng(3)
    y_true = rng.choice(3, size=600, p=[0.2, 0.3, 0.5])
    pred = np.where(rng.random(600) < 0.85, y_true, (y_true + 1) % 3)
    probs = np.full((600, 3), 0.075)
    probs[np.arange(600), pred] = 0.85
    texts = pd.Series([f"$AAPL headline {i}" for i in range(600)])
    rates = {"minimum_functionality": 1.0, "invariance": 1.0, "directional": 1.0}
    behaviour = BehaviourResult(rates, {k: {"passed": 100, "total": 100} for k in rates}, {"bearish": 1.0, "bullish": 1.0, "neutral": 1.0})
    params = GateParams(bootstrap_samples=200, seed=1)
    accepted = decide(y_true, probs, None, texts, behaviour, params, EvaluateParams())
    refused = decide(y_true, probs, probs, texts, behaviour, params, EvaluateParams())
    assert accepted.promote and not refused.promote
    return accepted.reasons, refused.reasons


def summary(promoted: bool, reasons: list[str]) -> RegistrationSummary:
    return RegistrationSummary(
        run_id="0a1b2c", model_name="finsent-sentiment", version="8" if not promoted else "7", promoted=promoted,
        champion_version="7", previous_champion_version=None if promoted else "7", reasons=reasons, experiment_id="3",
    )  # fmt: skip


def test_every_gate_reason_appears_verbatim_accepted_and_refused():
    accepted, refused = gate_reasons()
    assert len(accepted) > len(refused) >= 1

    promoted = markdown.training_markdown(summary(True, accepted), METRICS, SQLITE, dev_macro_f1=0.79)
    for reason in accepted:
        assert reason in promoted
    assert "Version 7 **promoted** to champion." in promoted
    assert "| champion before | none |" in promoted and "| champion after | 7 |" in promoted

    not_promoted = markdown.training_markdown(summary(False, refused), METRICS, SQLITE)
    for reason in refused:
        assert reason in not_promoted
    assert "Version 8 **not promoted**: the champion stays 7." in not_promoted
    assert "| champion before | 7 |" in not_promoted and "| champion after | 7 |" in not_promoted
    assert "the checks that refused it" in not_promoted


def test_metrics_and_per_class_table_are_in_the_report():
    text = markdown.training_markdown(summary(True, ["absolute_floor: ok"]), METRICS, SQLITE, dev_macro_f1=0.79)
    assert "| macro-F1 | 0.8123 |" in text and "| ECE (calibration error) | 0.031 |" in text
    assert "| dev macro-F1 (weights kept) | 0.79 |" in text
    assert "| bearish | 0.8 | 0.7 | 0.7467 | 20 |" in text


def test_a_reason_with_a_pipe_or_a_line_break_stays_in_one_row():
    text = markdown.gate_markdown(summary(False, ["slices: a | b\nnext", "calibration: ECE 0.2 > bound 0.1"]))
    rows = [line for line in text.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert rows == ["| 1 | slices: a \\| b<br>next |", "| 2 | calibration: ECE 0.2 > bound 0.1 |"]


def test_a_sqlite_store_gives_the_mlflow_ui_command_and_the_run_path():
    text = markdown.run_links_markdown("0a1b2c", SQLITE, "3")
    assert "`mlflow ui --backend-store-uri sqlite:////srv/project/mlflow.db`" in text
    assert "#/experiments/3/runs/0a1b2c" in text
    assert "`0a1b2c`" in text


@pytest.mark.parametrize(
    "uri, url",
    [
        ("http://mlflow.internal:5000", "http://mlflow.internal:5000/#/experiments/3/runs/0a1b2c"),
        ("https://user:secret@mlflow.example.com/root/", "https://mlflow.example.com/root/#/experiments/3/runs/0a1b2c"),
    ],
)
def test_a_server_gives_a_link_without_credentials(uri, url):
    text = markdown.run_links_markdown("0a1b2c", uri, "3")
    assert f"]({url})" in text
    assert "secret" not in text and "user" not in text and "mlflow ui" not in text


def test_a_database_store_hides_its_password():
    text = markdown.run_links_markdown("0a1b2c", "postgresql://mlflow:secret@db:5432/mlflow", "3")
    assert "secret" not in text and "db:5432/mlflow" in text


def test_training_report_reads_the_run_folder(tmp_path):
    run = RunLayout(tmp_path)
    run.eval_dir.mkdir(parents=True)
    run.train_dir.mkdir(parents=True)
    (run.eval_dir / "metrics.json").write_text(json.dumps(METRICS))
    (run.train_dir / "train_summary.json").write_text(json.dumps({"dev_macro_f1": 0.7777}))
    text = markdown.training_report(run, summary(True, ["absolute_floor: ok"]), SQLITE)
    assert "| macro-F1 | 0.8123 |" in text and "| dev macro-F1 (weights kept) | 0.7777 |" in text

    (run.eval_dir / "metrics.json").unlink()  # the report still comes, saying what is missing
    assert "(no eval/metrics.json)" in markdown.training_report(run, summary(True, ["absolute_floor: ok"]), SQLITE)

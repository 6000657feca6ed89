"""`finsent score`, `finsent monitor index|drift|run` from the command line: JSON on stdout, exit code 2
with one clear line on stderr for bad input or a missing champion, and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from sqlalchemy import func, select

from finsent.cli import main
from finsent.config import MonitorParams
from finsent.monitoring.store import open_store, predictions
from testkit.in_process_flow import flow_in_this_process
from testkit.tiny_bert import TINY_RECIPE

pytestmark = pytest.mark.integration

DRIFT_SETTINGS = ["--set", "drift.max_rows=300", "--set", "drift.embedding_plot_rows=60", "--set", "drift.min_labelled_rows=50"]


def run_cli(project, *args):
    return main(["--root", str(project), *args])


def news_batch(project: Path, tfns_valid: pd.DataFrame, path: Path, rows: int) -> Path:
    """Labelled TFNS rows outside the project's evaluation set over three days, and one bad row."""
    eval_texts = set(pd.read_csv(project / "datasets" / "tfns" / "sent_valid.csv")["text"])
    pool = tfns_valid[~tfns_valid["text"].isin(eval_texts)].drop_duplicates("text")
    df = pool.sample(n=rows, random_state=2).reset_index(drop=True)[["text", "label"]]
    df["published_at"] = [f"2024-03-0{1 + (i // 2) % 3}" for i in range(rows)]
    df["ticker"] = ["MSFT" if i % 2 else "$AMZN" for i in range(rows)]
    df.loc[len(df)] = {"text": "", "label": "1", "published_at": "2024-03-01", "ticker": "MSFT"}
    df.to_csv(path, index=False)
    return path


def stored_rows(project: Path) -> int:
    engine = open_store(MonitorParams(), project)
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(predictions)).scalar_one()


@pytest.mark.usefixtures("prefect_harness")
def test_no_champion_is_exit_code_2_naming_the_alias(project, tfns_valid, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    batch_file = news_batch(project, tfns_valid, tmp_path / "news.csv", rows=30)
    for command in (["score", str(batch_file)], ["monitor", "drift", str(batch_file)]):
        assert run_cli(project, *command) == 2, command
        last = capsys.readouterr().err.strip().splitlines()[-1]  # MLflow may log its database setup first
        assert last.startswith("finsent: error:") and "alias 'champion'" in last, last
    # No flow under capsys (testkit.in_process_flow). The flow's error itself is checked in test_monitoring_flow.
    with flow_in_this_process(capsys):
        assert run_cli(project, "monitor", "run", str(batch_file)) == 2
    assert stored_rows(project) == 0
    assert run_cli(project, "score", str(tmp_path / "missing.csv")) == 2
    assert "file not found" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_harness")
def test_score_index_and_drift(project, tiny_model_dir, tfns_valid, tmp_path, capsys, monkeypatch):
    from flows.training import training_flow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with flow_in_this_process(capsys):
        training_flow(
            root=str(project),
            overrides={
                "train": {"base_model": str(tiny_model_dir), "epochs": 1.0, "progress": False, "learning_rate": 5e-3, **TINY_RECIPE},
                "gate": {
                    "min_macro_f1": 0.0,
                    "max_ece": 1.0,
                    "behaviour_floors": {"invariance": 0.0, "directional": 0.0, "minimum_functionality": 0.0},
                },
            },
        )
    batch_file = news_batch(project, tfns_valid, tmp_path / "news.csv", rows=120)
    capsys.readouterr()

    # Scoring: JSON summary, bad rows counted, rows stored with the champion's version.
    assert run_cli(project, "score", str(batch_file)) == 0
    scored = json.loads(capsys.readouterr().out)
    assert (scored["status"], scored["rows_scored"], scored["skipped"], scored["model_version"]) == ("scored", 120, {"empty_text": 1}, "1")
    assert stored_rows(project) == 120
    # The same file again: refused, nothing written twice.
    assert run_cli(project, "score", str(batch_file)) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "already_scored"
    assert stored_rows(project) == 120
    # A file with no usable row: exit 2, nothing written.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Acme soars", "published_at": "yesterday-ish"}\n{"text": "", "published_at": "2024-03-01"}\n')
    assert run_cli(project, "score", str(bad)) == 2
    assert "none of its 2 rows" in capsys.readouterr().err
    assert stored_rows(project) == 120

    # Sentiment index: per ticker and day, as JSON and as a self-contained HTML plot.
    assert run_cli(project, "monitor", "index", "--format", "html") == 0
    index = json.loads(capsys.readouterr().out)
    days = {(r["ticker"], r["day"]): r for r in index["series"]}
    # The given tickers, plus any $cashtag or company name in the texts.
    assert set(days) >= {(t, f"2024-03-0{d}") for t in ("MSFT", "AMZN") for d in (1, 2, 3)}
    assert sum(r["count"] for r in index["series"] if r["ticker"] == "MSFT") >= 60
    assert all(-1 <= r["net_sentiment"] <= 1 for r in index["series"])
    assert isinstance(index["alerts"], list)
    assert Path(index["plot_path"]).suffix == ".html" and Path(index["plot_path"]).stat().st_size > 1_000_000
    assert run_cli(project, "monitor", "index", "--start", "2024-03-03") == 0
    assert {r["day"] for r in json.loads(capsys.readouterr().out)["series"]} == {"2024-03-03"}

    # Drift of a file against the champion's training data: verdict on stdout, a run in MLflow.
    assert run_cli(project, *DRIFT_SETTINGS, "monitor", "drift", str(batch_file)) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"drift", "signals_fired", "details", "signals_checked", "skipped"} <= set(out["verdict"])
    assert Path(out["paths"]["drift_html"]).is_file() and Path(out["paths"]["verdict_json"]).is_file()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{project}/mlflow.db")
    run = client.get_run(out["mlflow_run_id"])
    assert run.data.tags["kind"] == "adhoc" and run.data.tags["champion.version"] == "1"
    assert client.get_experiment(run.info.experiment_id).name == "finsent-monitoring"
    assert stored_rows(project) == 120  # drift alone stores nothing

    # Label-free estimates beside the verdict, under keys that say so: every method (the champion's dev
    # split from its training run is the reference), each with an interval; the realised accuracy too,
    # since this file is labelled; the chosen one in MLflow as estimated_accuracy.
    estimated = out["estimated_performance"]
    assert set(estimated["methods"]) == {"cbpe", "atc", "importance_weighting", "doubly_robust"}, estimated["skipped"]
    assert estimated["chosen"] in estimated["methods"] and "not from labels" in estimated["note"]
    for method, e in estimated["methods"].items():
        assert e["accuracy_low"] <= e["estimated_accuracy"] <= e["accuracy_high"], method
        assert e["macro_f1_low"] <= e["estimated_macro_f1"] <= e["macro_f1_high"], method
        assert e["rows"] == 120 and (e["reference_rows"] >= 30 or method == "cbpe")
    chosen = estimated["methods"][estimated["chosen"]]
    assert estimated["realised"]["labelled_rows"] == 120 and 0 <= estimated["realised"]["accuracy"] <= 1
    assert estimated["estimated_drop"] == pytest.approx(estimated["baseline_accuracy"] - chosen["estimated_accuracy"], abs=1e-5)
    assert 0.5 <= estimated["domain_auc"] <= 1
    assert run.data.metrics["estimated_accuracy"] == pytest.approx(chosen["estimated_accuracy"])
    assert run.data.metrics["estimated_accuracy.cbpe"] == pytest.approx(estimated["methods"]["cbpe"]["estimated_accuracy"])
    assert run.data.tags["estimate.chosen"] == estimated["chosen"]
    assert json.loads((Path(out["paths"]["verdict_json"]).parent / "estimated_performance.json").read_text()) == estimated

"""The monitoring flow end to end through Prefect: a champion from the training flow scores a news batch
into the store, drift is reported and logged to MLflow, the retrain policy fires on new labels and the
retrain flow versions them and trains; the registry gate alone decides promotion."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from sqlalchemy import func, select

from finsent.config import MonitorParams
from finsent.monitoring import history
from finsent.monitoring.store import batches, open_store, predictions
from finsent.paths import RunLayout
from finsent.registry.register import DEV_ARTIFACT
from finsent.registry.versions import CHAMPION
from finsent.tracking import RegistryError
from testkit.tiny_settings import training_overrides

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def overrides(tiny_model_dir) -> dict:
    return {
        **training_overrides(tiny_model_dir),
        # Small samples keep the Evidently report to seconds.
        "drift": {"max_rows": 300, "embedding_plot_rows": 60, "min_labelled_rows": 50},
        # One window is enough, no cool-down, and 100 new labels trigger a retrain.
        "retrain": {"confirm_windows": 1, "min_window_rows": 0, "cooldown_hours": 0.0, "new_labels_trigger_rows": 100},
    }


def news_batch(project: Path, tfns_valid: pd.DataFrame, path: Path, rows: int = 150) -> Path:
    """Labelled TFNS rows that are not in the project's evaluation set, spread over four days and two
    tickers, plus three rows that cannot be scored."""
    eval_texts = set(pd.read_csv(project / "datasets" / "tfns" / "sent_valid.csv")["text"])
    pool = tfns_valid[~tfns_valid["text"].isin(eval_texts)].drop_duplicates("text")
    df = pool.sample(n=rows, random_state=1).reset_index(drop=True)[["text", "label"]]
    df["published_at"] = [f"2024-03-0{1 + i % 4}T{9 + i % 8:02d}:30:00Z" for i in range(rows)]
    df["ticker"] = ["AAPL" if (i // 4) % 2 else "TSLA" for i in range(rows)]
    df["source"] = "wire"
    bad = pd.DataFrame(
        {
            "text": ["", "Acme shares rise", "Acme shares fall"],
            "label": [1, 1, "sideways"],
            "published_at": ["2024-03-01", "not a date", "2024-03-02"],
            "ticker": ["AAPL", "AAPL", "AAPL"],
            "source": ["wire"] * 3,
        }
    )
    pd.concat([df, bad], ignore_index=True).to_csv(path, index=False)
    return path


def test_monitoring_scores_reports_drift_and_retrains_on_new_labels(project, tiny_model_dir, tfns_valid, monkeypatch):
    from flows.monitoring import monitoring_flow
    from flows.training import training_flow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = training_flow(root=str(project), overrides=overrides(tiny_model_dir))
    assert first.promoted and first.version == "1"
    inbox = project / "inbox"
    inbox.mkdir()
    batch_file = news_batch(project, tfns_valid, inbox / "news-2024-03.csv")

    summary = monitoring_flow(root=str(project), overrides=overrides(tiny_model_dir))  # the inbox by default

    # Scoring: usable rows stored with the model version; bad rows counted by reason and skipped.
    assert summary.status == "monitored" and summary.champion_version == "1"
    [scored] = summary.scoring
    assert scored["rows_scored"] == 150 and scored["rows_skipped"] == 3
    assert scored["skipped"] == {"empty_text": 1, "bad_published_at": 1, "bad_label": 1}
    engine = open_store(MonitorParams(), project)  # the default store URL, under the project
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(predictions)).scalar_one() == 150
        versions = conn.execute(select(predictions.c.model_version).distinct()).scalars().all()
        assert versions == ["1"]
        assert conn.execute(select(batches.c.rows_skipped)).scalar_one() == 3

    # Drift: report as self-contained HTML and JSON, and a machine-readable verdict.
    verdict = json.loads(Path(summary.drift_paths["verdict_json"]).read_text())
    assert verdict == summary.drift
    assert set(verdict["signals_checked"]) == {"text_descriptors", "text_content", "embeddings", "prediction", "performance"}
    assert all(s in verdict["signals_checked"] for s in verdict["signals_fired"])
    html = Path(summary.drift_paths["drift_html"]).read_text()
    assert "<html" in html.lower() and len(html) > 100_000  # the scripts are inline: opens offline
    assert json.loads(Path(summary.drift_paths["drift_json"]).read_text())

    # Sentiment index and alerts for the two tickers over four days.
    index = json.loads(Path(summary.sentiment["json_path"]).read_text())
    assert {(r["ticker"], r["day"]) for r in index["series"]} >= {("AAPL", "2024-03-01"), ("TSLA", "2024-03-04")}
    assert Path(summary.sentiment["plot_path"]).suffix == ".png"

    # MLflow: one run in <experiment>-monitoring with the verdict as tags/metrics and the reports as artifacts.
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    client = mlflow.tracking.MlflowClient()
    experiment = client.get_experiment_by_name("finsent-monitoring")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == summary.mlflow_run_id
    assert run.data.tags["drift.verdict"] == ("drift" if verdict["drift"] else "no_drift")
    assert run.data.tags["drift.signals_fired"] == ",".join(verdict["signals_fired"])
    assert run.data.metrics["drift_detected"] == float(verdict["drift"])
    assert run.data.metrics["rows_scored"] == 150.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "drift")}
    assert {"drift/verdict.json", "drift/drift_report.html", "drift/drift_report.json"} <= artifacts

    # Label-free estimates of the window: in the summary, in MLflow, and read by the retrain policy.
    estimated = summary.estimated_performance
    assert summary.estimation_skipped is None and "cbpe" in estimated["methods"], estimated
    chosen = estimated["methods"][estimated["chosen"]]
    assert chosen["rows"] == 150 and chosen["accuracy_low"] <= chosen["estimated_accuracy"] <= chosen["accuracy_high"]
    assert run.data.metrics["estimated_accuracy"] == pytest.approx(chosen["estimated_accuracy"])
    assert summary.decision["inputs"]["performance"]["estimated_accuracy"] == pytest.approx(chosen["estimated_accuracy"])
    assert summary.decision["inputs"]["performance"]["baseline_accuracy"] == pytest.approx(estimated["baseline_accuracy"])

    # The retrain policy fired on the new labels; the labelled rows became a data batch and the
    # training flow ran on it. Whether the new version is champion is the gate's call alone.
    assert summary.decision["should_retrain"] and "new_labels" in summary.decision["reasons"]
    assert summary.decision["inputs"]["new_labelled_rows"] == 150
    labels = summary.retrain["labels"]
    assert labels["status"] == "added" and labels["rows_added"] > 100
    added = project / "data" / "batches" / f"{labels['data_batch']}.csv"
    assert len(pd.read_csv(added)) == labels["rows_added"]
    registration = summary.retrain["registration"]
    assert registration["version"] == "2"
    champion = str(client.get_model_version_by_alias("finsent-sentiment", CHAMPION).version)
    assert champion == ("2" if registration["promoted"] else "1")
    trained_on = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=registration["run_id"], artifact_path="data/train.csv"))
    run_dir = client.get_run(registration["run_id"]).data.tags["run_dir"]
    dev = pd.read_csv(RunLayout(Path(run_dir)).prepared.dev)
    # The dev split travels with the model: the label-free estimates' reference where run_dir is not on disk.
    logged_dev = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=registration["run_id"], artifact_path=DEV_ARTIFACT))
    assert logged_dev["text"].tolist() == dev["text"].tolist()
    new_texts = set(pd.read_csv(added)["text"])
    # The new labels were trained on, but for those the dev split drew to judge the training.
    assert new_texts <= set(trained_on["text"]) | set(dev["text"])
    assert len(new_texts & set(trained_on["text"])) > 0.8 * len(new_texts)
    assert run.info.run_id == summary.mlflow_run_id
    assert client.get_run(summary.mlflow_run_id).data.tags["retrain.version"] == "2"
    [retrain] = history.read_retrains(engine)
    assert retrain["status"] == "registered" and retrain["model_version"] == "2"
    assert "new_labels" in retrain["reasons"].split(",")  # drift may fire too on this small batch
    assert history.pending_labels(engine).empty  # each label is handed to training once
    assert [w.signals_fired for w in history.read_windows(engine)] == [tuple(verdict["signals_fired"])]

    # The next hourly run finds nothing new in the inbox and loads no model.
    again = monitoring_flow(root=str(project), overrides=overrides(tiny_model_dir))
    assert again.status == "no_new_batches"
    assert batch_file.exists()


def test_monitoring_without_a_champion_is_a_clear_error(project, tfns_valid, monkeypatch, tmp_path):
    from flows.monitoring import monitoring_flow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    batch_file = news_batch(project, tfns_valid, tmp_path / "news.csv", rows=30)
    with pytest.raises(RegistryError, match="alias 'champion'"):
        monitoring_flow(path=str(batch_file), root=str(project))
    engine = open_store(MonitorParams(), project)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(predictions)).scalar_one() == 0

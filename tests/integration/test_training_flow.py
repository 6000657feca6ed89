"""The whole training flow through Prefect, into a throw-away MLflow store and DVC repo."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from finsent.data.validate import ValidationError
from finsent.data.versioning import recorded_md5
from finsent.registry.versions import CHALLENGER, CHAMPION
from testkit.tiny_settings import training_overrides as overrides

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def client_for(project):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def training_reports() -> list[str]:
    """The markdown of every training report the flows published to Prefect (artifact key finsent-training)."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["finsent-training"])))
    return [str(a.data) for a in found]


def test_flow_registers_a_champion_with_its_data_version(project, tiny_model_dir, monkeypatch):
    from flows.training import training_flow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    summary = training_flow(root=str(project), overrides=overrides(tiny_model_dir))
    assert summary.version == "1" and summary.promoted

    client = client_for(project)
    mv = client.get_model_version("finsent-sentiment", "1")
    assert set(mv.aliases) == {CHAMPION, CHALLENGER}
    run = client.get_run(mv.run_id)
    assert run.data.tags["data.dvc_md5"] == recorded_md5(project)
    assert run.data.tags["git.commit"] != "none"
    assert run.data.tags["validation.success"] == "true"
    assert "augment.md5" in run.data.tags
    assert {"macro_f1", "accuracy", "ece", "recall_bearish", "slice_has_cashtag_macro_f1"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(mv.run_id, "eval")}
    assert {"eval/confusion_matrix.png", "eval/reliability.png", "eval/metrics.json"} <= artifacts

    model = mlflow.pyfunc.load_model("models:/finsent-sentiment@champion")
    out = model.predict(pd.DataFrame({"text": ["$AAPL beats estimates", "Stocks slump"]}))
    assert list(out.columns) == ["p_bearish", "p_bullish", "p_neutral", "label"]
    assert np.allclose(out[["p_bearish", "p_bullish", "p_neutral"]].sum(axis=1), 1.0, atol=1e-5)

    # A second run on the same data is judged against the champion: equal within noise, not promoted.
    second = training_flow(root=str(project), overrides=overrides(tiny_model_dir))
    assert second.version == "2" and not second.promoted
    assert str(client.get_model_version_by_alias("finsent-sentiment", CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias("finsent-sentiment", CHALLENGER).version) == "2"
    assert any("paired_gain" in r for r in second.reasons)

    # Each run published its report to Prefect's UI: the decision with every reason, the metrics, the MLflow run.
    reports = training_reports()
    first = next(r for r in reports if summary.run_id in r)
    assert "Version 1 **promoted** to champion." in first and all(reason in first for reason in summary.reasons)
    refused = next(r for r in reports if second.run_id in r)
    assert "Version 2 **not promoted**: the champion stays 1." in refused
    assert second.reasons and all(reason in refused for reason in second.reasons)
    assert "| macro-F1 |" in refused and "| bearish |" in refused
    assert f"#/experiments/{second.experiment_id}/runs/{second.run_id}" in refused and "mlflow ui --backend-store-uri sqlite:///" in refused


def test_failing_batch_stops_the_flow_and_registers_nothing(project, tiny_model_dir, monkeypatch):
    from flows.training import training_flow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    training_flow(root=str(project), overrides=overrides(tiny_model_dir))
    version_before = recorded_md5(project)
    bad = project / "data" / "batches" / "bad.csv"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("text,label\nAcme soars,bullish\n,2\nAcme falls,sideways\n")

    with pytest.raises(ValidationError, match="label_raw"):
        training_flow(root=str(project), overrides=overrides(tiny_model_dir))

    client = client_for(project)
    assert [str(v.version) for v in client.search_model_versions("name='finsent-sentiment'")] == ["1"]
    assert str(client.get_model_version_by_alias("finsent-sentiment", CHAMPION).version) == "1"
    assert not bad.exists()
    kept = list((project / "quarantine").rglob("bad.csv"))
    assert kept and "sideways" in kept[0].read_text()
    report = json.loads(next((project / "quarantine").rglob("validation_report.json")).read_text())
    assert report["success"] is False
    assert recorded_md5(project) == version_before


def test_unreachable_tracking_store_fails_before_training(project, tiny_model_dir, monkeypatch):
    from finsent.tracking import StoreUnavailable
    from flows.training import training_flow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(StoreUnavailable):
        training_flow(root=str(project), overrides=overrides(tiny_model_dir))
    assert not (project / "artifacts" / "runs").exists() or not any((project / "artifacts" / "runs").rglob("model"))

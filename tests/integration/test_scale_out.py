"""The scale-out path, as far as one machine goes: an MLflow tracking server whose store is PostgreSQL
and whose artifacts are in S3, an S3 DVC remote, and the hyper-parameter study in PostgreSQL. The
flows are the same; each service is one setting. (The predictions store on PostgreSQL: test_store_postgresql.py.)"""

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import sqlalchemy

from finsent.data import versioning
from finsent.registry.versions import CHALLENGER, CHAMPION
from testkit import local_services as services
from testkit.tiny_settings import training_overrides

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]  # starts an MLflow server


def dvc(project: Path, *args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=project, check=True, capture_output=True)


def query(url: str, sql: str) -> list:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text(sql)).all()
    finally:
        engine.dispose()


def test_flows_on_an_mlflow_server_with_postgres_and_s3(project, tiny_model_dir, postgres, s3, tmp_path, monkeypatch):
    from finsent.cli import main
    from flows.training import training_flow
    from flows.tuning import tuning_flow

    for bucket in ("finsent-mlflow", "finsent-dvc"):
        services.s3_client(s3).create_bucket(Bucket=bucket)
    # What a user runs once for a cloud DVC remote (README, "At scale"); credentials come from the environment.
    dvc(project, "remote", "add", "--default", "--force", "s3", "s3://finsent-dvc/data")
    dvc(project, "remote", "modify", "s3", "endpointurl", s3)
    backend = services.create_database(postgres, "mlflow")

    with services.mlflow_server(backend, "s3://finsent-mlflow/artifacts", s3, tmp_path) as tracking:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
        summary = training_flow(root=str(project), overrides=training_overrides(tiny_model_dir))
        assert summary.version == "1" and summary.promoted

        # The registry is in PostgreSQL, the model and the evaluation plots are in the bucket.
        assert query(backend, "SELECT name FROM registered_models") == [("finsent-sentiment",)]
        aliases = dict(query(backend, "SELECT alias, version FROM registered_model_aliases"))
        assert aliases == {CHAMPION: 1, CHALLENGER: 1}
        keys = services.bucket_keys(s3, "finsent-mlflow")
        assert any(k.endswith("/MLmodel") for k in keys) and any(k.endswith("/confusion_matrix.png") for k in keys)
        assert any(k.endswith(".safetensors") for k in keys)
        champion = mlflow.pyfunc.load_model(f"models:/finsent-sentiment@{CHAMPION}")
        scored = champion.predict(pd.DataFrame({"text": ["$AAPL beats estimates", "Stocks slump on rate fears"]}))
        assert list(scored["label"].map(type).unique()) == [str] and len(scored) == 2

        # The hyper-parameter study in PostgreSQL, its trials as nested runs on the server.
        study = services.create_database(postgres, "optuna")
        search = {
            "storage": study,
            "n_trials": 2,
            "parallel_trials": 2,
            "search_space": {"learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}},
        }
        tuned = tuning_flow(root=str(project), overrides={**training_overrides(tiny_model_dir), "tune": search})
        assert sum(tuned.trials.values()) == 2
        assert query(study, "SELECT count(*) FROM trials") == [(2,)]
        children = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{tuned.parent_run_id}'")
        assert len(children) == 2

    # A fresh clone restores the data from the S3 remote: no data/, no DVC cache, no shipped copy.
    for path in ("data", ".dvc/cache", "datasets"):
        shutil.rmtree(project / path)
    assert main(["--root", str(project), "data", "init"]) == 0
    assert (project / "data" / "tfns" / "sent_train.csv").is_file() and versioning.is_in_sync(project)

"""Models registered before the package was regrouped still load and score.

Every registered finsent model is a models-from-code pyfunc: MLflow runs the entry file that was logged
with it, and the versions registered by the flat layout (commit dbc493b) run
``from finsent.serving import SentimentModel``. The model carries its own copy of finsent, but MLflow
only prepends that copy to ``sys.path``: in a process that has already imported finsent (the CLI, the
monitor) the import resolves against the running package. ``finsent.serving`` is therefore a contract
with every version in every registry, and this test holds the current package to it with a version
really registered by the old code: it loads through MLflow, the CLI and the monitor, and scores exactly
as the old code scored it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finsent.env import QUIET_OFFLINE
from finsent.vocabulary import LABELS, PROBABILITY_COLUMNS

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~35 s: the old code registers in a subprocess

REPO = Path(__file__).resolve().parents[2]
OLD_LAYOUT = "dbc493b"  # the flat src/finsent/*.py, the parent of the regroup
MODEL_NAME = "finsent-sentiment"
TEXTS = ["Acme shares jump after record profit", "Regulator fines the bank over weak controls", "The board meets on Tuesday"]

# Run with PYTHONPATH=<old checkout>/src: registers the tiny model with the old code into a fresh store,
# makes it the champion and writes the old code's predictions for TEXTS to the result file.
REGISTER_WITH_OLD_CODE = """
import json, sys
from pathlib import Path

import finsent.registry
assert finsent.registry.__file__.endswith("registry.py"), finsent.registry.__file__  # the old flat module

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

model_dir, store, artifacts, name, result, texts = sys.argv[1:6] + [json.loads(sys.argv[6])]
uri = f"sqlite:///{store}"
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
client = MlflowClient(uri)
experiment_id = client.create_experiment("finsent", artifact_location=Path(artifacts).as_uri())
with mlflow.start_run(experiment_id=experiment_id):
    finsent.registry.log_model(Path(model_dir), name)
client.set_registered_model_alias(name, "champion", "1")
scored = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(pd.DataFrame({"text": texts}))
Path(result).write_text(json.dumps({"package": finsent.__file__, "scores": scored.to_dict(orient="list")}))
"""


@dataclass(frozen=True)
class LegacyProject:
    root: Path  # params.yaml and mlflow.db, as the CLI and the monitor expect them
    old_probabilities: np.ndarray  # what the old code gave for TEXTS, in LABELS order
    old_labels: list[str]


def extract_old_package(into: Path) -> Path:
    """``src/finsent`` as it was at OLD_LAYOUT, under ``into``; skips where a shallow clone lacks it."""
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{OLD_LAYOUT}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"commit {OLD_LAYOUT} (the layout before the regroup) is not in this clone's history (shallow clone?)")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_LAYOUT, "src/finsent"], capture_output=True, check=True)
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def old_code_env(src: Path) -> dict[str, str]:
    env = {**os.environ, **QUIET_OFFLINE}
    env.pop("MLFLOW_TRACKING_URI", None)  # the store is named on the command line
    env["PYTHONPATH"] = str(src)  # the old finsent first, ahead of the installed new one
    return env


def register_with_old_code(src: Path, model_dir: Path, project: Path, work: Path) -> dict:
    result = work / "old-code-result.json"
    args = [model_dir, project / "mlflow.db", project / "mlruns", MODEL_NAME, result, json.dumps(TEXTS)]
    done = subprocess.run(
        [sys.executable, "-c", REGISTER_WITH_OLD_CODE, *map(str, args)],
        cwd=work,
        env=old_code_env(src),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"registering with the old code failed:\n{done.stderr[-4000:]}"
    return json.loads(result.read_text())


@pytest.fixture(scope="module")
def legacy(tmp_path_factory, tiny_model_dir) -> LegacyProject:
    """A project whose registry holds one version, registered by the old layout's code, as champion."""
    work = tmp_path_factory.mktemp("legacy")
    src = extract_old_package(work / "old")
    project = work / "project"
    project.mkdir()
    shutil.copy(REPO / "params.yaml", project / "params.yaml")
    old = register_with_old_code(src, tiny_model_dir, project, work)
    assert Path(old["package"]).is_relative_to(src)  # the old code did the registering
    scores = old["scores"]
    return LegacyProject(project, np.array([scores[c] for c in PROBABILITY_COLUMNS]).T, scores["label"])


@pytest.fixture
def quiet_mlflow(monkeypatch):
    """No store from the environment; what MLflow sets here (the environment variable, ``sys.path`` for
    the model's code) is undone after the test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # records the original state for the undo
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setattr(sys, "path", list(sys.path))


def assert_probability_frame(frame: pd.DataFrame, rows: int) -> None:
    assert list(frame.columns[: len(PROBABILITY_COLUMNS)]) == list(PROBABILITY_COLUMNS)
    assert len(frame) == rows
    np.testing.assert_allclose(frame[list(PROBABILITY_COLUMNS)].sum(axis=1), 1.0, atol=1e-5)
    assert set(frame["label"]) <= {"bearish", "bullish", "neutral"}


def test_old_version_loads_through_mlflow_and_scores_as_before(legacy, quiet_mlflow):
    import mlflow

    from finsent.registry.pyfunc import SentimentModel

    uri = f"sqlite:///{legacy.root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    assert isinstance(model.unwrap_python_model(), SentimentModel)  # served by the running package

    scored = model.predict(pd.DataFrame({"text": TEXTS}))
    assert_probability_frame(scored, len(TEXTS))
    np.testing.assert_allclose(scored[list(PROBABILITY_COLUMNS)].to_numpy(), legacy.old_probabilities, atol=1e-5)
    assert scored["label"].tolist() == legacy.old_labels


def test_old_version_scores_through_the_cli(legacy, quiet_mlflow, capsys):
    from finsent import cli

    assert cli.main(["--root", str(legacy.root), "predict", TEXTS[0]]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["text"] == TEXTS[0]
    assert_probability_frame(pd.DataFrame([row]).drop(columns="text"), 1)
    np.testing.assert_allclose([row[c] for c in PROBABILITY_COLUMNS], legacy.old_probabilities[0], atol=1e-5)


def test_old_version_loads_as_the_monitors_champion(legacy, quiet_mlflow):
    from finsent.config import load_params
    from finsent.monitoring.champion import load_champion

    champion = load_champion(load_params(legacy.root / "params.yaml"), legacy.root)
    assert (champion.name, champion.version) == (MODEL_NAME, "1")
    probs = champion.scorer.predict_proba([TEXTS[1]])
    assert probs.shape == (1, len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, legacy.old_probabilities[1:2], atol=1e-5)

"""The calibration saved with a model is what every scoring path serves: ``Scorer.from_dir``, the MLflow
pyfunc, the monitor's champion (``load_version``) and the drift stage's own forward pass. A model folder
without ``calibration.json`` (every model trained before calibration existed) scores as it always did."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from finsent.training.calibration import IDENTITY, Calibration, save_calibration, softmax
from finsent.training.score import Scorer
from finsent.vocabulary import PROBABILITY_COLUMNS

TEXTS = ["Acme shares jump after record profit", "Regulator fines the bank over weak controls", "The board meets on Tuesday", "$XYZ"]
# Sharpens the tiny random model's near-uniform logits and leans on bearish: far from the raw softmax.
CALIBRATION = Calibration(kind="vector", weights=(40.0, 30.0, 20.0), bias=(1.0, 0.0, -1.0))


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tiny_model_dir):
    """The tiny model as saved before calibration existed, and the same weights with calibration.json."""
    calibrated = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(tiny_model_dir, calibrated)
    save_calibration(CALIBRATION, calibrated)
    return tiny_model_dir, calibrated


def test_scorer_from_dir_serves_the_saved_calibration(model_dirs):
    plain, calibrated = model_dirs
    scorer = Scorer.from_dir(calibrated)
    assert scorer.calibration == CALIBRATION
    logits = scorer.predict_logits(TEXTS)
    probs = scorer.predict_proba(TEXTS)
    np.testing.assert_allclose(probs, CALIBRATION.probabilities(logits), atol=1e-6)
    raw = Scorer.from_dir(plain).predict_proba(TEXTS)
    assert np.abs(probs - raw).max() > 0.1  # calibration really changed what is served
    np.testing.assert_allclose(raw, softmax(logits), atol=1e-6)  # same weights, same logits


def test_a_model_without_calibration_scores_as_before(model_dirs):
    plain, _ = model_dirs
    scorer = Scorer.from_dir(plain)
    assert scorer.calibration is IDENTITY
    encoded = scorer.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        before = torch.softmax(scorer.model(**encoded).logits, dim=-1).numpy()  # HF's own forward and softmax
    np.testing.assert_allclose(scorer.predict_proba(TEXTS), before, atol=1e-6)


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store; what MLflow sets (the tracking URI, ``sys.path`` for the model's code)
    is undone after the test."""
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setattr(sys, "path", list(sys.path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, registry_uri=uri)
    client.create_experiment("finsent", artifact_location=(tmp_path / "mlruns").as_uri())
    mlflow.set_experiment("finsent")
    yield client
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def test_pyfunc_and_the_monitors_champion_serve_the_calibration(model_dirs, registry):
    import mlflow

    from finsent.config import Params
    from finsent.monitoring.champion import load_version
    from finsent.monitoring.drift import champion_outputs
    from finsent.registry.pyfunc import log_model

    plain, calibrated = model_dirs
    p = Params()
    for version, folder in (("1", plain), ("2", calibrated)):
        with mlflow.start_run():
            log_model(folder, p.register.model_name)
        served = mlflow.pyfunc.load_model(f"models:/{p.register.model_name}/{version}").predict(pd.DataFrame({"text": TEXTS}))
        expected = Scorer.from_dir(folder).predict_proba(TEXTS)
        np.testing.assert_allclose(served[list(PROBABILITY_COLUMNS)].to_numpy(), expected, atol=1e-6)

    champion = load_version(p, registry, "2")  # the monitor and the live service score through this
    assert champion.scorer.calibration == CALIBRATION
    calibrated_probs = champion.scorer.predict_proba(TEXTS)
    np.testing.assert_allclose(calibrated_probs, Scorer.from_dir(calibrated).predict_proba(TEXTS), atol=1e-6)
    scorer = champion.scorer
    _, drift_probs = champion_outputs(scorer.model, scorer.tokenizer, TEXTS, calibration=scorer.calibration)
    np.testing.assert_allclose(drift_probs, calibrated_probs, atol=1e-5)

    old = load_version(p, registry, "1")
    assert old.scorer.calibration is IDENTITY
    np.testing.assert_allclose(old.scorer.predict_proba(TEXTS), Scorer.from_dir(plain).predict_proba(TEXTS), atol=1e-6)


def test_the_drift_reference_cache_is_not_shared_between_calibrations(model_dirs, tmp_path):
    from finsent.monitoring.drift import cached_champion_outputs

    scorer = Scorer.from_dir(model_dirs[0])
    cache = tmp_path / "outputs.npz"
    _, raw = cached_champion_outputs(scorer.model, scorer.tokenizer, TEXTS, cache)
    _, calibrated = cached_champion_outputs(scorer.model, scorer.tokenizer, TEXTS, cache, calibration=CALIBRATION)
    np.testing.assert_allclose(calibrated, CALIBRATION.probabilities(scorer.predict_logits(TEXTS)), atol=1e-5)
    _, again = cached_champion_outputs(scorer.model, scorer.tokenizer, TEXTS, cache)
    np.testing.assert_allclose(again, raw, atol=1e-7)


def test_every_scoring_path_reads_a_mean_pooled_head(tiny_model_dir, tmp_path, registry):
    """``train.pooling: mean`` is saved in the model's config: the scorer, the registry's pyfunc, the
    monitor's champion and the drift stage's forward pass all score the mean-pooled head, not [CLS]."""
    import mlflow

    from finsent.config import Params
    from finsent.monitoring.champion import load_version
    from finsent.monitoring.drift import champion_outputs
    from finsent.registry.pyfunc import log_model
    from finsent.training.cls_forward import set_pooling
    from finsent.training.model import load_classifier

    tokenizer, model = load_classifier(str(tiny_model_dir), for_training=False)
    set_pooling(model, "mean")
    mean_dir = tmp_path / "mean-pooled"
    model.save_pretrained(mean_dir)
    tokenizer.save_pretrained(mean_dir)
    save_calibration(CALIBRATION, mean_dir)
    expected = Scorer.from_dir(mean_dir).predict_proba(TEXTS)
    assert np.abs(expected - Scorer.from_dir(tiny_model_dir).predict_proba(TEXTS)).max() > 1e-3  # another head's vector

    p = Params()
    with mlflow.start_run():
        log_model(mean_dir, p.register.model_name)
    served = mlflow.pyfunc.load_model(f"models:/{p.register.model_name}/1").predict(pd.DataFrame({"text": TEXTS}))
    np.testing.assert_allclose(served[list(PROBABILITY_COLUMNS)].to_numpy(), expected, atol=1e-6)
    scorer = load_version(p, registry, "1").scorer
    np.testing.assert_allclose(scorer.predict_proba(TEXTS), expected, atol=1e-6)
    _, drift_probs = champion_outputs(scorer.model, scorer.tokenizer, TEXTS, calibration=scorer.calibration)
    np.testing.assert_allclose(drift_probs, expected, atol=1e-5)

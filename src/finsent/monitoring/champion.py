"""The champion as the monitor sees it: a registry version loaded as a ``Scorer``, its training rows as
the drift reference, and its dev split as the labelled reference of the label-free estimates."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from finsent import tracking
from finsent.config import Params
from finsent.data.frames import read_dataset
from finsent.files import atomic_path
from finsent.paths import Layout, RunLayout
from finsent.registry import versions
from finsent.registry.register import DEV_ARTIFACT, REFERENCE_ARTIFACT
from finsent.registry.versions import CHAMPION
from finsent.tracking import RegistryError
from finsent.training.score import Scorer


@dataclass
class Champion:
    """The model scoring the news: a registry version loaded as a ``Scorer`` (model and tokenizer)."""

    name: str
    version: str
    run_id: str | None
    scorer: Scorer
    baseline_macro_f1: float | None  # on the frozen evaluation set, from its training run
    data_md5: str | None
    baseline_accuracy: float | None = None  # on the frozen evaluation set: what an estimated drop is measured from
    run_dir: str | None = None  # its training run's folder (RunLayout), where the dev split was written


def load_champion(p: Params, root: Path, alias: str = CHAMPION, client=None) -> Champion:
    """The version behind ``alias`` as a ``Scorer``; a clear ``RegistryError`` when there is none."""

    client = client or tracking.connect(p.register, root)
    name = p.register.model_name
    version = versions.alias_version(client, name, alias)
    if version is None:
        raise RegistryError(
            f"no model has the alias {alias!r} in the registry ({name!r}): nothing to score with; "
            "train and promote one first (finsent train)"
        )
    return load_version(p, client, version)


def load_version(p: Params, client, version: str, *, precision: str = "auto") -> Champion:
    """One registry version of ``register.model_name`` as a ``Scorer``: what the live service swaps in
    when the champion alias moves (it reads the alias, then loads that version, never the alias again).
    ``precision``: the scorer's (the service passes its resolved ``service.precision``)."""
    name = p.register.model_name
    versions.check_artifacts(client, name, version)
    mv = versions.get_version(client, name, version)
    # Loaded through MLflow's own path (models-from-code), then reused as a plain Scorer so that
    # scoring uses the monitor's batch size and the drift stage can reach the model and tokenizer;
    # the calibration saved with the version comes along, so the monitor writes calibrated probabilities.
    loaded = versions.load_pyfunc(f"models:/{name}/{version}").unwrap_python_model().scorer
    scorer = Scorer(
        loaded.tokenizer,
        loaded.model,
        max_length=p.train.max_length,
        batch_size=p.monitor.batch_size,
        device=p.train.device,
        precision=precision,
        calibration=loaded.calibration,
    )
    baseline = data_md5 = accuracy = run_dir = None
    if mv.run_id:
        run = client.get_run(mv.run_id)
        baseline = run.data.metrics.get("macro_f1")
        accuracy = run.data.metrics.get("accuracy")
        data_md5 = run.data.tags.get("data.dvc_md5")
        run_dir = run.data.tags.get("run_dir")
    return Champion(
        name=name,
        version=str(version),
        run_id=mv.run_id,
        scorer=scorer,
        baseline_macro_f1=baseline,
        data_md5=data_md5,
        baseline_accuracy=accuracy,
        run_dir=run_dir,
    )


def reference_dir(p: Params, root: Path, champion: Champion) -> Path:
    return Layout.of(root, p).reference_dir(champion.name, champion.version)


def _download_once(run_id: str, artifact: str, target: Path, why_missing: Callable[[Exception], str]) -> None:
    """One artifact of a run into ``target``, whole or not at all (a ``RegistryError`` when it is not there)."""
    import mlflow

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=tmp)
        except Exception as exc:  # noqa: BLE001 - MlflowException or OSError: the artifact is not there
            raise RegistryError(why_missing(exc)) from exc
        os.replace(local, target)  # the download is complete: the rename publishes it whole


def cached_outputs(p: Params, champion: Champion, texts: list[str], cache_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """The champion's sentence embeddings and calibrated probabilities of ``texts`` with the drift check's
    settings, kept in ``cache_file`` (keyed by the model, its calibration and the texts)."""
    from finsent.monitoring import drift

    return drift.cached_champion_outputs(
        champion.scorer.model,
        champion.scorer.tokenizer,
        texts,
        cache_file,
        max_length=p.drift.embedding_max_length,
        batch_size=p.drift.embedding_batch_size,
        calibration=champion.scorer.calibration,
    )


def champion_reference(champion: Champion, cache_dir: Path) -> pd.DataFrame:
    """The champion's training data (text, label), from its training run; kept in ``cache_dir``."""
    target = Path(cache_dir) / "train.csv"
    if not target.is_file():
        if not champion.run_id:
            raise RegistryError(f"{champion.name} v{champion.version} has no training run: no drift reference")
        _download_once(
            champion.run_id,
            REFERENCE_ARTIFACT,
            target,
            lambda exc: (
                f"{champion.name} v{champion.version}: its run {champion.run_id} has no {REFERENCE_ARTIFACT} artifact "
                f"(registered before monitoring logged it?): no drift reference ({exc.__class__.__name__})"
            ),
        )
    return read_dataset(target)[["text", "label"]]


def champion_dev_reference(champion: Champion, cache_dir: Path) -> pd.DataFrame:
    """The champion's dev split (text, label): held out from its training, labelled, the rows its
    calibration was fitted on; the label-free estimates' reference. Kept in ``cache_dir``.

    Found in its training run's folder (the ``run_dir`` tag the training flow sets), or as the run's
    ``DEV_ARTIFACT`` (registration logs it; models registered before that have only the folder); a
    ``RegistryError`` says when neither exists."""
    target = Path(cache_dir) / "dev.csv"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        local = RunLayout(Path(champion.run_dir)).prepared.dev if champion.run_dir else None
        if local is not None and local.is_file():
            with atomic_path(target) as tmp:
                shutil.copyfile(local, tmp)
        elif champion.run_id:
            _download_once(
                champion.run_id,
                DEV_ARTIFACT,
                target,
                lambda exc: (
                    f"{champion.name} v{champion.version}: no dev split (its run folder {champion.run_dir or '?'} is not here "
                    f"and its run has no {DEV_ARTIFACT}): no reference for the weighted estimates"
                ),
            )
        else:
            raise RegistryError(f"{champion.name} v{champion.version} has no training run: no dev split for the weighted estimates")
    return read_dataset(target)[["text", "label"]]

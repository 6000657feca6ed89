"""The register stage: log a trained model with its lineage, register a version, and let the
promotion gate decide whether it becomes champion.

Every decision, promoted or not, is written as tags on the model version and as one run in the
audit experiment (``<experiment>-audit``), which ``finsent registry history`` reads back.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from finsent import registry
from finsent.config import Params
from finsent.data import read_dataset
from finsent.registry import CHALLENGER, CHAMPION, RegistrationSummary
from finsent.serving import PROBABILITY_COLUMNS
from finsent.versioning import DataVersion


def audit_experiment(p: Params) -> str:
    return f"{p.register.experiment}-audit"


def record_decision(client, p: Params, root: Path, action: str, version: str | None, fields: dict) -> None:
    """Append one decision to the audit log (an MLflow run: shared by every client of the store)."""
    experiment_id = registry.ensure_experiment(
        client, audit_experiment(p), registry.artifact_location(p.register, root, registry.resolve_tracking_uri(p.register, root))
    )
    tags = {"action": action, "model_name": p.register.model_name, "version": str(version or "")}
    tags.update({k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in fields.items()})
    tags = {k: v[:5000] for k, v in tags.items()}
    run = client.create_run(experiment_id, tags=tags, run_name=f"{action}-v{version}")
    client.set_terminated(run.info.run_id)


def champion_predictions(client, p: Params, champion: str, eval_df: pd.DataFrame, eval_sha: str) -> np.ndarray:
    """The champion's probabilities on this evaluation set: its logged predictions when it was
    evaluated on the same rows, else a fresh scoring of the champion model."""
    import mlflow

    mv = registry.get_version(client, p.register.model_name, champion)
    run = client.get_run(mv.run_id) if mv.run_id else None
    if run is not None and run.data.tags.get("eval.sha256") == eval_sha:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="eval/predictions.csv", dst_path=tmp)
                return pd.read_csv(path)[PROBABILITY_COLUMNS].to_numpy()
            except Exception:  # noqa: BLE001 - fall back to scoring
                pass
    model = mlflow.pyfunc.load_model(f"models:/{p.register.model_name}/{champion}")
    return model.predict(pd.DataFrame({"text": eval_df["text"].tolist()}))[PROBABILITY_COLUMNS].to_numpy()


def run(
    p: Params,
    root: Path,
    train_dir: Path,
    eval_dir: Path,
    eval_path: Path,
    data_version: DataVersion,
    validation_summary: dict,
    extra_tags: dict[str, str] | None = None,
) -> RegistrationSummary:
    """Log, register and gate one trained model. ``train_dir`` holds ``model/`` and
    ``train_summary.json``; ``eval_dir`` holds what ``evaluate.run`` wrote."""
    import mlflow

    from finsent import gate
    from finsent.behaviour import run_suite
    from finsent.evaluate import flat_metrics
    from finsent.score import Scorer

    eval_df = read_dataset(eval_path)
    client = registry.connect(p.register, root)
    uri = registry.resolve_tracking_uri(p.register, root)
    experiment_id = registry.ensure_experiment(client, p.register.experiment, registry.artifact_location(p.register, root, uri))
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    train_summary = json.loads((train_dir / "train_summary.json").read_text())
    eval_sha = registry.frame_sha256(eval_df)
    model_dir = train_dir / "model"

    # Behaviour suite on the challenger, before anything is registered.
    scorer = Scorer.from_dir(model_dir, max_length=p.train.max_length, device=p.train.device)
    behaviour = run_suite(scorer.predict_proba)

    tags = {
        **data_version.to_tags(),
        **registry.code_version(root),
        **registry.library_versions(),
        "eval.sha256": eval_sha,
        "eval.rows": str(len(eval_df)),
        "validation.success": str(validation_summary.get("success", "")).lower(),
        "validation.summary": json.dumps(validation_summary)[:5000],
        **(extra_tags or {}),
    }
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as active:
        run_id = active.info.run_id
        params = registry.flatten("", asdict(p))
        mlflow.log_params({k: v[:6000] for k, v in params.items()})
        mlflow.log_metrics(flat_metrics(metrics))
        mlflow.log_metrics({f"train_{k}": float(train_summary[k]) for k in ("seconds", "samples_per_second", "final_loss", "steps")})
        mlflow.log_metrics({f"behaviour_{k}": v for k, v in behaviour.pass_rates.items()})
        mlflow.log_artifacts(str(eval_dir), artifact_path="eval")
        mlflow.log_dict(behaviour.to_dict(), "behaviour.json")
        mlflow.log_dict(validation_summary, "validation.json")
        info = registry.log_model(model_dir, p.register.model_name)
        version = str(info.registered_model_version)

    name = p.register.model_name
    client.set_model_version_tag(name, version, "run_id", run_id)
    for key, value in data_version.to_tags().items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHALLENGER, version)

    y_true = eval_df["label"].to_numpy(dtype=np.int64)
    challenger_probs = pd.read_csv(eval_dir / "predictions.csv")[PROBABILITY_COLUMNS].to_numpy()
    with registry.promotion_lock(uri, root):
        previous = registry.alias_version(client, name, CHAMPION)
        champion_probs = champion_predictions(client, p, previous, eval_df, eval_sha) if previous else None
        decision = gate.decide(y_true, challenger_probs, champion_probs, eval_df["text"], behaviour, p.gate, p.evaluate)
        for key, value in decision.to_tags().items():
            client.set_model_version_tag(name, version, key, value)
        if decision.promote:
            client.set_registered_model_alias(name, CHAMPION, version)
        record_decision(
            client,
            p,
            root,
            "gate",
            version,
            {
                "promoted": str(decision.promote).lower(),
                "champion_before": previous or "",
                "champion_after": version if decision.promote else (previous or ""),
                "run_id": run_id,
                "decision": decision.to_dict(),
            },
        )
    return RegistrationSummary(
        run_id=run_id,
        model_name=name,
        version=version,
        promoted=decision.promote,
        champion_version=version if decision.promote else previous,
        previous_champion_version=previous,
        reasons=list(decision.reasons),
    )

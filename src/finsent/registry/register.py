"""The register stage: log a trained model with its lineage, register a version, and let the
promotion gate decide whether it becomes champion.

Every decision, promoted or not, is written as tags on the model version and as one run in the
audit experiment (``<experiment>-audit``), which ``finsent registry history`` reads back.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from finsent import tracking
from finsent.config import Params
from finsent.data.frames import read_dataset
from finsent.data.versioning import DataVersion
from finsent.errors import FinsentError
from finsent.evaluation.behaviour import BEHAVIOUR_FILE, BehaviourResult
from finsent.paths import RunLayout
from finsent.registry import pyfunc, versions
from finsent.registry.versions import CHALLENGER, CHAMPION, RegistrationSummary
from finsent.vocabulary import PROBABILITY_COLUMNS

SEQ_DIGITS = 10  # zero-padded so that tag order is decision order
MAX_TAG_CHARS = 5000  # MLflow allows 8000 per tag value
# Gate numbers copied into the audit log; the whole record is the decision.json artifact.
REFERENCE_ARTIFACT = "data/train.csv"  # the training rows, logged with every model: the drift reference
# The dev split (held out, labelled, what the calibration was fitted on), logged beside them when the run
# had one: the reference of the label-free performance estimates, wherever the model is loaded.
DEV_ARTIFACT = "data/dev.csv"
HEADLINE_NUMBERS = ("macro_f1", "macro_f1_champion", "gain", "gain_ci_low", "gain_ci_high", "p_value", "ece")
WRITE_ATTEMPTS = 5  # SQLite answers "database is locked" while another process writes


def audit_experiment(p: Params) -> str:
    return f"{p.register.experiment}-audit"


def with_retries(write, *args, attempts: int = WRITE_ATTEMPTS, wait_s: float = 0.5):
    """Repeat an idempotent registry write (alias, tag) while a concurrent writer holds SQLite's lock. A
    write the store refuses (full disk, read-only, still locked) is ``StoreUnavailable``: the write
    did not happen."""
    for attempt in range(attempts):
        try:
            return write(*args)
        except FinsentError:
            raise
        except Exception as exc:  # noqa: BLE001 - only the lock is retried; anything else is reported
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise tracking.StoreUnavailable(f"the MLflow store refused a write ({reason})") from exc
            time.sleep(wait_s * (attempt + 1))


def next_sequence(client, experiment_id: str) -> int:
    """The number of the next decision; read and written under the promotion lock."""
    last = client.search_runs([experiment_id], order_by=["tags.seq DESC"], max_results=1)
    return int(last[0].data.tags.get("seq", "0")) + 1 if last else 1


def record_decision(client, p: Params, root: Path, action: str, version: str | None, fields: dict, details: dict | None = None) -> None:
    """Append one decision to the audit log: a run in the audit experiment (shared by every client
    of the store), its ``fields`` as tags and ``details`` (the full gate record) as ``decision.json``.

    Call under ``versions.promotion_lock``: the sequence number orders decisions, and replaying the
    champion history (``registry_ops.rollback``) relies on that order."""
    experiment_id = tracking.ensure_experiment(
        client, audit_experiment(p), tracking.artifact_location(p.register, root, tracking.resolve_tracking_uri(p.register, root))
    )
    seq = next_sequence(client, experiment_id)
    tags = {"action": action, "model_name": p.register.model_name, "version": str(version or ""), "seq": f"{seq:0{SEQ_DIGITS}d}"}
    tags.update({k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in fields.items()})
    tags = {k: v if len(v) <= MAX_TAG_CHARS else v[: MAX_TAG_CHARS - 3] + "..." for k, v in tags.items()}
    run = with_retries(client.create_run, experiment_id, None, tags, f"{seq:04d}-{action}-v{version}")
    if details is not None:
        with_retries(client.log_dict, run.info.run_id, details, "decision.json")
    with_retries(client.set_terminated, run.info.run_id)


def record_error(client, p: Params, root: Path, version: str, message: str, champion: str | None) -> None:
    """A gate that could not decide is recorded too, so history explains a version left undecided."""
    record_decision(
        client,
        p,
        root,
        "gate-error",
        version,
        {"promoted": "false", "champion_before": champion or "", "champion_after": champion or "", "reasons": [message]},
    )


def champion_predictions(client, p: Params, champion: str, eval_df: pd.DataFrame, eval_sha: str) -> np.ndarray:
    """The champion's probabilities on this evaluation set: its logged predictions when it was
    evaluated on the same rows, else a fresh scoring of the champion model."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mv = versions.get_version(client, p.register.model_name, champion)
    try:
        run = client.get_run(mv.run_id) if mv.run_id else None
    except MlflowException:  # its run was deleted: score the model instead
        run = None
    if run is not None and run.data.tags.get("eval.sha256") == eval_sha:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="eval/predictions.csv", dst_path=tmp)
                return pd.read_csv(path)[list(PROBABILITY_COLUMNS)].to_numpy()
            except Exception:  # noqa: BLE001 - fall back to scoring
                pass
    try:
        model = mlflow.pyfunc.load_model(f"models:/{p.register.model_name}/{champion}")
        return model.predict(pd.DataFrame({"text": eval_df["text"].tolist()}))[list(PROBABILITY_COLUMNS)].to_numpy()
    except Exception as exc:  # noqa: BLE001 - missing files, broken model: the gate cannot compare
        raise tracking.RegistryError(
            f"champion {p.register.model_name} version {champion} cannot be scored ({type(exc).__name__}: {str(exc)[:300]}); "
            "restore its artifacts, or make a healthy version champion with `finsent registry rollback` or `promote`"
        ) from exc


def log_dev_selection(train_summary: dict) -> None:
    """The dev split's view of training: every evaluation as a metric series, and the weights kept."""
    import mlflow

    for point in train_summary.get("dev_history", []):
        mlflow.log_metrics({f"dev_{k}": float(point[k]) for k in ("macro_f1", "accuracy", "loss")}, step=int(point["step"]))
    if train_summary.get("dev_macro_f1") is not None:
        mlflow.log_metrics({"selected_dev_macro_f1": float(train_summary["dev_macro_f1"])})
        mlflow.set_tags({"train.selected": json.dumps(train_summary.get("selected", {}))[:MAX_TAG_CHARS]})


def training_rows(train_dir: Path) -> Path:
    """The rows the model was trained on: prepare writes them beside ``train/``; logged with the model
    as the drift reference for monitoring."""
    return RunLayout(Path(train_dir).parent).prepared.train


def check_inputs(train_dir: Path, eval_dir: Path, eval_path: Path, *, behaviour_file: bool = True) -> None:
    """Everything registration reads must be there before anything is registered."""
    required = [
        train_dir / "model" / "config.json",
        train_dir / "train_summary.json",
        eval_dir / "metrics.json",
        eval_dir / "predictions.csv",
        training_rows(train_dir),
        eval_path,
        *([eval_dir / BEHAVIOUR_FILE] if behaviour_file else []),
    ]
    missing = [str(path) for path in required if not path.is_file()]
    if missing:
        raise tracking.RegistryError(f"cannot register the model: missing {', '.join(missing)}")


def challenger_predictions(path: Path, eval_df: pd.DataFrame) -> np.ndarray:
    """The challenger's probabilities, checked to be one row per evaluation row, in the same order."""
    predictions = pd.read_csv(path)
    absent = [c for c in PROBABILITY_COLUMNS if c not in predictions.columns]
    if absent:
        raise tracking.RegistryError(f"{path} lacks the probability column(s) {absent}")
    if len(predictions) != len(eval_df):
        raise tracking.RegistryError(f"{path} has {len(predictions)} rows, the evaluation set {len(eval_df)}")
    if "label" in predictions.columns and not np.array_equal(predictions["label"].to_numpy(), eval_df["label"].to_numpy()):
        raise tracking.RegistryError(f"{path}: labels differ from the evaluation set; it was scored on other rows")
    probs = predictions[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
    if not np.isfinite(probs).all():
        raise tracking.RegistryError(f"{path} holds NaN or infinite probabilities")
    return probs


def run(
    p: Params,
    root: Path,
    train_dir: Path,
    eval_dir: Path,
    eval_path: Path,
    data_version: DataVersion,
    validation_summary: dict,
    extra_tags: dict[str, str] | None = None,
    behaviour: BehaviourResult | None = None,
) -> RegistrationSummary:
    """Log, register and gate one trained model. ``train_dir`` holds ``model/`` and
    ``train_summary.json``; ``eval_dir`` holds what ``evaluate.run`` wrote, the behaviour suite's
    result included. ``behaviour`` overrides that result.

    The champion is read, judged against and moved under ``versions.promotion_lock``, so runs that
    finish together are judged one after the other, each against the champion the other left."""
    import mlflow

    from finsent.evaluation import gate
    from finsent.evaluation.evaluate import flat_metrics

    train_dir, eval_dir, eval_path = Path(train_dir), Path(eval_dir), Path(eval_path)
    check_inputs(train_dir, eval_dir, eval_path, behaviour_file=behaviour is None)
    eval_df = read_dataset(eval_path)
    if (eval_df["label"] < 0).any():
        raise tracking.RegistryError(f"{eval_path}: the evaluation set has unlabelled rows; the gate needs every label")
    challenger_probs = challenger_predictions(eval_dir / "predictions.csv", eval_df)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    train_summary = json.loads((train_dir / "train_summary.json").read_text())
    eval_sha = tracking.frame_sha256(eval_df)
    model_dir = train_dir / "model"

    if behaviour is None:  # the evaluate stage ran the suite on the challenger with the model it loaded
        behaviour = BehaviourResult.from_dict(json.loads((eval_dir / BEHAVIOUR_FILE).read_text()))

    client = tracking.connect(p.register, root)
    uri = tracking.resolve_tracking_uri(p.register, root)
    experiment_id = tracking.ensure_experiment(client, p.register.experiment, tracking.artifact_location(p.register, root, uri))
    tags = {
        **data_version.to_tags(),
        **tracking.code_version(root),
        **tracking.library_versions(),
        "eval.sha256": eval_sha,
        "eval.rows": str(len(eval_df)),
        "validation.success": str(validation_summary.get("success", "")).lower(),
        "validation.summary": json.dumps(validation_summary)[:MAX_TAG_CHARS],
        **(extra_tags or {}),
    }
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as active:
        run_id = active.info.run_id
        params = tracking.flatten("", asdict(p))
        mlflow.log_params({k: v[:6000] for k, v in params.items()})
        mlflow.log_metrics(flat_metrics(metrics))
        mlflow.log_metrics({f"train_{k}": float(train_summary[k]) for k in ("seconds", "samples_per_second", "final_loss", "steps")})
        log_dev_selection(train_summary)
        mlflow.log_metrics({f"behaviour_{k}": v for k, v in behaviour.pass_rates.items()})
        mlflow.log_artifacts(str(eval_dir), artifact_path="eval")
        mlflow.log_dict(behaviour.to_dict(), "behaviour.json")
        mlflow.log_dict(validation_summary, "validation.json")
        mlflow.log_artifact(str(training_rows(train_dir)), str(Path(REFERENCE_ARTIFACT).parent))
        dev_rows = RunLayout(Path(train_dir).parent).prepared.dev_if_any()
        if dev_rows is not None:
            mlflow.log_artifact(str(dev_rows), str(Path(DEV_ARTIFACT).parent))
        info = pyfunc.log_model(model_dir, p.register.model_name)
        version = str(info.registered_model_version)

    name = p.register.model_name
    set_tag = lambda key, value: with_retries(client.set_model_version_tag, name, version, key, value)  # noqa: E731
    set_tag("run_id", run_id)
    for key, value in data_version.to_tags().items():
        set_tag(key, value)

    y_true = eval_df["label"].to_numpy(dtype=np.int64)
    with versions.promotion_lock(uri, root, lock_url=p.register.lock_url, name=p.register.model_name):
        with_retries(client.set_registered_model_alias, name, CHALLENGER, version)
        previous = versions.alias_version(client, name, CHAMPION)
        try:
            champion_probs = champion_predictions(client, p, previous, eval_df, eval_sha) if previous else None
        except tracking.RegistryError as exc:
            set_tag("gate.decision", "error")
            record_error(client, p, root, version, str(exc), previous)
            raise
        decision = gate.decide(y_true, challenger_probs, champion_probs, eval_df["text"], behaviour, p.gate, p.evaluate)
        for key, value in decision.to_tags().items():
            set_tag(key, value)
        if decision.promote:
            with_retries(client.set_registered_model_alias, name, CHAMPION, version)
        headline = decision.to_tags(prefix="")
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
                "mode": headline["mode"],
                "failed": headline["failed"],
                "reasons": list(decision.reasons),
                "numbers": {k: headline[k] for k in HEADLINE_NUMBERS if k in headline},
            },
            details=decision.to_dict(),
        )
    return RegistrationSummary(
        run_id=run_id,
        model_name=name,
        version=version,
        promoted=decision.promote,
        champion_version=version if decision.promote else previous,
        previous_champion_version=previous,
        reasons=list(decision.reasons),
        experiment_id=str(experiment_id),
    )

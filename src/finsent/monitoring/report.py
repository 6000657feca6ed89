"""Monitoring results in MLflow: one run per window (or ad-hoc drift check) in ``<experiment>-monitoring``,
with the drift verdict and the label-free performance estimates as tags and metrics, and the reports as
artifacts. Estimates are named ``estimated_*``: never to be read as accuracy measured on labels."""

from __future__ import annotations

from pathlib import Path

from finsent import tracking
from finsent.config import Params

MAX_TAG_CHARS = 5000  # MLflow allows 8000 per tag value


def monitoring_experiment(p: Params) -> str:
    return f"{p.register.experiment}-monitoring"


def verdict_tags_and_metrics(verdict: dict | None, skipped: str | None) -> tuple[dict[str, str], dict[str, float]]:
    """MLflow tags and metrics of one drift verdict: what fired, and each signal's value."""
    if verdict is None:
        return {"drift.verdict": "skipped", "drift.skipped": (skipped or "")[:MAX_TAG_CHARS]}, {}
    tags = {
        "drift.verdict": "drift" if verdict["drift"] else "no_drift",
        "drift.signals_fired": ",".join(verdict["signals_fired"]),
        "drift.signals_checked": ",".join(verdict["signals_checked"]),
    }
    for signal, why in verdict.get("skipped", {}).items():
        tags[f"drift.skipped.{signal}"] = str(why)[:MAX_TAG_CHARS]
    metrics = {"drift_detected": float(verdict["drift"]), "drift_signals_fired": float(len(verdict["signals_fired"]))}
    for signal, detail in verdict["details"].items():
        metrics[f"drift_{signal}_value"] = float(detail["value"])
        metrics[f"drift_{signal}_threshold"] = float(detail["threshold"])
        metrics[f"drift_{signal}_fired"] = float(bool(detail["fired"]))
        tags[f"drift.{signal}.fired"] = str(bool(detail["fired"])).lower()
    return tags, metrics


def estimate_tags_and_metrics(estimated: dict | None) -> tuple[dict[str, str], dict[str, float]]:
    """MLflow tags and metrics of a window's label-free estimates: the chosen one as ``estimated_accuracy``
    (with its interval), macro-F1 and drop, and every method's as ``estimated_accuracy.<method>``."""
    if not estimated:
        return {"estimate.chosen": "none"}, {}
    chosen = estimated.get("chosen") or "none"
    tags = {"estimate.chosen": chosen}
    for method, why in (estimated.get("skipped") or {}).items():
        tags[f"estimate.skipped.{method}"] = str(why)[:MAX_TAG_CHARS]
    metrics: dict[str, float] = {}
    for method, e in (estimated.get("methods") or {}).items():
        metrics[f"estimated_accuracy.{method}"] = float(e["estimated_accuracy"])
        metrics[f"estimated_macro_f1.{method}"] = float(e["estimated_macro_f1"])
    best = (estimated.get("methods") or {}).get(chosen)
    if best:
        for key in ("estimated_accuracy", "accuracy_low", "accuracy_high", "estimated_macro_f1", "macro_f1_low", "macro_f1_high"):
            name = key if key.startswith("estimated_") else f"estimated_{key}"
            metrics[name] = float(best[key])
    for key in ("estimated_drop", "domain_auc"):
        if estimated.get(key) is not None:
            metrics[key if key == "estimated_drop" else "estimate_domain_auc"] = float(estimated[key])
    return tags, metrics


def log_monitoring_run(
    client, p: Params, root: Path, *, run_name: str, tags: dict[str, str], metrics: dict[str, float], artifact_dir: Path | None
) -> str:
    """One run in ``<experiment>-monitoring``: the verdict as tags and metrics, the reports as artifacts."""
    uri = tracking.resolve_tracking_uri(p.register, root)
    experiment_id = tracking.ensure_experiment(client, monitoring_experiment(p), tracking.artifact_location(p.register, root, uri))
    clipped = {k: str(v)[:MAX_TAG_CHARS] for k, v in tags.items()}
    run = client.create_run(experiment_id, tags=clipped, run_name=run_name)
    run_id = run.info.run_id
    try:
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value))
        if artifact_dir is not None and Path(artifact_dir).is_dir():
            client.log_artifacts(run_id, str(artifact_dir))
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def window_tags_and_metrics(
    verdict: dict | None,
    skipped: str | None,
    *,
    champion,
    batch_ids,
    files,
    scored,
    window_rows: int,
    alerts: int,
    decision,
    flow_run_id: str,
    estimated: dict | None = None,
) -> tuple[dict[str, str], dict[str, float]]:
    """Tags and metrics of one monitored window: the verdict's and the estimates', plus what was scored
    and decided."""
    tags, metrics = verdict_tags_and_metrics(verdict, skipped)
    estimate_tags, estimate_metrics = estimate_tags_and_metrics(estimated)
    tags.update(estimate_tags)
    metrics.update(estimate_metrics)
    tags.update(
        {
            "kind": "window",
            "model_name": champion.name,
            "champion.version": champion.version,
            "batch_ids": ",".join(batch_ids),
            "files": ",".join(str(f) for f in files),
            "alerts": str(alerts),
            "retrain.should": str(decision.should_retrain).lower(),
            "retrain.reasons": ",".join(decision.reasons),
            "retrain.cooldown_overridden": str(decision.cooldown_overridden).lower(),
            "prefect.flow_run_id": flow_run_id,
        }
    )
    metrics.update(
        {
            "rows_scored": float(sum(s.rows_scored for s in scored)),
            "rows_skipped": float(sum(s.rows_skipped for s in scored)),
            "window_rows": float(window_rows),
            "alerts": float(alerts),
            "retrain_should": float(decision.should_retrain),
        }
    )
    return tags, metrics

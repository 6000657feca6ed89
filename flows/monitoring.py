"""The monitoring flow: score new news batches with the champion -> drift against the champion's training
data -> sentiment index and alerts -> one MLflow run in ``<experiment>-monitoring`` -> the retrain policy
-> when it fires, the retrain flow.

The retrain flow adds the labelled rows of scored batches as a new data version (validated like
``finsent data add``) and runs the training flow; the registry gate alone decides promotion, so drift
never promotes anything. The nightly deployment runs the retrain flow; the hourly one runs monitoring
on the inbox folder (see flows/serve.py).

Tasks take loaded models and database engines, which are not worth hashing: they do not cache.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from finsent import batch, drift, monitor, registry, sentiment_index
from finsent.config import Params, load_params, replace
from flows.training import training_flow


def load(params_path: str, root: str, overrides: dict | None) -> tuple[Path, Params]:
    project = Path(root).resolve()
    return project, replace(load_params(project / params_path), **(overrides or {}))


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def connect_tracking(params: Params, root: Path):
    return registry.connect(params.register, root)


def _store_may_recover(task, task_run, state) -> bool:
    """Retry an unreachable store, not a registry that simply has no champion."""
    try:
        state.result()
    except registry.StoreUnavailable:
        return True
    except registry.RegistryError:
        return False
    except Exception:  # noqa: BLE001 - other I/O errors may be transient
        return True
    return False


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_store_may_recover, cache_policy=NO_CACHE)
def load_champion(params: Params, root: Path, client) -> monitor.Champion:
    return monitor.load_champion(params, root, client=client)


@task(cache_policy=NO_CACHE)
def score_batch(params: Params, path: Path, champion: monitor.Champion, engine) -> batch.ScoreSummary:
    summary = batch.run(
        params.monitor, champion.scorer, path, engine, model_name=champion.name, model_version=champion.version
    )
    print(summary.message)
    return summary


@task(cache_policy=NO_CACHE)
def check_drift(params: Params, root: Path, client, champion: monitor.Champion, window, out_dir: Path):
    """The drift verdict of the window, or ``(None, why)`` when it cannot be computed (too few rows, no
    reference logged with the champion): scoring and the index still stand."""
    cache = monitor.reference_dir(params, root, champion)
    try:
        reference = monitor.champion_reference(client, champion, cache)
        current = window[["text", "predicted", "label"]]
        return drift.run(
            params.drift, reference, current, out_dir,
            model=champion.scorer.model, tokenizer=champion.scorer.tokenizer,
            baseline_macro_f1=champion.baseline_macro_f1, reference_cache=cache / "outputs.npz",
        ), None
    except (drift.DriftError, registry.RegistryError) as exc:
        print(f"drift not computed: {exc}")
        return None, str(exc)


@task(cache_policy=NO_CACHE)
def sentiment(params: Params, engine, out_dir: Path, start) -> sentiment_index.IndexSummary:
    summary = sentiment_index.run(params.monitor, engine, out_dir, start=start)
    for alert in summary.alerts:
        print(f"ALERT {alert['ticker']} {alert['day']}: net sentiment {alert['net_sentiment']:+.2f} "
              f"({alert['change']:+.2f} vs baseline {alert['baseline']:+.2f}, {alert['count']} texts)")
    return summary


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def log_run(params: Params, root: Path, client, run_name: str, tags: dict, metrics: dict, out_dir: Path) -> str:
    return monitor.log_monitoring_run(client, params, root, run_name=run_name, tags=tags, metrics=metrics, artifact_dir=out_dir)


@task(cache_policy=NO_CACHE)
def add_new_labels(params: Params, root: Path, engine, work_dir: Path, name: str, git_commit: bool) -> monitor.LabelExport:
    result = monitor.add_new_labels(params, root, engine, work_dir, name=name, git_commit=git_commit)
    print(result.message)
    return result


def flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or "")


@flow(name="finsent-retrain", log_prints=True)
def retrain_flow(
    params_path: str = "params.yaml",
    root: str = ".",
    overrides: dict | None = None,
    reasons: list[str] | None = None,
    git_commit: bool = True,
) -> dict:
    """Version the new labelled rows of the store, then run the training flow; the gate decides promotion."""
    project, params = load(params_path, root, overrides)
    reasons = list(reasons or ["schedule"])
    engine = monitor.open_store(params.monitor, project)
    retrain_id = monitor.start_retrain(engine, reasons)
    work_dir = monitor.new_out_dir(params, project, kind="retrain")
    try:
        labels = add_new_labels(params, project, engine, work_dir, f"monitor-{work_dir.name}", git_commit)
        registration = training_flow(params_path=params_path, root=str(project), overrides=overrides)
    except BaseException as exc:
        monitor.finish_retrain(engine, retrain_id, "failed", message=f"{exc.__class__.__name__}: {exc}")
        raise
    monitor.finish_retrain(
        engine, retrain_id, "registered", model_version=registration.version, promoted=registration.promoted,
        message="; ".join(registration.reasons),
    )
    result = {"reasons": reasons, "labels": asdict(labels), "registration": asdict(registration)}
    monitor.write_json(work_dir / "retrain.json", result)
    return result


@flow(name="finsent-monitoring", log_prints=True)
def monitoring_flow(
    path: str | None = None,
    params_path: str = "params.yaml",
    root: str = ".",
    overrides: dict | None = None,
    retrain: bool = True,
    git_commit: bool = True,
) -> monitor.MonitoringSummary:
    """Monitor one batch file, or every new file in a folder (default: ``schedule.monitor_inbox``).

    Relative paths are taken from ``root``. ``retrain=False`` reports the policy's decision without
    acting on it. With nothing new to score, the run ends at once without loading the champion.
    """
    project, params = load(params_path, root, overrides)
    target = Path(path) if path else Path(params.schedule.monitor_inbox)
    target = target if target.is_absolute() else project / target
    if path is None and not target.exists():  # the scheduled run before anyone dropped a file
        return monitor.MonitoringSummary(status="no_new_batches", message=f"inbox {target} does not exist yet")
    engine = monitor.open_store(params.monitor, project)
    files = monitor.new_files(target, engine)
    if not files:
        return monitor.MonitoringSummary(status="no_new_batches", message=f"{target}: no new batch files to score")

    client = connect_tracking(params, project)
    champion = load_champion(params, project, client)
    out_dir = monitor.new_out_dir(params, project)
    scored = [score_batch(params, f, champion, engine) for f in files]
    monitor.write_json(out_dir / "scoring.json", [asdict(s) for s in scored])
    batch_ids = [s.batch_id for s in scored if s.status == "scored"]
    base = {"out_dir": str(out_dir), "champion_version": champion.version, "scoring": [asdict(s) for s in scored]}
    if not batch_ids:
        return monitor.MonitoringSummary(status="already_scored", message="every file was already in the store", **base)

    window = monitor.window_frame(engine, batch_ids)
    drifted, drift_skipped = check_drift(params, project, client, champion, window, out_dir / "drift")
    index = sentiment(params, engine, out_dir / "index", monitor.lookback_start(window, params.monitor))
    window_end = monitor.utc_now()
    window_id = None
    if drifted is not None:
        window_id = monitor.record_window(
            engine, window_end=window_end, batch_ids=batch_ids, rows=len(window), verdict=drifted.verdict,
            model_name=champion.name, model_version=champion.version, verdict_path=drifted.paths.get("verdict_json"),
        )
    decision, inputs = monitor.decide(params, engine, client, window_end)
    decision_record = monitor.decision_dict(decision, inputs)
    monitor.write_json(out_dir / "decision.json", decision_record)
    print(f"retrain decision: {decision.should_retrain} {decision.reasons}; " + "; ".join(decision.explanation))

    tags, metrics = monitor.verdict_tags_and_metrics(drifted.verdict if drifted else None, drift_skipped)
    tags.update({
        "kind": "window",
        "model_name": champion.name,
        "champion.version": champion.version,
        "batch_ids": ",".join(batch_ids),
        "files": ",".join(str(f) for f in files),
        "alerts": str(len(index.alerts)),
        "retrain.should": str(decision.should_retrain).lower(),
        "retrain.reasons": ",".join(decision.reasons),
        "prefect.flow_run_id": flow_run_id(),
    })
    metrics.update({
        "rows_scored": float(sum(s.rows_scored for s in scored)),
        "rows_skipped": float(sum(s.rows_skipped for s in scored)),
        "window_rows": float(len(window)),
        "alerts": float(len(index.alerts)),
        "retrain_should": float(decision.should_retrain),
    })
    run_id = log_run(params, project, client, f"window-{out_dir.name}", tags, metrics, out_dir)
    if window_id is not None:
        monitor.set_window_run(engine, window_id, run_id)

    retrained = None
    if decision.should_retrain and retrain:
        try:
            retrained = retrain_flow(params_path=params_path, root=str(project), overrides=overrides, reasons=decision.reasons, git_commit=git_commit)
        except BaseException:
            client.set_tag(run_id, "retrain.status", "failed")
            raise
        registration = retrained["registration"]
        client.set_tag(run_id, "retrain.status", "registered")
        client.set_tag(run_id, "retrain.version", registration["version"])
        client.set_tag(run_id, "retrain.promoted", str(registration["promoted"]).lower())

    summary = monitor.MonitoringSummary(
        status="monitored",
        message=f"scored {sum(s.rows_scored for s in scored)} rows from {len(batch_ids)} file(s); "
        f"drift: {drifted.verdict['signals_fired'] if drifted else 'not computed'}; retrain: {decision.should_retrain}",
        window_rows=len(window),
        drift=drifted.verdict if drifted else None,
        drift_skipped=drift_skipped,
        drift_paths=drifted.paths if drifted else {},
        sentiment=asdict(index),
        decision=decision_record,
        mlflow_run_id=run_id,
        retrain=retrained,
        **base,
    )
    monitor.write_json(out_dir / "summary.json", summary.to_dict())
    return summary


if __name__ == "__main__":
    from finsent.env import apply_quiet_offline

    apply_quiet_offline()
    print(monitoring_flow())

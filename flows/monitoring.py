"""The monitoring flow: score new news batches with the champion -> drift against the champion's training
data -> sentiment index and alerts -> one MLflow run in ``<experiment>-monitoring`` -> the retrain policy
-> when it fires, the retrain flow.

The retrain flow adds the labelled rows of scored batches as a new data version (validated like
``finsent data add``) and runs the training flow; the registry gate alone decides promotion, so drift
never promotes anything. The nightly deployment runs the retrain flow; the hourly one runs monitoring
on the inbox folder (see flows/serve.py).

Each monitored window is published to Prefect's UI (artifact ``finsent-monitoring``: rows scored and
skipped per file, drift signals, alerts, the retrain decision); a report that cannot be published never
fails the run.

Tasks take loaded models and database engines, which are not worth hashing: they do not cache.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from finsent import files, tracking
from finsent.config import Params, load_params, replace
from finsent.monitoring import history, labels, markdown, run
from finsent.monitoring.champion import Champion
from finsent.monitoring.store import open_store
from finsent.paths import Layout
from flows import artifacts
from flows.training import training_flow


def load(params_path: str, root: str, overrides: dict | None) -> tuple[Path, Params]:
    project = Path(root).resolve()
    return project, replace(load_params(project / params_path), **(overrides or {}))


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def connect_tracking(params: Params, root: Path):
    return tracking.connect(params.register, root)


def _store_may_recover(task, task_run, state) -> bool:
    """Retry an unreachable store, not a registry that simply has no champion."""
    try:
        state.result()
    except tracking.StoreUnavailable:
        return True
    except tracking.RegistryError:
        return False
    except Exception:  # noqa: BLE001 - other I/O errors may be transient
        return True
    return False


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_store_may_recover, cache_policy=NO_CACHE)
def load_champion(params: Params, root: Path, client) -> Champion:
    from finsent.monitoring.champion import load_champion as load

    return load(params, root, client=client)


# Not retried: scoring writes the store, and a repeat would find the files already scored.
@task(cache_policy=NO_CACHE)
def monitor_window(params: Params, root: Path, client, champion: Champion, engine, files_to_score: list[Path]) -> run.MonitoringSummary:
    return run.monitor_window(params, root, client, champion, engine, files_to_score, flow_run_id=flow_run_id())


# Never fails the flow: a report that cannot be built or sent is logged (flows/artifacts.py).
@task(cache_policy=NO_CACHE)
def publish_report(summary: run.MonitoringSummary) -> None:
    artifacts.publish_markdown(artifacts.MONITORING, lambda: markdown.monitoring_markdown(summary), lambda: summary.message)


@task(cache_policy=NO_CACHE)
def add_new_labels(params: Params, root: Path, engine, work_dir: Path, name: str, git_commit: bool) -> labels.LabelExport:
    result = labels.add_new_labels(params, root, engine, work_dir, name=name, git_commit=git_commit)
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
    engine = open_store(params.monitor, project)
    retrain_id = history.start_retrain(engine, reasons)
    work_dir = Layout.of(project, params).new_monitoring_dir("retrain")
    try:
        new_labels = add_new_labels(params, project, engine, work_dir, f"monitor-{work_dir.name}", git_commit)
        registration = training_flow(params_path=params_path, root=str(project), overrides=overrides)
    except BaseException as exc:
        history.finish_retrain(engine, retrain_id, "failed", message=f"{exc.__class__.__name__}: {exc}")
        raise
    history.finish_retrain(
        engine,
        retrain_id,
        "registered",
        model_version=registration.version,
        promoted=registration.promoted,
        message="; ".join(registration.reasons),
    )
    result = {"reasons": reasons, "labels": asdict(new_labels), "registration": asdict(registration)}
    files.write_json(work_dir / "retrain.json", result)
    return result


@flow(name="finsent-monitoring", log_prints=True)
def monitoring_flow(
    path: str | None = None,
    params_path: str = "params.yaml",
    root: str = ".",
    overrides: dict | None = None,
    retrain: bool = True,
    git_commit: bool = True,
) -> run.MonitoringSummary:
    """Monitor one batch file, or every new file in a folder (default: ``schedule.monitor_inbox``).

    Relative paths are taken from ``root``. ``retrain=False`` reports the policy's decision without
    acting on it. With nothing new to score, the run ends at once without loading the champion.
    """
    project, params = load(params_path, root, overrides)
    work = run.find_work(params, project, path)
    if work.done is not None:
        return work.done
    client = connect_tracking(params, project)
    champion = load_champion(params, project, client)
    summary = monitor_window(params, project, client, champion, work.engine, work.files)
    publish_report(summary)
    if not (summary.should_retrain and retrain):
        return summary
    try:
        retrained = retrain_flow(
            params_path=params_path, root=str(project), overrides=overrides, reasons=summary.decision["reasons"], git_commit=git_commit
        )
    except BaseException:
        run.record_retrain(client, summary, None, failed=True)
        raise
    return run.record_retrain(client, summary, retrained)


if __name__ == "__main__":
    from finsent.env import apply_quiet_offline

    apply_quiet_offline()
    print(monitoring_flow())

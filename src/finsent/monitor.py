"""Monitoring glue: the champion as a scorer, its training data as the drift reference, the window
history in the predictions store, and the steps that the monitoring flow and the CLI share.

The stage modules do the work (``batch`` scores, ``drift`` compares, ``sentiment_index`` aggregates,
``retrain_policy`` decides); this module reaches MLflow and the store for them. Three small tables sit
beside the predictions in the same database, so one transaction keeps each record whole:
- ``drift_windows``: one row per monitored window (the batches scored in one run) with the signals
  that fired: the history the retrain policy confirms drift over;
- ``label_exports``: which scored batches had their labelled rows handed to training, so that a label
  is counted and versioned once;
- ``retrains``: each retraining the policy or the schedule started, for the cool-down and the audit.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from finsent import registry
from finsent.config import MonitorParams, Params
from finsent.registry import CHAMPION, RegistryError
from finsent.retrain_policy import RetrainDecision, WindowVerdict, decide_retrain
from finsent.store import make_engine, predictions, read_predictions

BATCH_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")
REFERENCE_ARTIFACT = "data/train.csv"  # logged by finsent.register with every trained model
MAX_TAG_CHARS = 5000

history_metadata = MetaData()

drift_windows = Table(
    "drift_windows",
    history_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("window_end", DateTime, nullable=False, index=True),  # naive UTC
    Column("batch_ids", Text, nullable=False),  # comma-separated store batch ids
    Column("rows", Integer, nullable=False),
    Column("drift", Boolean, nullable=False),
    Column("signals_fired", String(512), nullable=False),  # comma-separated; "" when none
    Column("model_name", String(256), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("verdict_path", String(1024), nullable=True),
    Column("mlflow_run_id", String(64), nullable=True),
)

label_exports = Table(
    "label_exports",
    history_metadata,
    Column("batch_id", String(64), primary_key=True),  # a store batch whose labels were handled
    Column("exported_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),  # added | rejected
    Column("data_batch", String(256), nullable=True),  # name under data/batches when added
    Column("rows", Integer, nullable=False),
)

retrains = Table(
    "retrains",
    history_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime, nullable=False, index=True),
    Column("finished_at", DateTime, nullable=True),
    Column("reasons", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # started | registered | failed
    Column("model_version", String(64), nullable=True),
    Column("promoted", Boolean, nullable=True),
    Column("message", Text, nullable=True),
)


@dataclass
class Champion:
    """The model scoring the news: a registry version loaded as a ``Scorer`` (model and tokenizer)."""

    name: str
    version: str
    run_id: str | None
    scorer: Any  # finsent.score.Scorer
    baseline_macro_f1: float | None  # on the frozen evaluation set, from its training run
    data_md5: str | None


@dataclass(frozen=True)
class LabelExport:
    status: str  # none | added | rejected
    rows_found: int = 0
    rows_added: int = 0
    dropped_duplicates: int = 0
    dropped_eval_overlap: int = 0
    data_batch: str | None = None
    data_version: dict | None = None
    batch_ids: list[str] = field(default_factory=list)
    message: str = ""


# --- store ----------------------------------------------------------------------------------------


def store_url(p: MonitorParams, root: Path) -> str:
    """``monitor.store_url`` with a relative SQLite path taken from the project root."""
    url = p.store_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        url = f"sqlite:///{(Path(root) / url[len('sqlite:///'):]).resolve()}"
    return url


def open_store(p: MonitorParams, root: Path) -> Engine:
    """The predictions store with the history tables created."""
    engine = make_engine(store_url(p, root))
    history_metadata.create_all(engine)
    return engine


def _naive_utc(ts: datetime) -> datetime:
    ts = ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).replace(tzinfo=None)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=timezone.utc)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_files(path: Path, engine: Engine) -> list[Path]:
    """A batch file, or the batch files in a folder (an inbox) that the store has not scored yet."""
    from finsent.batch import file_sha256
    from finsent.data import DataError
    from finsent.store import find_batch

    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in BATCH_SUFFIXES and not f.name.startswith("."))
    return [f for f in files if find_batch(engine, file_sha256(f)) is None]


def window_frame(engine: Engine, batch_ids: Sequence[str]) -> pd.DataFrame:
    """The stored predictions of these batches: the window that drift compares with the reference."""
    frames = [read_predictions(engine, batch_id=b) for b in batch_ids]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return read_predictions(engine, batch_id="")  # the empty frame, with its columns
    return pd.concat(frames, ignore_index=True)


def record_window(
    engine: Engine,
    *,
    window_end: datetime,
    batch_ids: Sequence[str],
    rows: int,
    verdict: dict,
    model_name: str,
    model_version: str,
    verdict_path: str | None,
) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(drift_windows).values(
                window_end=_naive_utc(window_end),
                batch_ids=",".join(batch_ids),
                rows=int(rows),
                drift=bool(verdict["drift"]),
                signals_fired=",".join(verdict["signals_fired"]),
                model_name=model_name,
                model_version=str(model_version),
                verdict_path=verdict_path,
            )
        )
        return int(result.inserted_primary_key[0])


def set_window_run(engine: Engine, window_id: int, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(drift_windows).where(drift_windows.c.id == window_id).values(mlflow_run_id=run_id))


def read_windows(engine: Engine, limit: int = 200) -> list[WindowVerdict]:
    """The latest window verdicts, oldest first."""
    query = select(drift_windows).order_by(drift_windows.c.window_end.desc(), drift_windows.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        WindowVerdict(
            window_end=_aware(r["window_end"]),
            rows=int(r["rows"]),
            signals_fired=tuple(s for s in r["signals_fired"].split(",") if s),
        )
        for r in reversed(rows)
    ]


def pending_labels(engine: Engine) -> pd.DataFrame:
    """Labelled predictions from batches whose labels have not been handed to training yet."""
    handled = select(label_exports.c.batch_id)
    query = (
        select(predictions.c.batch_id, predictions.c.text, predictions.c.label)
        .where(predictions.c.label.is_not(None), predictions.c.batch_id.not_in(handled))
        .order_by(predictions.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return pd.DataFrame(rows, columns=["batch_id", "text", "label"]).astype({"label": "int64"})


def mark_exported(engine: Engine, batch_ids: Sequence[str], status: str, data_batch: str | None, rows_by_batch: dict[str, int]) -> None:
    now = _naive_utc(utc_now())
    with engine.begin() as conn:
        for batch_id in batch_ids:
            conn.execute(
                insert(label_exports).values(
                    batch_id=batch_id, exported_at=now, status=status, data_batch=data_batch, rows=int(rows_by_batch.get(batch_id, 0))
                )
            )


def start_retrain(engine: Engine, reasons: Sequence[str], started_at: datetime | None = None) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(retrains).values(started_at=_naive_utc(started_at or utc_now()), reasons=",".join(reasons), status="started")
        )
        return int(result.inserted_primary_key[0])


def finish_retrain(
    engine: Engine, retrain_id: int, status: str, *, model_version: str | None = None, promoted: bool | None = None, message: str = ""
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(retrains)
            .where(retrains.c.id == retrain_id)
            .values(finished_at=_naive_utc(utc_now()), status=status, model_version=model_version, promoted=promoted, message=message[:MAX_TAG_CHARS])
        )


def read_retrains(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(retrains).order_by(retrains.c.id)).mappings().all()
    return [dict(r) for r in rows]


# --- MLflow ---------------------------------------------------------------------------------------


def monitoring_experiment(p: Params) -> str:
    return f"{p.register.experiment}-monitoring"


def load_champion(p: Params, root: Path, alias: str = CHAMPION, client=None) -> Champion:
    """The version behind ``alias`` as a ``Scorer``; a clear ``RegistryError`` when there is none."""
    import mlflow

    from finsent.score import Scorer

    client = client or registry.connect(p.register, root)
    name = p.register.model_name
    version = registry.alias_version(client, name, alias)
    if version is None:
        raise RegistryError(
            f"no model has the alias {alias!r} in the registry ({name!r}): nothing to score with; "
            "train and promote one first (finsent train)"
        )
    registry.check_artifacts(client, name, version)
    mv = registry.get_version(client, name, version)
    # Loaded through MLflow's own path (models-from-code), then reused as a plain Scorer so that
    # scoring uses the monitor's batch size and the drift stage can reach the model and tokenizer.
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().scorer
    scorer = Scorer(
        loaded.tokenizer, loaded.model, max_length=p.train.max_length, batch_size=p.monitor.batch_size, device=p.train.device
    )
    baseline = data_md5 = None
    if mv.run_id:
        run = client.get_run(mv.run_id)
        baseline = run.data.metrics.get("macro_f1")
        data_md5 = run.data.tags.get("data.dvc_md5")
    return Champion(name=name, version=version, run_id=mv.run_id, scorer=scorer, baseline_macro_f1=baseline, data_md5=data_md5)


def reference_dir(p: Params, root: Path, champion: Champion) -> Path:
    return Path(root).resolve() / p.artifacts_dir / "monitoring" / "reference" / f"{champion.name}-v{champion.version}"


def champion_reference(client, champion: Champion, cache_dir: Path) -> pd.DataFrame:
    """The champion's training data (text, label), from its training run; kept in ``cache_dir``."""
    import mlflow

    from finsent.data import read_dataset

    target = Path(cache_dir) / "train.csv"
    if not target.is_file():
        if not champion.run_id:
            raise RegistryError(f"{champion.name} v{champion.version} has no training run: no drift reference")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=tmp)
            except Exception as exc:  # noqa: BLE001 - MlflowException or OSError: the artifact is not there
                raise RegistryError(
                    f"{champion.name} v{champion.version}: its run {champion.run_id} has no {REFERENCE_ARTIFACT} artifact "
                    f"(registered before monitoring logged it?): no drift reference ({exc.__class__.__name__})"
                ) from exc
            os.replace(local, target)
    return read_dataset(target)[["text", "label"]]


def last_retrain_at(engine: Engine, client, p: Params) -> datetime | None:
    """The later of the last training run in MLflow (any trigger: CLI, schedule, policy) and the last
    retraining the monitor started (which counts even when it failed before reaching MLflow)."""
    times: list[datetime] = []
    experiment = client.get_experiment_by_name(p.register.experiment)
    if experiment is not None:
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
        if runs:
            times.append(datetime.fromtimestamp(runs[0].info.start_time / 1000, tz=timezone.utc))
    with engine.connect() as conn:
        started = conn.execute(select(func.max(retrains.c.started_at))).scalar_one()
    if started is not None:
        times.append(_aware(started))
    return max(times) if times else None


def decide(p: Params, engine: Engine, client, now: datetime | None = None, *, scheduled: bool = False) -> tuple[RetrainDecision, dict]:
    """The retrain policy on the stored window history; returns the decision and its inputs."""
    now = now or utc_now()
    history = read_windows(engine)
    last = last_retrain_at(engine, client, p)
    new_labelled = len(pending_labels(engine))
    decision = decide_retrain(history, now, last, new_labelled, p.retrain, scheduled=scheduled)
    inputs = {
        "now": now.isoformat(),
        "windows": len(history),
        "last_retrain_at": last.isoformat() if last else None,
        "new_labelled_rows": new_labelled,
    }
    return decision, inputs


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


def log_monitoring_run(
    client, p: Params, root: Path, *, run_name: str, tags: dict[str, str], metrics: dict[str, float], artifact_dir: Path | None
) -> str:
    """One run in ``<experiment>-monitoring``: the verdict as tags and metrics, the reports as artifacts."""
    uri = registry.resolve_tracking_uri(p.register, root)
    experiment_id = registry.ensure_experiment(client, monitoring_experiment(p), registry.artifact_location(p.register, root, uri))
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


# --- labels for retraining ------------------------------------------------------------------------


def add_new_labels(p: Params, root: Path, engine: Engine, work_dir: Path, *, name: str, git_commit: bool = True, log=print) -> LabelExport:
    """Hand the labelled rows of scored batches to training, through the same path as ``finsent data add``:
    validation, then a new DVC data version. Exact duplicates and rows that are in the frozen evaluation
    set are dropped first (and counted); a batch that still fails validation is quarantined with its
    report, and its rows are not offered again."""
    from finsent import validate, versioning
    from finsent.data import read_dataset, read_table, write_dataset

    pending = pending_labels(engine)
    if pending.empty:
        return LabelExport(status="none", message="no new labelled rows")
    batch_ids = list(dict.fromkeys(pending["batch_id"]))
    rows_by_batch = pending["batch_id"].value_counts().to_dict()
    versioning.ensure_data(root, p.data, log=log)
    eval_path = Path(root) / p.data.data_dir / p.data.eval_file
    keys = pending["text"].map(validate.normalise_text)
    rows = pending.loc[~keys.duplicated(), ["text", "label"]]
    dropped_duplicates = len(pending) - len(rows)
    rows, dropped_overlap = validate.drop_eval_overlap(rows, read_dataset(eval_path))
    base = dict(rows_found=len(pending), dropped_duplicates=dropped_duplicates, dropped_eval_overlap=dropped_overlap, batch_ids=batch_ids)
    if rows.empty:
        mark_exported(engine, batch_ids, "rejected", None, rows_by_batch)
        return LabelExport(status="rejected", message="every labelled row was a duplicate or an evaluation row", **base)

    csv = write_dataset(rows.reset_index(drop=True), Path(work_dir) / f"{name}.csv")
    report = validate.validate_file(csv, read_table(eval_path), p.validate)
    if not report.success:
        kept = versioning.quarantine(csv, Path(root) / p.data.quarantine_dir, json.dumps(report.to_dict(), indent=2, default=str))
        mark_exported(engine, batch_ids, "rejected", None, rows_by_batch)
        return LabelExport(status="rejected", message=f"validation failed, kept in {kept.parent}: {report.summary()}", **base)
    version = versioning.add_batch(root, p.data, csv, name, log=log, git_commit=git_commit)
    mark_exported(engine, batch_ids, "added", name, rows_by_batch)
    return LabelExport(
        status="added", rows_added=len(rows), data_batch=name, data_version=version.to_dict(),
        message=f"{len(rows)} labelled rows added as data batch {name!r}", **base,
    )


# --- outputs --------------------------------------------------------------------------------------


def write_json(path: Path, payload: Any) -> Path:
    """Atomically: a temporary file beside it, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def new_out_dir(p: Params, root: Path, kind: str = "runs") -> Path:
    stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
    return Path(root).resolve() / p.artifacts_dir / "monitoring" / kind / stamp


def lookback_start(window: pd.DataFrame, p: MonitorParams) -> datetime | None:
    """The sentiment index of a window needs the days before it for the alert baselines."""
    if window.empty:
        return None
    first = pd.Timestamp(window["published_at"].min()).normalize()
    return (first - timedelta(days=p.alert_window_days)).to_pydatetime()


def decision_dict(decision: RetrainDecision, inputs: dict) -> dict:
    return {**asdict(decision), "inputs": inputs}


@dataclass(frozen=True)
class MonitoringSummary:
    """What one monitoring run did; also written as ``summary.json`` in its output folder."""

    status: str  # monitored | no_new_batches | already_scored
    message: str
    out_dir: str | None = None
    champion_version: str | None = None
    scoring: list[dict] = field(default_factory=list)  # one batch.ScoreSummary per file
    window_rows: int = 0
    drift: dict | None = None  # the verdict: drift, signals_fired, details, skipped
    drift_skipped: str | None = None  # why no verdict was computed
    drift_paths: dict = field(default_factory=dict)
    sentiment: dict | None = None  # sentiment_index.IndexSummary: alerts, json and plot paths
    decision: dict | None = None  # retrain_policy.RetrainDecision and its inputs
    mlflow_run_id: str | None = None
    retrain: dict | None = None  # what the retrain flow did, when the decision fired

    def to_dict(self) -> dict:
        return asdict(self)

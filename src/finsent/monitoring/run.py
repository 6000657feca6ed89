"""One monitoring window, end to end: score the new news files with the champion -> drift against the
champion's training rows -> label-free estimates of its accuracy -> sentiment index and alerts -> the
window in the store's history -> the retrain policy's decision -> one MLflow run. Returns a
``MonitoringSummary``.

The Prefect monitoring flow (``flows/monitoring.py``) calls ``monitor_window`` between loading the
champion and, when the policy fires, the retrain flow; ``finsent monitor drift`` calls the same
``check_drift`` and ``estimate_window`` on one file without storing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from finsent import files, utc
from finsent.config import MonitorParams, Params
from finsent.data.frames import DataError
from finsent.monitoring import alerts, batch, drift, history, report, sentiment_index
from finsent.monitoring import estimate as est
from finsent.monitoring.champion import Champion, cached_outputs, champion_dev_reference, champion_reference, reference_dir
from finsent.monitoring.retrain_policy import RetrainDecision, WindowPerformance
from finsent.monitoring.store import IN_LIST_CHUNK, find_batch, open_store, read_predictions
from finsent.paths import Layout
from finsent.tracking import RegistryError
from finsent.vocabulary import PROBABILITY_COLUMNS

BATCH_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")


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
    alerts_recorded: list[str] = field(default_factory=list)  # keys of the alerts this window recorded (finsent alerts list)
    estimated_performance: dict | None = None  # label-free estimates (estimate.Estimation.to_dict, and the drop)
    estimation_skipped: str | None = None  # why no estimate was computed

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def should_retrain(self) -> bool:
        return bool(self.decision and self.decision["should_retrain"])


class _WindowFields(TypedDict):
    """The ``MonitoringSummary`` fields every outcome of a window shares."""

    out_dir: str
    champion_version: str
    scoring: list[dict]


# --- what to score --------------------------------------------------------------------------------


def new_files(path: Path, engine: Engine) -> list[Path]:
    """A batch file, or the batch files in a folder (an inbox) that the store has not scored yet."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    found = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in BATCH_SUFFIXES and not f.name.startswith("."))
    return [f for f in found if find_batch(engine, batch.file_sha256(f)) is None]


@dataclass
class Work:
    """What a monitoring run has to do: the new files, and the store they go to; or, when there is
    nothing to score, the summary that ends the run before the champion is loaded."""

    files: list[Path]
    engine: Engine | None
    done: MonitoringSummary | None


def find_work(p: Params, root: Path, path: str | None) -> Work:
    """The new files in ``path`` (a file or folder, relative to the project), or in the inbox."""
    layout = Layout.of(root, p)
    target = layout.inbox if path is None else Path(path) if Path(path).is_absolute() else layout.root / path
    engine = open_store(p.monitor, root)
    if path is None and not target.exists():  # no file dropped yet: news posted to the service may wait
        found, nothing_new = [], f"inbox {target} does not exist yet"
    else:
        found, nothing_new = new_files(target, engine), f"{target}: no new batch files to score"
    if not found and not history.pending_batch_ids(engine):
        return Work([], engine, MonitoringSummary(status="no_new_batches", message=f"{nothing_new}, and no stored news waits for a window"))
    return Work(found, engine, None)


def window_frame(engine: Engine, batch_ids: Sequence[str]) -> pd.DataFrame:
    """The stored predictions of these batches: the window that drift compares with the reference.
    Read in chunks of batch ids: an hour of posts to the service is many small batches."""
    chunk = IN_LIST_CHUNK
    frames = [read_predictions(engine, batch_ids=batch_ids[i : i + chunk]) for i in range(0, len(batch_ids), chunk)]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return read_predictions(engine, batch_id="")  # the empty frame, with its columns
    return pd.concat(frames, ignore_index=True).sort_values(["published_at", "id"], kind="stable", ignore_index=True)


def lookback_start(window: pd.DataFrame, p: MonitorParams) -> datetime | None:
    """The sentiment index of a window needs the days before it for the alert baselines."""
    if window.empty:
        return None
    first = pd.Timestamp(window["published_at"].min()).normalize()
    return (first - timedelta(days=p.alert_window_days)).to_pydatetime()


def decision_dict(decision: RetrainDecision, inputs: dict) -> dict:
    return {**asdict(decision), "inputs": inputs}


# --- drift ----------------------------------------------------------------------------------------


def check_drift(p: Params, root: Path, champion: Champion, current: pd.DataFrame, out_dir: Path) -> drift.DriftSummary:
    """Drift of ``current`` (text, predicted, label) against the champion's training rows."""
    cache = reference_dir(p, root, champion)
    reference = champion_reference(champion, cache)
    return drift.run(
        p.drift,
        reference,
        current[["text", "predicted", "label"]],
        out_dir,
        model=champion.scorer.model,
        tokenizer=champion.scorer.tokenizer,
        baseline_macro_f1=champion.baseline_macro_f1,
        reference_cache=cache / "outputs.npz",
        calibration=champion.scorer.calibration,
    )


# --- label-free estimates -------------------------------------------------------------------------


def labelled_reference(p: Params, root: Path, champion: Champion) -> est.Reference:
    """The champion's dev split with its calibrated probabilities and embeddings (cached per version)."""
    cache = reference_dir(p, root, champion)
    dev = champion_dev_reference(champion, cache)
    dev = dev[dev["label"] >= 0].reset_index(drop=True)
    embeddings, probs = cached_outputs(p, champion, dev["text"].astype(str).tolist(), cache / "dev_outputs.npz")
    return est.Reference(probs=probs, labels=dev["label"].to_numpy(), embeddings=embeddings)


def estimate_window(p: Params, root: Path, champion: Champion, current: pd.DataFrame) -> dict:
    """The label-free estimates of ``current`` (scored rows: ``text`` and the probability columns):
    ``estimate.Estimation.to_dict()`` plus the champion's test accuracy, the estimated drop from it, and
    the realised accuracy where the window has ``drift.min_labelled_rows`` labelled rows."""
    probs = current[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
    wanted = set(p.estimate.methods)
    reference: est.Reference | None = None
    no_reference = ""
    if wanted & est.REFERENCE_METHODS:
        try:
            reference = labelled_reference(p, root, champion)
        except RegistryError as exc:
            no_reference = str(exc)
    embeddings = None
    if reference is not None and wanted & est.EMBEDDING_METHODS and len(current) >= p.estimate.min_rows:
        sample = drift.sample_rows(current, p.estimate.max_rows, p.estimate.seed)
        embeddings = drift.embed(
            champion.scorer.model,
            champion.scorer.tokenizer,
            sample["text"].astype(str).tolist(),
            max_length=p.drift.embedding_max_length,
            batch_size=p.drift.embedding_batch_size,
        )
    estimation = est.estimate_performance(probs, p.estimate, reference=reference, current_embeddings=embeddings)
    out = estimation.to_dict()
    if no_reference:
        out["skipped"] = {m: (no_reference if m in est.REFERENCE_METHODS else why) for m, why in out["skipped"].items()}
    chosen = estimation.chosen_estimate
    baseline = champion.baseline_accuracy
    out["baseline_accuracy"] = baseline
    out["estimated_drop"] = None if chosen is None or baseline is None else round(baseline - chosen.estimated_accuracy, 6)
    labelled = current[current["label"] >= 0] if "label" in current.columns else current.iloc[0:0]
    out["realised"] = None
    if len(labelled) >= p.drift.min_labelled_rows:
        accuracy, macro_f1 = est.realised(labelled["label"].to_numpy(), labelled[list(PROBABILITY_COLUMNS)].to_numpy().argmax(axis=1))
        out["realised"] = {"accuracy": round(accuracy, 6), "macro_f1": round(macro_f1, 6), "labelled_rows": len(labelled)}
    return out


def window_performance(estimated: dict | None, verdict: dict | None, rows: int, baseline_accuracy: float | None) -> WindowPerformance:
    """What the retrain policy reads of the latest window: its chosen estimate and realised accuracy."""
    chosen = ((estimated or {}).get("methods") or {}).get((estimated or {}).get("chosen") or "")
    realised = ((verdict or {}).get("details") or {}).get("performance") or {}
    return WindowPerformance(
        rows=rows,
        baseline_accuracy=baseline_accuracy,
        estimate_method=(estimated or {}).get("chosen") if chosen else None,
        estimated_accuracy=chosen["estimated_accuracy"] if chosen else None,
        estimated_low=chosen["accuracy_low"] if chosen else None,
        estimated_high=chosen["accuracy_high"] if chosen else None,
        realised_accuracy=realised.get("accuracy"),
        labelled_rows=int(realised.get("labelled_rows") or 0),
    )


def drift_check_file(p: Params, root: Path, client, champion: Champion, file: Path, out_dir: Path) -> dict:
    """``finsent monitor drift``: one file scored (not stored) and checked; the verdict logged to MLflow."""
    files.ensure_dir(out_dir)  # a report that cannot be written fails before the work, not after
    news = batch.read_batch(file, p.monitor)
    current = batch.score_frame(champion.scorer, news.frame)
    try:
        summary = check_drift(p, root, champion, current, out_dir)
    except drift.DriftError as exc:
        raise DataError(f"{file}: {exc}") from exc
    estimated = estimate_window(p, root, champion, current)
    files.write_json(out_dir / "estimated_performance.json", estimated)
    tags, metrics = report.verdict_tags_and_metrics(summary.verdict, None)
    estimate_tags, estimate_metrics = report.estimate_tags_and_metrics(estimated)
    tags.update({"kind": "adhoc", "file": str(file), "model_name": champion.name, "champion.version": champion.version, **estimate_tags})
    metrics.update({"window_rows": float(len(current)), "rows_skipped": float(news.rows_skipped), **estimate_metrics})
    run_id = report.log_monitoring_run(client, p, root, run_name=f"drift-{out_dir.name}", tags=tags, metrics=metrics, artifact_dir=out_dir)
    return {
        "verdict": summary.verdict,
        "estimated_performance": estimated,
        "paths": summary.paths,
        "rows_skipped": news.skipped,
        "champion_version": champion.version,
        "mlflow_run_id": run_id,
    }


# --- one window -----------------------------------------------------------------------------------


def monitor_window(
    p: Params, root: Path, client, champion: Champion, engine: Engine, files_to_score: Sequence[Path], *, log=print, flow_run_id: str = ""
) -> MonitoringSummary:
    """Score the files, then drift, index, history, decision and the MLflow run of the window.

    The window is every stored batch still pending (``history.pending_batch_ids``): the files scored
    now, news posted to the service or scored by ``finsent score`` since the last window, and the
    batches of a window that failed after they were stored. Its batches are marked done only once the
    whole window is (last), so a failure anywhere before leaves them to the next run."""
    for file in files_to_score:  # a file that cannot be scored fails the window before any file is stored
        batch.read_batch(file, p.monitor)
    out_dir = Layout.of(root, p).new_monitoring_dir()
    scored = []
    for file in files_to_score:
        scored.append(batch.run(p.monitor, champion.scorer, file, engine, model_name=champion.name, model_version=champion.version))
        log(scored[-1].message)
    files.write_json(out_dir / "scoring.json", [asdict(s) for s in scored])
    batch_ids = history.pending_batch_ids(engine)
    earlier = len(set(batch_ids) - {s.batch_id for s in scored if s.status == "scored"})
    base: _WindowFields = {"out_dir": str(out_dir), "champion_version": champion.version, "scoring": [asdict(s) for s in scored]}
    if not batch_ids:
        return MonitoringSummary(status="already_scored", message="every file was already in the store", **base)
    if earlier:
        log(
            f"the window also takes {earlier} stored batch(es) that no window has monitored yet (posted to the service, scored alone, or left by a failed run)"
        )

    window = window_frame(engine, batch_ids)
    drifted, drift_skipped = None, None
    try:
        drifted = check_drift(p, root, champion, window, out_dir / "drift")
    except (drift.DriftError, RegistryError) as exc:  # too few rows, no reference: scoring and the index still stand
        drift_skipped = str(exc)
        log(f"drift not computed: {exc}")
    estimated, estimation_skipped = None, None
    try:
        estimated = estimate_window(p, root, champion, window)
        files.write_json(out_dir / "estimated_performance.json", estimated)
    except est.EstimationError as exc:  # probabilities that cannot be read: scoring, drift and the index still stand
        estimation_skipped = str(exc)
        log(f"performance not estimated: {exc}")
    index = sentiment_index.run(p.monitor, engine, out_dir / "index", start=lookback_start(window, p.monitor))
    for alert in index.alerts:
        log(
            f"ALERT {alert['ticker']} {alert['day']}: net sentiment {alert['net_sentiment']:+.2f} "
            f"({alert['change']:+.2f} vs baseline {alert['baseline']:+.2f}, {alert['count']} texts)"
        )
    window_end = utc.now()
    window_id = None
    if drifted is not None:
        window_id = history.record_window(
            engine,
            window_end=window_end,
            batch_ids=batch_ids,
            rows=len(window),
            verdict=drifted.verdict,
            model_name=champion.name,
            model_version=champion.version,
            verdict_path=drifted.paths.get("verdict_json"),
        )
    recorded = alerts.record_window_alerts(
        engine,
        p.alerts,
        index.alerts,
        pd.to_datetime(window["published_at"], utc=True).dt.date.unique(),  # the index also reads days before, for baselines
        drifted.verdict if drifted else None,
        window_end=window_end,
        model_name=champion.name,
        model_version=champion.version,
        window_id=window_id,
        rows=len(window),
    )
    alerts.deliver_logged(engine, p.alerts, log=log)  # a webhook that is down leaves its deliveries pending
    performance = window_performance(estimated, drifted.verdict if drifted else None, len(window), champion.baseline_accuracy)
    decision, inputs = history.decide(p, engine, client, window_end, performance=performance)
    decision_record = decision_dict(decision, inputs)
    files.write_json(out_dir / "decision.json", decision_record)
    log(f"retrain decision: {decision.should_retrain} {decision.reasons}; " + "; ".join(decision.explanation))

    tags, metrics = report.window_tags_and_metrics(
        drifted.verdict if drifted else None,
        drift_skipped,
        champion=champion,
        batch_ids=batch_ids,
        files=files_to_score,
        scored=scored,
        window_rows=len(window),
        alerts=len(index.alerts),
        decision=decision,
        flow_run_id=flow_run_id,
        estimated=estimated,
    )
    run_id = report.log_monitoring_run(client, p, root, run_name=f"window-{out_dir.name}", tags=tags, metrics=metrics, artifact_dir=out_dir)
    if window_id is not None:
        history.set_window_run(engine, window_id, run_id)
    summary = MonitoringSummary(
        status="monitored",
        message=f"scored {sum(s.rows_scored for s in scored)} rows from {len(files_to_score)} file(s); "
        + (f"window: {len(window)} rows from {len(batch_ids)} stored batch(es); " if earlier else "")
        + f"drift: {drifted.verdict['signals_fired'] if drifted else 'not computed'}; "
        f"estimated accuracy: {_estimate_text(estimated)}; retrain: {decision.should_retrain}",
        window_rows=len(window),
        drift=drifted.verdict if drifted else None,
        drift_skipped=drift_skipped,
        drift_paths=drifted.paths if drifted else {},
        sentiment=asdict(index),
        decision=decision_record,
        mlflow_run_id=run_id,
        alerts_recorded=[r["key"] for r in recorded],
        estimated_performance=estimated,
        estimation_skipped=estimation_skipped,
        **base,
    )
    files.write_json(out_dir / "summary.json", summary.to_dict())
    history.close_batches(engine, batch_ids, str(out_dir))  # last: the window is whole
    from finsent.monitoring import workspace  # Evidently's workspace SDK loads only once a window is done

    workspace.record_window(p, root, out_dir, log=log)  # model health in `finsent ui`; a failure is only logged
    return summary


def _estimate_text(estimated: dict | None) -> str:
    chosen = ((estimated or {}).get("methods") or {}).get((estimated or {}).get("chosen") or "")
    if not chosen:
        return "not computed"
    return f"{chosen['estimated_accuracy']:.3f} [{chosen['accuracy_low']:.3f}, {chosen['accuracy_high']:.3f}] ({estimated['chosen']})"  # type: ignore[index]


def record_retrain(client, summary: MonitoringSummary, retrained: dict | None, *, failed: bool = False) -> MonitoringSummary:
    """The window's MLflow run and summary, completed with what the retrain flow did."""
    if summary.mlflow_run_id is None:
        return summary
    if failed or retrained is None:
        client.set_tag(summary.mlflow_run_id, "retrain.status", "failed")
        return summary
    registration = retrained["registration"]
    client.set_tag(summary.mlflow_run_id, "retrain.status", "registered")
    client.set_tag(summary.mlflow_run_id, "retrain.version", registration["version"])
    client.set_tag(summary.mlflow_run_id, "retrain.promoted", str(registration["promoted"]).lower())
    done = MonitoringSummary(**{**summary.to_dict(), "retrain": retrained})
    if done.out_dir:
        files.write_json(Path(done.out_dir) / "summary.json", done.to_dict())
    return done

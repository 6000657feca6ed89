"""The monitoring history in the predictions store: monitored windows, label hand-overs, retrainings.

The tables are defined with the rest of the schema in ``finsent.monitoring.store``; this module
reads and writes them, and builds the retrain policy's inputs from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import CursorResult, Engine, func, insert, select, update

from finsent import utc
from finsent.config import Params
from finsent.monitoring.retrain_policy import RetrainDecision, WindowPerformance, WindowVerdict, decide_retrain
from finsent.monitoring.store import (
    IN_LIST_CHUNK,
    batches,
    drift_windows,
    insert_ignoring_duplicates,
    label_exports,
    predictions,
    retrains,
    window_batches,
)

MAX_MESSAGE_CHARS = 5000


def _inserted_id(result: CursorResult) -> int:
    key = result.inserted_primary_key
    assert key is not None  # typed Optional, but a single-row insert always reports its key
    return int(key[0])


# --- which stored batches a window takes ----------------------------------------------------------

RETRIED_WINDOWS_LOOKBACK = 50  # recent window records searched for one left by a failed run


def pending_batch_ids(engine: Engine) -> list[str]:
    """The stored batches that no completed monitoring window has taken yet, oldest first."""
    query = (
        select(batches.c.batch_id)
        .outerjoin(window_batches, window_batches.c.batch_id == batches.c.batch_id)
        .where(window_batches.c.batch_id.is_(None))
        .order_by(batches.c.scored_at, batches.c.batch_id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def close_batches(engine: Engine, batch_ids: Sequence[str], out_dir: str) -> None:
    """Mark these batches monitored: their window completed. Two runs that took the same batch (they
    overlapped) both complete; the first mark stays."""
    closed_at = utc.naive(utc.now())
    statement = insert_ignoring_duplicates(engine, window_batches)
    with engine.begin() as conn:
        for start in range(0, len(batch_ids), IN_LIST_CHUNK):
            chunk = batch_ids[start : start + IN_LIST_CHUNK]
            conn.execute(statement, [{"batch_id": b, "closed_at": closed_at, "out_dir": out_dir} for b in chunk])


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
    """Record a window's drift verdict; returns its id. A run that recorded a verdict and then failed
    left its batches pending: the window that takes them again replaces that record, in place and under
    its id, so the retrain policy counts the window once and its drift alert (keyed by the id) is not
    raised twice."""
    values = dict(
        window_end=utc.naive(window_end),
        batch_ids=",".join(batch_ids),
        rows=int(rows),
        drift=bool(verdict["drift"]),
        signals_fired=",".join(verdict["signals_fired"]),
        model_name=model_name,
        model_version=str(model_version),
        verdict_path=verdict_path,
        mlflow_run_id=None,
    )
    taken = set(batch_ids)
    with engine.begin() as conn:
        recent = conn.execute(
            select(drift_windows.c.id, drift_windows.c.batch_ids).order_by(drift_windows.c.id.desc()).limit(RETRIED_WINDOWS_LOOKBACK)
        )
        for window_id, recorded in recent:
            ids = {b for b in recorded.split(",") if b}
            if ids and ids <= taken:  # every batch it took is still pending: its run never completed
                conn.execute(update(drift_windows).where(drift_windows.c.id == window_id).values(**values))
                return int(window_id)
        return _inserted_id(conn.execute(insert(drift_windows).values(**values)))


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
            window_end=utc.aware(r["window_end"]),
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
    now = utc.naive(utc.now())
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
            insert(retrains).values(started_at=utc.naive(started_at or utc.now()), reasons=",".join(reasons), status="started")
        )
        return _inserted_id(result)


def finish_retrain(
    engine: Engine, retrain_id: int, status: str, *, model_version: str | None = None, promoted: bool | None = None, message: str = ""
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(retrains)
            .where(retrains.c.id == retrain_id)
            .values(
                finished_at=utc.naive(utc.now()),
                status=status,
                model_version=model_version,
                promoted=promoted,
                message=message[:MAX_MESSAGE_CHARS],
            )
        )


def read_retrains(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(retrains).order_by(retrains.c.id)).mappings().all()
    return [dict(r) for r in rows]


def last_retrain_at(engine: Engine, client, p: Params) -> datetime | None:
    """The later of the last training run in MLflow (any trigger: CLI, schedule, policy) and the last
    retraining the monitor started (which counts even when it failed before reaching MLflow)."""
    times: list[datetime] = []
    experiment = client.get_experiment_by_name(p.register.experiment)
    if experiment is not None:
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
        if runs:
            times.append(datetime.fromtimestamp(runs[0].info.start_time / 1000, tz=UTC))
    with engine.connect() as conn:
        started = conn.execute(select(func.max(retrains.c.started_at))).scalar_one()
    if started is not None:
        times.append(utc.aware(started))
    return max(times) if times else None


def decide(
    p: Params,
    engine: Engine,
    client,
    now: datetime | None = None,
    *,
    scheduled: bool = False,
    performance: WindowPerformance | None = None,
) -> tuple[RetrainDecision, dict]:
    """The retrain policy on the stored window history and the latest window's ``performance``
    (estimated and realised accuracy; the window just monitored); returns the decision and its inputs."""
    now = now or utc.now()
    history = read_windows(engine)
    last = last_retrain_at(engine, client, p)
    new_labelled = len(pending_labels(engine))
    decision = decide_retrain(history, now, last, new_labelled, p.retrain, scheduled=scheduled, performance=performance)
    inputs = {
        "now": now.isoformat(),
        "windows": len(history),
        "last_retrain_at": last.isoformat() if last else None,
        "new_labelled_rows": new_labelled,
        "performance": asdict(performance) if performance is not None else None,
    }
    return decision, inputs

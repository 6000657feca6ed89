"""The predictions store: every scored text with its probabilities and the model version that scored it.

SQLAlchemy Core on any database URL: SQLite by default (``sqlite:///artifacts/predictions.db``), Postgres
at scale. The whole schema is here:
- ``batches`` (one row per scored file, unique by the file's SHA-256) and ``predictions`` (one row per
  text). A batch is written in one transaction, so a crash or a bad row leaves the store as it was.
- the monitoring history (read and written by ``finsent.monitoring.history``), beside the predictions
  in the same database so that one transaction keeps each record whole: ``drift_windows`` (one row per
  monitored window, with the signals that fired: what the retrain policy confirms drift over),
  ``label_exports`` (which scored batches had their labels handed to training, so that a label is
  counted and versioned once) and ``retrains`` (each retraining started, for the cool-down and audit).
Times are stored as naive UTC and read back as timezone-aware UTC (``finsent.utc``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from finsent import utc
from finsent.config import MonitorParams
from finsent.errors import FinsentError
from finsent.paths import resolve_url, shown_url, sqlite_path
from finsent.vocabulary import LABELS, PROBABILITY_COLUMNS

metadata = MetaData()

batches = Table(
    "batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("file", String(1024), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),  # re-scoring the same file is refused
    Column("rows_in", Integer, nullable=False),
    Column("rows_scored", Integer, nullable=False),
    Column("rows_skipped", Integer, nullable=False),
    Column("model_name", String(256), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("scored_at", DateTime, nullable=False),
)

_LABEL_IDS = ", ".join(str(i) for i in range(len(LABELS)))

predictions = Table(
    "predictions",
    metadata,
    # BIGINT on Postgres; SQLite only auto-increments an INTEGER primary key.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("batch_id", String(64), ForeignKey("batches.batch_id"), nullable=False, index=True),
    Column("scored_at", DateTime, nullable=False),
    Column("published_at", DateTime, nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("tickers", String(512), nullable=False),  # comma-separated, e.g. "AAPL,MSFT"; "" when none
    Column("source", String(256), nullable=True),
    Column("label", SmallInteger, nullable=True),  # the true label when the batch carries one
    Column("predicted", SmallInteger, nullable=False),
    *(Column(name, Float, nullable=False) for name in PROBABILITY_COLUMNS),
    Column("model_name", String(256), nullable=False),
    Column("model_version", String(64), nullable=False),
    CheckConstraint(f"predicted IN ({_LABEL_IDS})", name="ck_predicted_known"),
    CheckConstraint(f"label IS NULL OR label IN ({_LABEL_IDS})", name="ck_label_known"),
    *(CheckConstraint(f"{name} >= 0 AND {name} <= 1", name=f"ck_{name}_range") for name in PROBABILITY_COLUMNS),
)

ROW_COLUMNS: tuple[str, ...] = ("published_at", "text", "tickers", "source", "label", "predicted", *PROBABILITY_COLUMNS)


class StoreError(FinsentError, RuntimeError):
    """The predictions store cannot take this batch."""


class DuplicateBatchError(StoreError):
    """This file (same SHA-256) has already been scored into the store."""


drift_windows = Table(
    "drift_windows",
    metadata,
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
    metadata,
    Column("batch_id", String(64), primary_key=True),  # a store batch whose labels were handled
    Column("exported_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),  # added | rejected
    Column("data_batch", String(256), nullable=True),  # name under data/batches when added
    Column("rows", Integer, nullable=False),
)

retrains = Table(
    "retrains",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime, nullable=False, index=True),
    Column("finished_at", DateTime, nullable=True),
    Column("reasons", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # started | registered | failed
    Column("model_version", String(64), nullable=True),
    Column("promoted", Boolean, nullable=True),
    Column("message", Text, nullable=True),
)


@dataclass(frozen=True)
class BatchMeta:
    batch_id: str
    file: str
    sha256: str
    rows_in: int
    rows_skipped: int
    model_name: str
    model_version: str
    scored_at: datetime


SQLITE_BUSY_TIMEOUT_S = 30  # a second writer waits this long for SQLite's lock, then fails clearly


class StoreUnusable(StoreError):
    """The store's URL, file or server cannot be used at all (malformed, not a database, unreachable,
    read-only, locked past the timeout)."""


def unusable(url: str, exc: Exception) -> StoreUnusable:
    """One line saying why the store cannot be used, without its password or a traceback."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnusable(f"predictions store {shown_url(url)} cannot be used: {reason}")


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the tables created; a SQLite file's folder is created too. A store
    that cannot be used is a ``StoreUnusable`` here, before any work is done."""
    try:
        parsed = make_url(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        db_file = sqlite_path(url)
        if sqlite and db_file is not None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S} if sqlite else {})
        metadata.create_all(engine)
    except ImportError as exc:  # the URL's database driver (psycopg2 comes with the `scale` extra)
        raise StoreUnusable(f"predictions store {shown_url(url)} cannot be used: no driver for it is installed ({exc})") from exc
    except (SQLAlchemyError, OSError, ValueError) as exc:
        raise unusable(url, exc) from exc
    return engine


def _records(rows: pd.DataFrame, meta: BatchMeta) -> list[dict]:
    """Plain Python values, one dict per row (sqlite3 cannot bind numpy integers)."""
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise StoreError(f"rows to store lack column(s) {missing}; found {list(rows.columns)}")
    published = pd.to_datetime(rows["published_at"], utc=True).dt.tz_localize(None)
    labels = pd.to_numeric(rows["label"], errors="coerce")
    columns = {
        "published_at": [ts.to_pydatetime() for ts in published],
        "text": [str(t) for t in rows["text"]],
        "tickers": ["" if pd.isna(t) else str(t) for t in rows["tickers"]],
        "source": [None if pd.isna(s) else str(s) for s in rows["source"]],
        "label": [None if pd.isna(v) or v < 0 else int(v) for v in labels],
        "predicted": [int(v) for v in rows["predicted"]],
        **{name: [float(v) for v in rows[name]] for name in PROBABILITY_COLUMNS},
    }
    shared = {
        "batch_id": meta.batch_id,
        "scored_at": utc.naive(meta.scored_at),
        "model_name": meta.model_name,
        "model_version": meta.model_version,
    }
    return [dict(zip(columns, values), **shared) for values in zip(*columns.values())]


def find_batch(engine: Engine, sha256: str) -> dict | None:
    """The stored batch scored from a file with this SHA-256, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(batches).where(batches.c.sha256 == sha256)).mappings().first()
    return dict(row) if row is not None else None


def append_batch(engine: Engine, rows: pd.DataFrame, meta: BatchMeta, *, chunk_rows: int = 1000) -> int:
    """Insert the batch row and all its predictions in one transaction; returns the rows inserted.

    Either everything is written or nothing is: any error (a constraint, the connection, a crash)
    rolls the whole batch back. A file already in the store raises ``DuplicateBatchError``.
    """
    if rows.empty:
        raise StoreError(f"batch {meta.file}: no rows to store")
    records = _records(rows, meta)
    batch_row = asdict(meta) | {"rows_scored": len(records), "scored_at": utc.naive(meta.scored_at)}
    try:
        with engine.begin() as conn:
            existing = conn.execute(select(batches.c.batch_id, batches.c.file).where(batches.c.sha256 == meta.sha256)).first()
            if existing is not None:
                raise DuplicateBatchError(
                    f"{meta.file}: this file (sha256 {meta.sha256[:12]}...) was already scored as batch {existing.batch_id} "
                    f"from {existing.file}; nothing written"
                )
            conn.execute(batches.insert(), batch_row)
            for start in range(0, len(records), chunk_rows):
                conn.execute(predictions.insert(), records[start : start + chunk_rows])
    except IntegrityError as exc:
        if find_batch(engine, meta.sha256) is not None:  # lost a race with a concurrent writer
            raise DuplicateBatchError(f"{meta.file}: already scored by a concurrent run; nothing written") from exc
        raise StoreError(f"batch {meta.file} rejected by the store, nothing written: {exc.orig}") from exc
    except SQLAlchemyError as exc:  # read-only, locked past the timeout, disk full: the transaction rolled back
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc
    return len(records)


def _utc_frame(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    for column in columns:
        if column in df.columns:
            df[column] = pd.to_datetime(df[column]).dt.tz_localize("UTC")
    return df


def read_predictions(
    engine: Engine,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    batch_id: str | None = None,
    model_version: str | None = None,
) -> pd.DataFrame:
    """Predictions published in ``[start, end)`` (UTC; naive times are taken as UTC), oldest first.

    ``label`` is -1 where the batch carried no label, as in ``finsent.data``.
    """
    query = select(predictions).order_by(predictions.c.published_at, predictions.c.id)
    if start is not None:
        query = query.where(predictions.c.published_at >= utc.naive(utc.parse(start, "start") if isinstance(start, str) else start))
    if end is not None:
        query = query.where(predictions.c.published_at < utc.naive(utc.parse(end, "end") if isinstance(end, str) else end))
    if batch_id is not None:
        query = query.where(predictions.c.batch_id == batch_id)
    if model_version is not None:
        query = query.where(predictions.c.model_version == model_version)
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in predictions.columns])
    df["label"] = df["label"].fillna(-1).astype("int64")
    df["predicted"] = df["predicted"].astype("int64")
    for name in PROBABILITY_COLUMNS:
        df[name] = df[name].astype("float64")
    return _utc_frame(df, ("published_at", "scored_at"))


def read_batches(engine: Engine) -> pd.DataFrame:
    """All scored batches, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(batches).order_by(batches.c.scored_at)).mappings().all()
    return _utc_frame(pd.DataFrame(rows, columns=[c.name for c in batches.columns]), ("scored_at",))


def count_labelled_since(engine: Engine, since: datetime | None) -> int:
    """Labelled predictions scored after ``since`` (all of them when None): new labels for retraining."""
    query = select(func.count()).select_from(predictions).where(predictions.c.label.is_not(None))
    if since is not None:
        query = query.where(predictions.c.scored_at > utc.naive(since))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def open_store(p: MonitorParams, root: str | Path) -> Engine:
    """The predictions store of ``monitor.store_url`` (a relative SQLite path is taken from the project
    root), with every table created."""
    return make_engine(resolve_url(p.store_url, root))

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
- ``window_batches``: each batch whose monitoring window completed (drift, estimates, alerts, the
  retrain decision and the window's MLflow run all done). A stored batch without a row here is still
  pending: scored from the inbox by a window that then failed, scored by ``finsent score``, or posted
  to the service. The next monitoring run takes every pending batch into its window, so no stored news
  escapes drift, estimates and alerts. A store made before this table existed has its batches marked
  done when the table is added (``out_dir`` NULL), so its first window is not all of its history.
- ``label_tasks``: each text handed to people to label (``finsent label export``), keyed by its text key
  (``finsent.labelling.keys``: a hash of the text as ``data`` compares texts), with when, by which
  strategy and score: a text is offered for labelling once.
- ``news_items``: the key of every item posted to the service's ``/v1/news`` (the client's id, or a
  hash of the content), unique, so that a retried or concurrent post of the same item is stored once.
- ``alerts`` (one row per alert, unique by ``key``: one per ticker and day, per drift window, per
  refused promotion) and ``alert_deliveries`` (one row per alert and webhook, pending until a post
  succeeds): written with the alert in one transaction, so an alert whose webhook is down is not lost.
- ``prediction_tickers``: one row per (prediction, ticker) with its publication time, predicted class
  and net value (``p_bullish - p_bearish``), indexed by (ticker, published_at): the comma-separated
  ``tickers`` column cannot be indexed, and the dashboard reads one ticker's days from this index
  alone. Written in the same transaction as its predictions (``append_batch``, ``append_news``), and
  filled from ``predictions`` when a store made before it is opened (``backfill_prediction_tickers``).
Times are stored as naive UTC and read back as timezone-aware UTC (``finsent.utc``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    false,
    func,
    inspect,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from finsent import utc
from finsent.config import MonitorParams, TrainParams
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

prediction_tickers = Table(
    "prediction_tickers",
    metadata,
    Column("prediction_id", BigInteger().with_variant(Integer, "sqlite"), ForeignKey("predictions.id"), primary_key=True),
    Column("ticker", String(64), primary_key=True),
    Column("published_at", DateTime, nullable=False),  # copied from the prediction: the index orders by it
    Column("predicted", SmallInteger, nullable=False),
    Column("net", Float, nullable=False),  # p_bullish - p_bearish
    # Covering: a ticker's daily index over a date range is read from this index without the table.
    Index("ix_prediction_tickers_ticker_time", "ticker", "published_at", "net", "predicted"),
    # The tickers of a date range with their volumes (the dashboard's ticker list).
    Index("ix_prediction_tickers_time_ticker", "published_at", "ticker"),
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

window_batches = Table(
    "window_batches",
    metadata,
    Column("batch_id", String(64), ForeignKey("batches.batch_id"), primary_key=True),
    Column("closed_at", DateTime, nullable=False),  # naive UTC: when its window completed
    Column("out_dir", String(1024), nullable=True),  # that window's folder; NULL: done before windows were recorded
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

label_tasks = Table(
    "label_tasks",
    metadata,
    Column("text_key", String(80), primary_key=True),  # "sha256:<hex>" of the normalised text
    Column("prediction_id", BigInteger().with_variant(Integer, "sqlite"), nullable=True),  # the stored row exported
    Column("exported_at", DateTime, nullable=False, index=True),  # naive UTC
    Column("strategy", String(16), nullable=False),  # config.LABEL_STRATEGIES
    Column("score", Float, nullable=False),  # the strategy's score when it was chosen
    Column("model_name", String(256), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("out_dir", String(1024), nullable=False),  # where its task files were written
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


news_items = Table(
    "news_items",
    metadata,
    Column("news_key", String(128), primary_key=True),  # "id:<client id>" or "sha256:<hash of the content>"
    Column("batch_id", String(64), ForeignKey("batches.batch_id"), nullable=False, index=True),
    Column("received_at", DateTime, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(256), nullable=False, unique=True),  # e.g. sentiment:AAPL:2026-11-30: never two of one
    Column("kind", String(32), nullable=False),  # sentiment | drift | promotion (config.ALERT_EVENTS)
    Column("created_at", DateTime, nullable=False, index=True),
    Column("message", Text, nullable=False),  # one line for people
    Column("payload", Text, nullable=False),  # JSON: the alert's fields
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, ForeignKey("alerts.id"), nullable=False, index=True),
    Column("webhook", String(256), nullable=False),  # config.WebhookParams.label
    Column("status", String(16), nullable=False),  # pending | delivered
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False, index=True),  # naive UTC; also a claim's lease
    Column("last_error", Text, nullable=True),
    Column("delivered_at", DateTime, nullable=True),
    UniqueConstraint("alert_id", "webhook", name="uq_delivery_alert_webhook"),
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


IN_LIST_CHUNK = 500  # keys per IN list or multi-row insert: bounded statements on SQLite and PostgreSQL
SCHEMA_LOCK_KEY = 0x66696E73656E74  # "finsent": the advisory lock held while PostgreSQL tables are created
SQLITE_BUSY_TIMEOUT_S = 30  # a second writer waits this long for SQLite's lock, then fails clearly


class StoreUnusable(StoreError):
    """The store's URL, file or server cannot be used at all (malformed, not a database, unreachable,
    read-only, locked past the timeout)."""


def unusable(url: str, exc: Exception) -> StoreUnusable:
    """One line saying why the store cannot be used, without its password or a traceback."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnusable(f"predictions store {shown_url(url)} cannot be used: {reason}")


def create_tables(engine: Engine) -> None:
    """Create the missing tables. Processes opening a new store together (replicas starting, a
    service's first posts) would race to create the same tables: on PostgreSQL one creates them under
    an advisory lock while the others wait; on SQLite a loser of the race checks again."""
    # SQLite creates the tables one by one, outside a transaction: a loser may meet each table once.
    attempts = len(metadata.tables) + 1
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
                existing = set(inspect(conn).get_table_names())
                metadata.create_all(conn)
                if batches.name in existing and window_batches.name not in existing:
                    _close_batches_of_an_older_store(conn)
            return
        except OperationalError as exc:
            if attempt == attempts - 1 or "already exists" not in str(exc.orig):
                raise


def _close_batches_of_an_older_store(conn: Connection) -> None:
    """``window_batches`` added to a store written before it: its batches count as monitored already."""
    closed_at = utc.naive(utc.now())
    conn.execute(
        window_batches.insert().from_select(["batch_id", "closed_at"], select(batches.c.batch_id, literal(closed_at, type_=DateTime)))
    )


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
        create_tables(engine)
        backfill_prediction_tickers(engine)
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


def split_tickers(tickers: str | None) -> list[str]:
    """The distinct tickers of a ``tickers`` value ("AAPL, MSFT" -> AAPL, MSFT), as
    ``sentiment_index.explode_tickers`` reads them."""
    out: list[str] = []
    for ticker in (tickers or "").split(","):
        ticker = ticker.strip()
        if ticker and ticker not in out:
            out.append(ticker)
    return out


def ticker_rows(records: Sequence[Mapping[Any, Any]], ids: Sequence[int]) -> list[dict]:
    """The ``prediction_tickers`` rows of stored predictions (``records[i]`` got id ``ids[i]``)."""
    return [
        {
            "prediction_id": int(pid),
            "ticker": ticker,
            "published_at": record["published_at"],
            "predicted": int(record["predicted"]),
            "net": float(record["p_bullish"]) - float(record["p_bearish"]),
        }
        for pid, record in zip(ids, records)
        for ticker in split_tickers(record["tickers"])
    ]


def _insert_predictions(conn: Connection, records: Sequence[dict], chunk_rows: int = 1000) -> None:
    """Insert predictions and their ``prediction_tickers`` rows, on the caller's transaction."""
    insert = predictions.insert().returning(predictions.c.id, sort_by_parameter_order=True)
    for start in range(0, len(records), chunk_rows):
        chunk = records[start : start + chunk_rows]
        ids = conn.execute(insert, list(chunk)).scalars().all()
        rows = ticker_rows(chunk, ids)
        if rows:
            conn.execute(prediction_tickers.insert(), rows)


def backfill_prediction_tickers(engine: Engine, chunk_rows: int = 20_000) -> int:
    """Fill ``prediction_tickers`` for a store written before the table existed; returns the rows added.

    It runs on every open but only acts when the table is empty and some prediction names a ticker. It
    is one transaction on purpose: a backfill cut short (a crash, a kill) must leave the table empty, not
    half full, or the emptiness check would never fill it again and the dashboard would miss rows for
    good. Two processes opening the same old store at once: the rows are inserted ignoring duplicates,
    so the second adds nothing (on PostgreSQL the schema lock also makes it wait, then see the rows).
    """
    with engine.connect() as conn:
        if conn.execute(select(prediction_tickers.c.ticker).limit(1)).first() is not None:
            return 0
        if conn.execute(select(predictions.c.id).where(predictions.c.tickers != "").limit(1)).first() is None:
            return 0
    added = 0
    columns = (
        predictions.c.id,
        predictions.c.tickers,
        predictions.c.published_at,
        predictions.c.predicted,
        predictions.c.p_bullish,
        predictions.c.p_bearish,
    )
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        if conn.execute(select(prediction_tickers.c.ticker).limit(1)).first() is not None:
            return 0  # another process filled it while this one waited
        insert = insert_ignoring_duplicates(engine, prediction_tickers, "prediction_id", "ticker")
        last = None
        while True:  # keyset pages by id: bounded memory on a large store
            query = select(*columns).where(predictions.c.tickers != "").order_by(predictions.c.id).limit(chunk_rows)
            if last is not None:
                query = query.where(predictions.c.id > last)
            page = conn.execute(query).mappings().all()
            if not page:
                break
            last = page[-1]["id"]
            rows = ticker_rows(page, [r["id"] for r in page])
            if rows:
                conn.execute(insert, rows)
                added += len(rows)
    return added


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
            _insert_predictions(conn, records, chunk_rows)
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
    batch_ids: Sequence[str] | None = None,
    model_version: str | None = None,
    tickers: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Predictions published in ``[start, end)`` (UTC; naive times are taken as UTC), oldest first.

    ``label`` is -1 where the batch carried no label, as in ``finsent.data``. ``tickers`` keeps the rows
    whose ``tickers`` column contains one of them: a superset ("AAPL" also matches "AAPLX"), cheap on
    the database; the caller filters exactly (``sentiment_index.explode_tickers``).
    """
    query = select(predictions).order_by(predictions.c.published_at, predictions.c.id)
    if start is not None:
        query = query.where(predictions.c.published_at >= utc.naive(utc.parse(start, "start") if isinstance(start, str) else start))
    if end is not None:
        query = query.where(predictions.c.published_at < utc.naive(utc.parse(end, "end") if isinstance(end, str) else end))
    if batch_id is not None:
        query = query.where(predictions.c.batch_id == batch_id)
    if batch_ids is not None:  # the caller bounds the list (IN_LIST_CHUNK)
        query = query.where(predictions.c.batch_id.in_(list(batch_ids)))
    if model_version is not None:
        query = query.where(predictions.c.model_version == model_version)
    if tickers is not None:
        query = query.where(or_(false(), *(predictions.c.tickers.contains(t, autoescape=True) for t in tickers)))
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in predictions.columns])
    df["label"] = pd.to_numeric(df["label"], errors="coerce").fillna(-1).astype("int64")
    df["predicted"] = df["predicted"].astype("int64")
    for name in PROBABILITY_COLUMNS:
        df[name] = df[name].astype("float64")
    return _utc_frame(df, ("published_at", "scored_at"))


def recent_news_texts(engine: Engine, limit: int) -> list[str]:
    """The texts of the ``limit`` most recently published predictions, oldest first: the unlabelled news
    that task-adaptive pre-training and self-training read (training drops copies of its own rows and
    of the dev and test rows). One column and a bound, so a store of millions of rows is not loaded."""
    query = select(predictions.c.text).order_by(predictions.c.published_at.desc(), predictions.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        texts = [row[0] for row in conn.execute(query)]
    return texts[::-1]


def news_for_training(train: TrainParams, monitor: MonitorParams, root: str | Path) -> list[str] | None:
    """The store's recent news for TAPT and self-training (``train.unlabelled_max_texts`` of them), or
    None when neither is on: the store is then not opened at all."""
    if not train.reads_unlabelled_texts:
        return None
    return recent_news_texts(open_store(monitor, root), train.unlabelled_max_texts)


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


def insert_ignoring_duplicates(engine: Engine, table: Table, *keys: str):
    """An INSERT that skips rows whose key (the primary key, or the unique ``keys``) already exists:
    ON CONFLICT DO NOTHING on SQLite and PostgreSQL, the stores finsent runs on."""
    from sqlalchemy.dialects import postgresql, sqlite

    index = list(keys) or None
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=index)
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=index)
    raise StoreError(f"the predictions store on {engine.dialect.name} cannot take this write (SQLite or PostgreSQL)")


def known_news_keys(engine: Engine, keys: list[str]) -> set[str]:
    """The keys among ``keys`` already in the store: items a retried post need not score again."""
    found: set[str] = set()
    try:
        with engine.connect() as conn:
            for start in range(0, len(keys), IN_LIST_CHUNK):
                chunk = keys[start : start + IN_LIST_CHUNK]
                found.update(conn.execute(select(news_items.c.news_key).where(news_items.c.news_key.in_(chunk))).scalars())
    except SQLAlchemyError as exc:
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc
    return found


def append_news(engine: Engine, rows: pd.DataFrame, keys: list[str], meta: BatchMeta) -> list[str]:
    """Store scored news items posted to the service; returns the keys stored now.

    ``keys[i]`` names row i (the client's id or a content hash). An item whose key is already in the
    store, from an earlier post, a retry or another replica at the same moment, is skipped: the key
    table's primary key decides, inside the same transaction as the rows, so each item is stored once.
    Nothing is written when no item is new.
    """
    if len(keys) != len(rows) or len(set(keys)) != len(keys):
        raise StoreError("append_news needs one distinct key per row")
    if rows.empty:
        return []
    records = _records(rows, meta)
    received = utc.naive(meta.scored_at)
    batch_row = asdict(meta) | {"rows_scored": 0, "scored_at": received}
    try:
        with engine.begin() as conn:
            conn.execute(batches.insert(), batch_row)
            claimed = conn.execute(
                insert_ignoring_duplicates(engine, news_items).returning(news_items.c.news_key),
                [{"news_key": k, "batch_id": meta.batch_id, "received_at": received} for k in keys],
            )
            new = {row.news_key for row in claimed}
            fresh = [record for key, record in zip(keys, records) if key in new]
            if fresh:
                _insert_predictions(conn, fresh)
                conn.execute(batches.update().where(batches.c.batch_id == meta.batch_id).values(rows_scored=len(fresh)))
            else:  # a retry of items all stored before: leave no empty batch behind
                conn.execute(batches.delete().where(batches.c.batch_id == meta.batch_id))
    except IntegrityError as exc:
        raise StoreError(f"news items rejected by the store, nothing written: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc
    return [k for k in keys if k in new]

"""What the dashboard reads from the predictions store: SQL statements built by pure functions, run
apart by ``read_*`` functions that return plain rows.

Everything a page needs for one ticker and a date range is read through the
``prediction_tickers`` index (ticker, published_at), never by scanning the comma-separated
``predictions.tickers`` column; alerts are read by their unique key (``sentiment:AAPL:2026-11-30``
sorts by day within a ticker). Days are UTC calendar days; a range ``[start, end]`` holds both days.
The same SQL runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Select, and_, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from finsent.errors import FinsentError
from finsent.monitoring.alerts import parse_sentiment_key, sentiment_key
from finsent.monitoring.sentiment_index import INDEX_COLUMNS
from finsent.monitoring.store import alerts, prediction_tickers, predictions, unusable
from finsent.vocabulary import LABELS

_BEARISH, _BULLISH, _NEUTRAL = (LABELS.index(name) for name in ("bearish", "bullish", "neutral"))
MAX_TICKERS = 20  # tickers one page compares at most
MAX_RANGE_DAYS = 3660  # ten years: a bound on what one request reads
HEADLINES = 25  # headlines shown behind an alert or a day
pt = prediction_tickers


class DashboardQueryError(FinsentError, ValueError):
    """A dashboard request that cannot be answered (no ticker, too many, a date range backwards)."""


# --- checking a request (pure) ---------------------------------------------------------------------


def as_date(value: date | datetime | str, name: str) -> date:
    """A calendar day from a date, a datetime or an ISO string (``2026-11-30`` or a full time)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise DashboardQueryError(f"{name} must be an ISO date like 2026-11-30, not {value!r}") from exc


def day_range(start: date | datetime | str, end: date | datetime | str) -> tuple[datetime, datetime]:
    """The naive-UTC bounds ``[start 00:00, end + 1 day 00:00)`` of the days ``start`` to ``end``."""
    first, last = as_date(start, "start"), as_date(end, "end")
    if last < first:
        raise DashboardQueryError(f"the date range ends ({last}) before it starts ({first})")
    if (last - first).days > MAX_RANGE_DAYS:
        raise DashboardQueryError(f"the date range spans {(last - first).days} days; at most {MAX_RANGE_DAYS}")
    return datetime.combine(first, datetime.min.time()), datetime.combine(last + timedelta(days=1), datetime.min.time())


def clean_tickers(tickers: Sequence[str] | str | None) -> list[str]:
    """Distinct, stripped tickers in the given order; at most ``MAX_TICKERS``."""
    if tickers is None:
        return []
    if isinstance(tickers, str):
        tickers = tickers.split(",")
    out: list[str] = []
    for t in tickers:
        t = str(t).strip()
        if t and t not in out:
            out.append(t)
    if len(out) > MAX_TICKERS:
        raise DashboardQueryError(f"{len(out)} tickers asked for; a page compares at most {MAX_TICKERS}")
    return out


# --- statements (pure) -----------------------------------------------------------------------------


def _day():
    # date() of a timestamp: 'YYYY-MM-DD' text on SQLite, a DATE on PostgreSQL (read back with str()).
    return func.date(pt.c.published_at)


def index_query(tickers: Sequence[str], start: date | str, end: date | str) -> Select:
    """Per (ticker, day): texts, the predicted classes and the net index (mean of p_bullish - p_bearish),
    read from the covering index (ticker, published_at, net, predicted) alone."""
    low, high = day_range(start, end)
    day = _day().label("day")
    return (
        select(
            pt.c.ticker,
            day,
            func.count().label("count"),
            func.sum(case((pt.c.predicted == _BULLISH, 1), else_=0)).label("bullish"),
            func.sum(case((pt.c.predicted == _BEARISH, 1), else_=0)).label("bearish"),
            func.sum(case((pt.c.predicted == _NEUTRAL, 1), else_=0)).label("neutral"),
            func.avg(pt.c.net).label("net_sentiment"),
        )
        .where(pt.c.ticker.in_(list(tickers)), pt.c.published_at >= low, pt.c.published_at < high)
        .group_by(pt.c.ticker, day)
        .order_by(pt.c.ticker, day)
    )


def volumes_query(start: date | str, end: date | str, limit: int | None = None) -> Select:
    """The tickers named in the range with their texts, busiest first (index on published_at, ticker)."""
    low, high = day_range(start, end)
    count = func.count().label("count")
    query = (
        select(pt.c.ticker, count)
        .where(pt.c.published_at >= low, pt.c.published_at < high)
        .group_by(pt.c.ticker)
        .order_by(count.desc(), pt.c.ticker)
    )
    return query.limit(limit) if limit is not None else query


def span_query() -> Select:
    """The first and last publication time in the store: two subqueries, so that each is one step on
    the published_at index (SQLite scans the table for min and max in one SELECT)."""
    first = select(func.min(predictions.c.published_at)).scalar_subquery()
    last = select(func.max(predictions.c.published_at)).scalar_subquery()
    return select(first, last)


def alerts_query(tickers: Sequence[str], start: date | str, end: date | str, *, other_kinds: bool = True, limit: int = 500) -> Select:
    """The sentiment alerts of ``tickers`` on the range's days (a range of their unique keys, which sort
    by day), and, with ``other_kinds``, the drift and promotion alerts recorded in the range."""
    first, last = as_date(start, "start"), as_date(end, "end")
    low, high = day_range(first, last)
    wanted = [
        and_(alerts.c.key >= sentiment_key(t, first.isoformat()), alerts.c.key <= sentiment_key(t, last.isoformat())) for t in tickers
    ]
    if other_kinds:
        wanted.append(and_(alerts.c.kind != "sentiment", alerts.c.created_at >= low, alerts.c.created_at < high))
    return select(alerts).where(or_(*wanted)).order_by(alerts.c.key.desc()).limit(limit)


def headlines_query(ticker: str, day: date | str, direction: str | None = None, limit: int = HEADLINES) -> Select:
    """The texts behind ``ticker`` on ``day``, most influential first: the most bearish first when the
    index moved down, the most bullish when it moved up, else the largest |p_bullish - p_bearish|."""
    low, high = day_range(day, day)
    if direction == "down":
        order = [pt.c.net.asc()]
    elif direction == "up":
        order = [pt.c.net.desc()]
    else:
        order = [func.abs(pt.c.net).desc()]
    return (
        select(
            predictions.c.id,
            pt.c.ticker,
            predictions.c.published_at,
            predictions.c.text,
            predictions.c.tickers,
            predictions.c.source,
            predictions.c.p_bearish,
            predictions.c.p_bullish,
            predictions.c.p_neutral,
            predictions.c.predicted,
            pt.c.net,
            predictions.c.model_name,
            predictions.c.model_version,
        )
        .join(predictions, predictions.c.id == pt.c.prediction_id)
        .where(pt.c.ticker == ticker, pt.c.published_at >= low, pt.c.published_at < high)
        .order_by(*order, predictions.c.published_at, predictions.c.id)
        .limit(limit)
    )


# --- reading (I/O) -----------------------------------------------------------------------------------


def _run(engine: Engine, query: Select) -> list[Any]:
    try:
        with engine.connect() as conn:
            return list(conn.execute(query).all())
    except SQLAlchemyError as exc:
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc


def _iso_day(value: Any) -> str:
    return value.isoformat()[:10] if isinstance(value, date | datetime) else str(value)[:10]


def read_span(engine: Engine) -> tuple[date, date] | None:
    """The first and last UTC day with a prediction; None for an empty store."""
    first, last = _run(engine, span_query())[0]
    if first is None or last is None:
        return None
    return as_date(first, "first"), as_date(last, "last")


def read_index(engine: Engine, tickers: Sequence[str], start: date | str, end: date | str) -> pd.DataFrame:
    """The daily index of ``tickers`` over ``[start, end]``: the columns of ``sentiment_index.daily_index``
    (``day`` as an ISO date), sorted by ticker then day."""
    tickers = clean_tickers(tickers)
    rows = _run(engine, index_query(tickers, start, end)) if tickers else []
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(INDEX_COLUMNS))
    frame["day"] = [_iso_day(d) for d in frame["day"]]
    for column in ("count", "bullish", "bearish", "neutral"):
        frame[column] = frame[column].astype("int64")
    frame["net_sentiment"] = frame["net_sentiment"].astype("float64")
    return frame


def read_volumes(engine: Engine, start: date | str, end: date | str, limit: int | None = None) -> list[dict[str, Any]]:
    """``[{"ticker": "AAPL", "count": 1234}, ...]``: the tickers of the range, busiest first."""
    return [{"ticker": str(t), "count": int(c)} for t, c in _run(engine, volumes_query(start, end, limit))]


def alert_row(row: Any) -> dict[str, Any]:
    """One alert as the page lists it: its fields, and the ticker and day of a sentiment alert."""
    payload = json.loads(row.payload)
    ticker, day = None, row.created_at.date().isoformat()  # a drift or promotion alert: the day recorded
    if row.kind == "sentiment":
        ticker, day = parse_sentiment_key(row.key)
    return {
        "id": int(row.id),
        "kind": row.kind,
        "key": row.key,
        "ticker": ticker,
        "day": day,
        "direction": payload.get("direction") if isinstance(payload, dict) else None,
        "net_sentiment": payload.get("net_sentiment") if isinstance(payload, dict) else None,
        "change": payload.get("change") if isinstance(payload, dict) else None,
        "created_at": row.created_at.isoformat(timespec="seconds") + "Z",
        "message": row.message,
    }


def read_alerts(
    engine: Engine, tickers: Sequence[str], start: date | str, end: date | str, *, other_kinds: bool = True
) -> list[dict[str, Any]]:
    """The alerts of the page (``alerts_query``), newest day first."""
    return [alert_row(r) for r in _run(engine, alerts_query(clean_tickers(tickers), start, end, other_kinds=other_kinds))]


def read_headlines(
    engine: Engine, ticker: str, day: date | str, direction: str | None = None, limit: int = HEADLINES
) -> list[dict[str, Any]]:
    """The headlines behind ``ticker`` on ``day`` (``headlines_query``), each with its probabilities,
    predicted label and the model version that scored it."""
    rows = _run(engine, headlines_query(ticker, day, direction, limit))
    return [
        {
            "id": int(r.id),
            "ticker": r.ticker,
            "published_at": r.published_at.isoformat(timespec="seconds") + "Z",
            "text": r.text,
            "tickers": r.tickers,
            "source": r.source,
            "p_bearish": round(float(r.p_bearish), 4),
            "p_bullish": round(float(r.p_bullish), 4),
            "p_neutral": round(float(r.p_neutral), 4),
            "net": round(float(r.net), 4),
            "predicted": LABELS[int(r.predicted)],
            "model": f"{r.model_name} v{r.model_version}",
            "model_version": r.model_version,
        }
        for r in rows
    ]

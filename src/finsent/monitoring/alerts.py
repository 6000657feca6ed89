"""Alerts people act on: a ticker's sentiment moved, the champion's inputs drifted, a new version was
refused. This module records them and reads them back; ``finsent.monitoring.webhooks`` posts them.

Why a store, not a direct post: a webhook that is down must not lose an alert, and a retried run or a
second service replica must not send it twice. So each alert is written once, under a unique key
(``sentiment:AAPL:2026-11-30``, ``drift:window-12``, ``promotion:finsent-sentiment:7``), together with
one pending delivery per webhook that takes its kind, in one transaction; delivery then works through
the pending rows until each one lands. Recording the same key again, even from two processes at once,
stores nothing and returns None.

The message builders are pure (dict in, ``AlertDraft`` out); ``record*`` and ``read_alerts`` do the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from finsent import utc
from finsent.config import ALERT_EVENTS, AlertParams, Params
from finsent.errors import FinsentError
from finsent.monitoring.sentiment_index import daily_index, find_alerts
from finsent.monitoring.store import (
    StoreError,
    alert_deliveries,
    alerts,
    insert_ignoring_duplicates,
    open_store,
    read_predictions,
    unusable,
)
from finsent.monitoring.webhooks import PENDING, deliver_pending

if TYPE_CHECKING:
    from finsent.registry.versions import RegistrationSummary

DEFAULT_LIMIT = 100  # alerts read back when the caller does not say


class AlertError(FinsentError, ValueError):
    """A request for alerts that cannot be answered (an unknown kind, a limit below one)."""


@dataclass(frozen=True)
class AlertDraft:
    """An alert before it is stored: its kind, its unique key, one line for people, and its fields."""

    kind: str  # one of config.ALERT_EVENTS
    key: str
    message: str
    payload: dict[str, Any]


# --- what each alert says (pure) -----------------------------------------------------------------------


def sentiment_key(ticker: str, day: str = "") -> str:
    """The key of a ticker's sentiment alert on ``day`` (ISO date), one per ticker and day. Keys of one
    ticker sort by day, so a day range is a key range; without ``day``, the prefix of all of them."""
    return f"sentiment:{ticker}:{day}"


def parse_sentiment_key(key: str) -> tuple[str, str]:
    """(ticker, ISO day) of a ``sentiment_key``."""
    _, ticker, day = key.split(":", 2)
    return ticker, day


def sentiment_alert(alert: dict[str, Any]) -> AlertDraft:
    """A ``sentiment_index.Alert`` (as a dict): one per ticker and UTC day."""
    ticker, day = str(alert["ticker"]), str(alert["day"])
    direction = "down" if alert["change"] < 0 else "up"
    message = (
        f"{ticker}: net sentiment {alert['net_sentiment']:+.2f} on {day}, {direction} {abs(alert['change']):.2f} "
        f"from its baseline {alert['baseline']:+.2f} ({alert['count']} texts)"
    )
    return AlertDraft("sentiment", sentiment_key(ticker, day), message, dict(alert))


def _signal_text(name: str, detail: Any) -> str:
    """``prediction 0.31 (threshold 0.2)`` when the verdict says both numbers, else the signal's name."""
    if isinstance(detail, dict):
        value, threshold = detail.get("value"), detail.get("threshold")
        if isinstance(value, int | float) and isinstance(threshold, int | float):
            return f"{name} {value:.3g} (threshold {threshold:.3g})"
    return name


def drift_alert(
    verdict: dict[str, Any],
    *,
    window_end: datetime,
    model_name: str,
    model_version: str,
    window_id: int | None = None,
    rows: int | None = None,
) -> AlertDraft:
    """A drift verdict that fired: one per monitored window (its store id when it has one)."""
    end = utc.aware(window_end)
    details = verdict.get("details") or {}
    fired = list(verdict.get("signals_fired") or [])
    signals = ", ".join(_signal_text(s, details.get(s)) for s in fired) or "no signal"
    counted = f", {rows} rows" if rows is not None else ""
    message = f"drift in the window ending {end:%Y-%m-%d %H:%M} UTC: {signals} (model {model_name} version {model_version}{counted})"
    key = f"drift:window-{window_id}" if window_id is not None else f"drift:{end.isoformat()}"
    payload = {
        "window_id": window_id,
        "window_end": end.isoformat(),
        "signals_fired": fired,
        "details": {s: details[s] for s in fired if s in details},
        "model_name": model_name,
        "model_version": str(model_version),
        "rows": rows,
    }
    return AlertDraft("drift", key, message, payload)


def promotion_alert(
    model_name: str,
    version: str,
    reasons: Sequence[str],
    *,
    champion_version: str | None,
    run_id: str | None = None,
) -> AlertDraft:
    """A registered version the gate refused: the reasons are the gate's failed checks."""
    stays = f"champion stays version {champion_version}" if champion_version else "there is no champion"
    message = f"{model_name} version {version} was not promoted ({stays}): {'; '.join(reasons) or 'no reason given'}"
    payload = {
        "model_name": model_name,
        "version": str(version),
        "champion_version": champion_version,
        "reasons": list(reasons),
        "run_id": run_id,
    }
    return AlertDraft("promotion", f"promotion:{model_name}:{version}", message, payload)


def as_day(value: date | datetime | str) -> date:
    """A UTC calendar day from a date, a datetime (naive = UTC) or an ISO string."""
    if isinstance(value, datetime):
        return utc.aware(value).date()
    if isinstance(value, date):
        return value
    return utc.parse(value, "day").date()


# --- recording ---------------------------------------------------------------------------------------


def record(
    engine: Engine,
    alert_params: AlertParams,
    kind: str,
    key: str,
    message: str,
    payload: dict[str, Any],
    *,
    now: datetime | None = None,
) -> int | None:
    """Store the alert and one pending delivery per webhook whose ``events`` take ``kind``, in one
    transaction; returns the alert's id, or None when ``key`` was already recorded (nothing written)."""
    if kind not in ALERT_EVENTS:
        raise AlertError(f"alert kind must be one of {list(ALERT_EVENTS)}, not {kind!r}")
    created = utc.naive(now or utc.now())
    values = {"key": key, "kind": kind, "created_at": created, "message": message, "payload": json.dumps(payload, default=str)}
    try:
        with engine.begin() as conn:
            alert_id = conn.execute(
                insert_ignoring_duplicates(engine, alerts, "key").values(**values).returning(alerts.c.id)
            ).scalar_one_or_none()
            if alert_id is None:  # the key exists: recorded before, or by a concurrent writer
                return None
            deliveries = [
                {"alert_id": alert_id, "webhook": w.label, "status": PENDING, "attempts": 0, "next_attempt_at": created}
                for w in alert_params.webhooks
                if kind in w.events
            ]
            if deliveries:
                conn.execute(insert(alert_deliveries), deliveries)
    except IntegrityError as exc:
        raise StoreError(f"alert {key} rejected by the store, nothing written: {exc.orig}") from exc
    except SQLAlchemyError as exc:  # read-only, locked past the timeout, unreachable: rolled back
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc
    return int(alert_id)


def record_draft(engine: Engine, alert_params: AlertParams, draft: AlertDraft, *, now: datetime | None = None) -> dict[str, Any] | None:
    """``record`` for a draft; the new alert as a dict (id, kind, key, message, payload), or None."""
    alert_id = record(engine, alert_params, draft.kind, draft.key, draft.message, draft.payload, now=now)
    if alert_id is None:
        return None
    return {"id": alert_id, "kind": draft.kind, "key": draft.key, "message": draft.message, "payload": draft.payload}


def record_index_alerts(
    engine: Engine, alert_params: AlertParams, index_alerts: Iterable[dict[str, Any]], days: Iterable[date | datetime | str]
) -> list[dict[str, Any]]:
    """Record the sentiment alerts (``IndexSummary.alerts``) that fall on ``days``; returns the new ones.
    Older days were someone else's window: their alerts were recorded then, or are not news now."""
    wanted = {as_day(d).isoformat() for d in days}
    recorded = (record_draft(engine, alert_params, sentiment_alert(a)) for a in index_alerts if str(a["day"]) in wanted)
    return [r for r in recorded if r is not None]


def record_sentiment_alerts(
    engine: Engine, params: Params, tickers: Iterable[str], days: Iterable[date | datetime | str]
) -> list[dict[str, Any]]:
    """After an ingest that touched ``tickers`` on these UTC ``days``: their alerts, recorded once each;
    returns those recorded now (each with its key and message).

    Reads only those tickers' predictions from the alert baseline's look-back to the last day, so that
    it is cheap enough to run after every ingest.
    """
    wanted_tickers = sorted({str(t).strip() for t in tickers if str(t).strip()})
    wanted_days = sorted({as_day(d) for d in days})
    if not wanted_tickers or not wanted_days:
        return []
    start = datetime.combine(wanted_days[0], datetime.min.time()) - timedelta(days=params.monitor.alert_window_days)
    end = datetime.combine(wanted_days[-1], datetime.min.time()) + timedelta(days=1)
    rows = read_predictions(engine, utc.aware(start), utc.aware(end), tickers=wanted_tickers)
    index = daily_index(rows, params.monitor.index_from)
    index = index[index["ticker"].isin(wanted_tickers)]  # the store's LIKE filter was a superset
    found = [asdict(a) for a in find_alerts(index, params.monitor)]
    return record_index_alerts(engine, params.alerts, found, wanted_days)


def record_drift(
    engine: Engine,
    alert_params: AlertParams,
    verdict: dict[str, Any],
    *,
    window_end: datetime,
    model_name: str,
    model_version: str,
    window_id: int | None = None,
    rows: int | None = None,
) -> dict[str, Any] | None:
    """The window's drift alert when its verdict fired; None when it did not, or was recorded before."""
    if not verdict.get("drift"):
        return None
    draft = drift_alert(verdict, window_end=window_end, model_name=model_name, model_version=model_version, window_id=window_id, rows=rows)
    return record_draft(engine, alert_params, draft)


def record_window_alerts(
    engine: Engine,
    alert_params: AlertParams,
    index_alerts: Iterable[dict[str, Any]],
    days: Iterable[date | datetime | str],
    verdict: dict[str, Any] | None,
    *,
    window_end: datetime,
    model_name: str,
    model_version: str,
    window_id: int | None = None,
    rows: int | None = None,
) -> list[dict[str, Any]]:
    """A monitoring window's alerts, each once: the sentiment alerts on the days its texts were published,
    and its drift when the verdict fired. Returns those recorded now."""
    recorded = record_index_alerts(engine, alert_params, index_alerts, days)
    if verdict is not None:
        fired = record_drift(
            engine,
            alert_params,
            verdict,
            window_end=window_end,
            model_name=model_name,
            model_version=model_version,
            window_id=window_id,
            rows=rows,
        )
        recorded += [fired] if fired else []
    return recorded


def record_refused_promotion(engine: Engine, alert_params: AlertParams, registration: RegistrationSummary) -> dict[str, Any] | None:
    """A promotion alert when the gate refused the registered version; None when it was promoted."""
    if registration.promoted:
        return None
    draft = promotion_alert(
        registration.model_name,
        registration.version,
        registration.reasons,
        champion_version=registration.champion_version,
        run_id=registration.run_id,
    )
    return record_draft(engine, alert_params, draft)


def deliver_logged(engine: Engine, alert_params: AlertParams, *, log: Callable[[str], Any] = print) -> dict[str, int] | None:
    """One delivery round whose failure is only logged: the alerts stay pending in the store, and the
    next round (the service's loop, ``finsent alerts deliver``, the next window) posts them."""
    try:
        counts = deliver_pending(engine, alert_params)
    except FinsentError as exc:
        log(f"alerts not delivered now (they stay pending): {exc}")
        return None
    if counts["retry_later"]:
        log(f"alerts: {counts['retry_later']} delivery(ies) failed this round and stay pending (finsent alerts list)")
    return counts


def alert_on_registration(
    params: Params, root: str | Path, registration: RegistrationSummary, *, log: Callable[[str], Any] = print
) -> str | None:
    """The training flow's last step: record and post an alert when the gate refused the new version.
    Returns the alert's key. Never fails the training: a store or webhook that is down is logged."""
    if registration.promoted:
        return None
    try:
        engine = open_store(params.monitor, root)
        recorded = record_refused_promotion(engine, params.alerts, registration)
        deliver_logged(engine, params.alerts, log=log)
    except Exception as exc:  # noqa: BLE001 - the version is registered; an alert must not undo the training
        log(f"promotion alert for {registration.model_name} version {registration.version} not recorded: {exc}")
        return None
    if recorded is None:
        return None
    log(f"ALERT {recorded['message']}")
    return str(recorded["key"])


# --- reading -----------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return utc.aware(value).isoformat() if value is not None else None


def read_alerts(
    engine: Engine,
    *,
    kind: str | None = None,
    ticker: str | None = None,
    since: datetime | str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[dict[str, Any]]:
    """Alerts newest first, each with its payload decoded and its deliveries (webhook, status, attempts,
    last_error, next_attempt_at, delivered_at). ``ticker`` selects sentiment alerts of that ticker."""
    if kind is not None and kind not in ALERT_EVENTS:
        raise AlertError(f"alert kind must be one of {list(ALERT_EVENTS)}, not {kind!r}")
    if limit < 1:
        raise AlertError(f"limit must be >= 1, not {limit}")
    query = select(alerts).order_by(alerts.c.created_at.desc(), alerts.c.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(alerts.c.kind == kind)
    if ticker is not None:
        query = query.where(alerts.c.key.startswith(sentiment_key(ticker.strip()), autoescape=True))
    if since is not None:
        start = utc.parse(since, "since") if isinstance(since, str) else since
        query = query.where(alerts.c.created_at >= utc.naive(start))
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            ids = [row["id"] for row in rows]
            found = (
                conn.execute(select(alert_deliveries).where(alert_deliveries.c.alert_id.in_(ids)).order_by(alert_deliveries.c.id))
                .mappings()
                .all()
                if ids
                else []
            )
    except SQLAlchemyError as exc:
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc
    deliveries: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for d in found:
        deliveries[d["alert_id"]].append(
            {
                "webhook": d["webhook"],
                "status": d["status"],
                "attempts": d["attempts"],
                "last_error": d["last_error"],
                "next_attempt_at": _iso(d["next_attempt_at"]) if d["status"] == PENDING else None,
                "delivered_at": _iso(d["delivered_at"]),
            }
        )
    return [
        {
            "id": row["id"],
            "kind": row["kind"],
            "key": row["key"],
            "created_at": _iso(row["created_at"]),
            "message": row["message"],
            "payload": json.loads(row["payload"]),
            "deliveries": deliveries[row["id"]],
        }
        for row in rows
    ]

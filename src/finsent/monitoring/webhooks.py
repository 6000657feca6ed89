"""Posting recorded alerts to webhooks, so that they reach people: at least once, and once in practice.

The pending rows of ``alert_deliveries`` (written with each alert by ``finsent.monitoring.alerts``) are
the queue. A delivery round takes each due row, claims it with a conditional UPDATE (so that two
service replicas, or a replica and ``finsent alerts deliver``, never post the same row twice), posts it
with a few quick retries, and writes the outcome: delivered, or still pending with one line saying why
and a later time to try again (growing, capped at an hour). A process that dies holding a claim only
delays that delivery until its lease runs out. Rows are never deleted: the table is the delivery log.

A webhook that is down is normal and never raises here; a store that cannot be used raises the store's
``StoreUnusable``, since then nothing about delivery can be known or written.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from finsent import utc
from finsent.config import AlertParams, WebhookParams
from finsent.monitoring.store import alert_deliveries, alerts, unusable

PENDING, DELIVERED = "pending", "delivered"  # alert_deliveries.status
MAX_REDELIVER_S = 3600.0  # a webhook down for hours is still tried at least hourly
LEASE_MARGIN_S = 30.0  # added to a round's worst case before a dead claimer's delivery is due again
ROUND_LIMIT = 500  # deliveries taken per round; the rest are due in the next one
ERROR_CHARS = 300  # a response body quoted in last_error is cut here: one line, not a page


@dataclass(frozen=True)
class Due:
    """A pending delivery whose time has come, with the alert it carries."""

    id: int
    webhook: str  # WebhookParams.label
    attempts: int
    next_attempt_at: datetime  # naive UTC, as read: the claim matches on it
    kind: str
    key: str
    created_at: datetime
    message: str
    payload: dict[str, Any]


# --- pure -----------------------------------------------------------------------------------------------


def request_body(fmt: str, due: Due) -> dict[str, Any]:
    """The body for a webhook's ``format``: ``json`` carries the whole alert, ``slack`` one line of text
    (Slack's incoming webhooks, and the many tools that take the same ``{"text": ...}``)."""
    if fmt == "slack":
        return {"text": f"[finsent {due.kind}] {due.message}"}
    return {
        "kind": due.kind,
        "key": due.key,
        "created_at": utc.aware(due.created_at).isoformat(),
        "message": due.message,
        "alert": due.payload,
    }


def claim_lease_s(p: AlertParams) -> float:
    """How long a claim holds a delivery: longer than the worst case of posting it (every try timing
    out, with the backoffs between them), so a live claimer always writes its outcome first."""
    backoffs = sum(p.backoff_s * 2**i for i in range(p.attempts - 1))
    return p.attempts * p.timeout_s + backoffs + LEASE_MARGIN_S


def redeliver_delay_s(p: AlertParams, attempts_before: int) -> float:
    """The wait after a failed round: ``redeliver_every_s``, doubled per round already failed, capped."""
    rounds_failed = attempts_before // p.attempts
    return min(p.redeliver_every_s * 2 ** min(rounds_failed, 32), MAX_REDELIVER_S)


def one_line(text: str, limit: int = ERROR_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def transport_error(webhook: WebhookParams, exc: Exception, timeout_s: float) -> str:
    """One line for a post that got no HTTP answer."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from {webhook.label} within {timeout_s:g}s"
    if isinstance(exc, httpx.ConnectError):
        reason = str(exc).lower()
        what = "connection refused" if "refused" in reason else one_line(str(exc) or type(exc).__name__)
        return f"{what} ({webhook.label})"
    return f"{type(exc).__name__} posting to {webhook.label}: {one_line(str(exc))}"


# --- I/O ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _store(engine: Engine) -> Iterator[None]:
    """Database errors as the store's one-line ``StoreUnusable``."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc


def _now(now: datetime | None) -> datetime:
    """Naive UTC: the round's fixed ``now`` when given (tests, replays), else the clock."""
    return utc.naive(now or utc.now())


def due_deliveries(engine: Engine, now: datetime, limit: int = ROUND_LIMIT) -> list[Due]:
    """Pending deliveries due at ``now``, oldest first."""
    query = (
        select(
            alert_deliveries.c.id,
            alert_deliveries.c.webhook,
            alert_deliveries.c.attempts,
            alert_deliveries.c.next_attempt_at,
            alerts.c.kind,
            alerts.c.key,
            alerts.c.created_at,
            alerts.c.message,
            alerts.c.payload,
        )
        .join(alerts, alerts.c.id == alert_deliveries.c.alert_id)
        .where(alert_deliveries.c.status == PENDING, alert_deliveries.c.next_attempt_at <= utc.naive(now))
        .order_by(alert_deliveries.c.next_attempt_at, alert_deliveries.c.id)
        .limit(limit)
    )
    with _store(engine), engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [Due(**{**row, "payload": json.loads(row["payload"])}) for row in rows]


def _update_if(engine: Engine, delivery_id: int, expected_next: datetime, **values: Any) -> bool:
    """Write ``values`` only if the row is still pending with this ``next_attempt_at``: what makes a
    claim exclusive, and keeps a late writer from overwriting a newer claim."""
    statement = (
        update(alert_deliveries)
        .where(
            alert_deliveries.c.id == delivery_id,
            alert_deliveries.c.status == PENDING,
            alert_deliveries.c.next_attempt_at == expected_next,
        )
        .values(**values)
    )
    with _store(engine), engine.begin() as conn:
        return conn.execute(statement).rowcount == 1


def claim(engine: Engine, due: Due, until: datetime) -> bool:
    """Take ``due`` for this round, until ``until``; False when a concurrent round took it first (its
    ``next_attempt_at`` is no longer the one read)."""
    return _update_if(engine, due.id, due.next_attempt_at, next_attempt_at=until)


def _headers(webhook: WebhookParams) -> dict[str, str]:
    if not webhook.token_env:
        return {}
    token = os.environ.get(webhook.token_env, "")
    if not token:
        raise LookupError(f"environment variable {webhook.token_env} (the bearer token of webhook {webhook.label}) is not set")
    return {"Authorization": f"Bearer {token}"}


def post(client: httpx.Client, webhook: WebhookParams, body: dict[str, Any], p: AlertParams) -> tuple[bool, int, str | None]:
    """Up to ``p.attempts`` tries with doubling backoff; returns (delivered, failed tries, last error)."""
    try:
        headers = _headers(webhook)
    except LookupError as exc:
        return False, 0, str(exc)
    error = None
    for attempt in range(p.attempts):
        if attempt:
            time.sleep(p.backoff_s * 2 ** (attempt - 1))
        try:
            response = client.post(webhook.url, json=body, headers=headers, timeout=p.timeout_s)
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:  # down, refused, timed out, bad TLS
            error = transport_error(webhook, exc, p.timeout_s)
            continue
        if response.is_success:
            return True, attempt, error
        said = one_line(response.text) if response.text.strip() else ""
        error = f"HTTP {response.status_code} from {webhook.label}" + (f": {said}" if said else "")
    return False, p.attempts, error


def deliver_pending(
    engine: Engine,
    alert_params: AlertParams,
    *,
    client: httpx.Client | None = None,
    now: datetime | None = None,
    limit: int = ROUND_LIMIT,
) -> dict[str, int]:
    """One delivery round over the due pending deliveries. Returns counts: ``due``, ``delivered``,
    ``retry_later`` (failed this round, still pending), ``failed_attempts`` (posts that failed),
    ``claimed_elsewhere`` (taken by a concurrent round) and ``pending`` (left in the store after it)."""
    configured = {w.label: w for w in alert_params.webhooks}
    lease = timedelta(seconds=claim_lease_s(alert_params))
    counts = dict.fromkeys(("due", "delivered", "retry_later", "failed_attempts", "claimed_elsewhere"), 0)
    down: dict[str, str] = {}  # webhook -> its error this round: its other deliveries wait, untried
    due = due_deliveries(engine, _now(now), limit)
    counts["due"] = len(due)
    with contextlib.ExitStack() as stack:
        for d in due:
            webhook = configured.get(d.webhook)
            later = _now(now) + timedelta(seconds=redeliver_delay_s(alert_params, d.attempts))
            if webhook is None or d.webhook in down:
                reason = (
                    f"webhook {d.webhook} is not configured in alerts.webhooks"
                    if webhook is None
                    else f"not tried: {down[d.webhook]} (earlier this round)"
                )
                if _update_if(engine, d.id, d.next_attempt_at, last_error=reason, next_attempt_at=later):
                    counts["retry_later"] += 1
                continue
            claimed_until = _now(now) + lease
            if not claim(engine, d, claimed_until):
                counts["claimed_elsewhere"] += 1
                continue
            if client is None:
                client = stack.enter_context(httpx.Client(timeout=alert_params.timeout_s))
            delivered, failed, error = post(client, webhook, request_body(webhook.format, d), alert_params)
            counts["failed_attempts"] += failed
            attempts = d.attempts + failed + (1 if delivered else 0)
            if delivered:
                outcome: dict[str, Any] = {"status": DELIVERED, "delivered_at": _now(now), "attempts": attempts}
                counts["delivered"] += 1
            else:
                later = _now(now) + timedelta(seconds=redeliver_delay_s(alert_params, d.attempts))
                outcome = {"attempts": attempts, "last_error": error, "next_attempt_at": later}
                down[d.webhook] = error or "failed"
                counts["retry_later"] += 1
            if error is not None:  # kept after a success too: how the delivery got there
                outcome["last_error"] = error
            _update_if(engine, d.id, claimed_until, **outcome)
    with _store(engine), engine.connect() as conn:
        counts["pending"] = int(
            conn.execute(select(func.count()).select_from(alert_deliveries).where(alert_deliveries.c.status == PENDING)).scalar_one()
        )
    return counts

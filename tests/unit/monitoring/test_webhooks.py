"""Posting alerts to webhooks: a real SQLite store and a real HTTP receiver on loopback that fails on
purpose (503s, slow answers, not running). Nothing is lost: what fails stays pending and lands later."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from finsent.config import AlertParams, WebhookParams
from finsent.monitoring import alerts, webhooks
from finsent.monitoring.store import StoreUnusable, alert_deliveries, make_engine
from testkit.webhook_receiver import Receiver

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
FAST = {"attempts": 3, "backoff_s": 0.02, "timeout_s": 2.0, "redeliver_every_s": 30.0}  # seconds, not minutes, of retries


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path}/p.db")


@pytest.fixture
def receivers():
    """Receivers made by the test; every one is stopped when the test ends, whatever happened."""
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.stop()


def hooks(*webhooks_: WebhookParams, **settings) -> AlertParams:
    return AlertParams(webhooks=list(webhooks_), **{**FAST, **settings})


def record_sentiment(engine, params: AlertParams, ticker: str = "AAPL") -> int:
    draft = alerts.sentiment_alert(
        {"ticker": ticker, "day": "2026-11-30", "net_sentiment": -0.45, "baseline": 0.07, "change": -0.52, "count": 23, "baseline_count": 9}
    )
    alert_id = alerts.record(engine, params, draft.kind, draft.key, draft.message, draft.payload, now=NOW)
    assert alert_id is not None
    return alert_id


def deliveries(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(alert_deliveries).order_by(alert_deliveries.c.id)).mappings()]


def test_json_and_slack_bodies(engine, receivers):
    receiver = receivers().start()
    params = hooks(WebhookParams(url=receiver.url("/json")), WebhookParams(url=receiver.url("/slack"), format="slack"))
    record_sentiment(engine, params)
    counts = webhooks.deliver_pending(engine, params, now=NOW)
    assert counts["delivered"] == 2 and counts["pending"] == 0 and counts["failed_attempts"] == 0
    bodies = {p.path: p.body for p in receiver.posts}
    assert bodies["/slack"] == {
        "text": "[finsent sentiment] AAPL: net sentiment -0.45 on 2026-11-30, down 0.52 from its baseline +0.07 (23 texts)"
    }
    sent = bodies["/json"]
    assert (sent["kind"], sent["key"], sent["created_at"]) == ("sentiment", "sentiment:AAPL:2026-11-30", NOW.isoformat())
    assert sent["message"].startswith("AAPL: net sentiment -0.45") and sent["alert"]["count"] == 23
    assert all(d["status"] == "delivered" and d["attempts"] == 1 and d["delivered_at"] is not None for d in deliveries(engine))
    assert webhooks.deliver_pending(engine, params, now=NOW + timedelta(hours=1))["due"] == 0  # delivered once, never again


def test_retries_with_backoff_then_success_in_one_round(engine, receivers):
    receiver = receivers(fail_first=2).start()
    params = hooks(WebhookParams(url=receiver.url()), backoff_s=0.05)
    record_sentiment(engine, params)
    counts = webhooks.deliver_pending(engine, params, now=NOW)
    assert (counts["delivered"], counts["failed_attempts"], counts["retry_later"]) == (1, 2, 0)
    assert len(receiver.arrivals) == 3 and len(receiver.posts) == 1
    gaps = [b - a for a, b in zip(receiver.arrivals, receiver.arrivals[1:])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # the backoff doubles
    (row,) = deliveries(engine)
    assert (row["status"], row["attempts"]) == ("delivered", 3)
    assert row["last_error"] == f"HTTP 503 from 127.0.0.1:{receiver.port}/hook: down for maintenance"  # how it got there


def test_a_webhook_down_for_a_round_stays_pending_and_lands_later(engine, receivers):
    receiver = receivers()  # not started: its port refuses connections
    params = hooks(WebhookParams(url=receiver.url()))
    record_sentiment(engine, params)
    counts = webhooks.deliver_pending(engine, params, now=NOW)
    assert (counts["delivered"], counts["retry_later"], counts["failed_attempts"], counts["pending"]) == (0, 1, 3, 1)
    (row,) = deliveries(engine)
    assert row["status"] == "pending" and row["attempts"] == 3
    assert row["last_error"] == f"connection refused (127.0.0.1:{receiver.port}/hook)"
    assert row["next_attempt_at"] == (NOW + timedelta(seconds=30)).replace(tzinfo=None)
    assert webhooks.deliver_pending(engine, params, now=NOW + timedelta(seconds=29))["due"] == 0  # waits its turn

    receiver.start()
    counts = webhooks.deliver_pending(engine, params, now=NOW + timedelta(seconds=30))
    assert (counts["delivered"], counts["pending"]) == (1, 0)
    assert [p.body["key"] for p in receiver.posts] == ["sentiment:AAPL:2026-11-30"]
    (row,) = deliveries(engine)
    assert (row["status"], row["attempts"]) == ("delivered", 4)
    listed = alerts.read_alerts(engine)[0]["deliveries"][0]
    assert listed["status"] == "delivered" and listed["delivered_at"].startswith("2026-11-30T15:00:30")


def test_other_deliveries_to_a_down_webhook_wait_untried_in_that_round(engine, receivers):
    receiver = receivers()
    params = hooks(WebhookParams(url=receiver.url()))
    for ticker in ("AAPL", "MSFT", "NVDA"):
        record_sentiment(engine, params, ticker)
    counts = webhooks.deliver_pending(engine, params, now=NOW)
    assert (counts["retry_later"], counts["failed_attempts"]) == (3, 3)  # one delivery tried 3 times, not three
    errors = [d["last_error"] for d in deliveries(engine)]
    assert errors[0].startswith("connection refused") and all(e.startswith("not tried: connection refused") for e in errors[1:])
    receiver.start()
    assert webhooks.deliver_pending(engine, params, now=NOW + timedelta(minutes=1))["delivered"] == 3


def test_the_wait_between_failed_rounds_grows_and_is_capped():
    p = AlertParams(attempts=3, redeliver_every_s=30.0)
    assert [webhooks.redeliver_delay_s(p, attempts) for attempts in (0, 3, 6, 9)] == [30.0, 60.0, 120.0, 240.0]
    assert webhooks.redeliver_delay_s(p, 3 * 1000) == webhooks.MAX_REDELIVER_S
    assert webhooks.claim_lease_s(AlertParams(attempts=3, backoff_s=0.5, timeout_s=5.0)) == 15.0 + 1.5 + webhooks.LEASE_MARGIN_S


def test_a_slow_webhook_times_out_with_a_clear_error(engine, receivers):
    receiver = receivers(delay_s=1.0).start()
    params = hooks(WebhookParams(url=receiver.url(), name="ops"), attempts=1, timeout_s=0.2)
    record_sentiment(engine, params)
    assert webhooks.deliver_pending(engine, params, now=NOW)["retry_later"] == 1
    assert deliveries(engine)[0]["last_error"] == "no answer from ops within 0.2s"


def test_two_concurrent_rounds_post_each_delivery_exactly_once(engine, receivers):
    receiver = receivers(delay_s=0.02).start()  # slow enough for the two rounds to overlap
    params = hooks(WebhookParams(url=receiver.url()))
    tickers = [f"T{i:02d}" for i in range(12)]
    for ticker in tickers:
        record_sentiment(engine, params, ticker)
    start = threading.Barrier(2)
    results: list[dict] = []

    def one_round() -> None:
        start.wait(timeout=10)
        results.append(webhooks.deliver_pending(engine, params, now=NOW))

    rounds = [threading.Thread(target=one_round) for _ in range(2)]
    for t in rounds:
        t.start()
    for t in rounds:
        t.join(timeout=60)
    assert len(results) == 2
    keys = [p.body["key"] for p in receiver.posts]
    assert sorted(keys) == sorted(f"sentiment:{t}:2026-11-30" for t in tickers)  # each once, none twice
    assert sum(r["delivered"] for r in results) == 12
    assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in deliveries(engine))


def test_a_claim_on_a_stale_read_fails_and_a_dead_claimer_only_delays(engine, receivers):
    """What makes concurrent rounds safe, without timing: once one round has claimed a row, another
    round that read it before cannot; and a claimer that died leaves it due when its lease runs out."""
    receiver = receivers().start()
    params = hooks(WebhookParams(url=receiver.url()))
    record_sentiment(engine, params)
    (stale,) = webhooks.due_deliveries(engine, NOW)
    assert webhooks.claim(engine, stale, NOW + timedelta(minutes=5))  # this claimer then "dies"
    assert not webhooks.claim(engine, stale, NOW + timedelta(minutes=5))
    assert webhooks.deliver_pending(engine, params, now=NOW)["due"] == 0
    assert webhooks.deliver_pending(engine, params, now=NOW + timedelta(minutes=5))["delivered"] == 1
    assert len(receiver.posts) == 1


def test_the_bearer_token_comes_from_the_environment(engine, receivers, monkeypatch):
    receiver = receivers().start()
    params = hooks(WebhookParams(url=receiver.url(), token_env="FINSENT_TEST_HOOK_TOKEN"))
    record_sentiment(engine, params)
    monkeypatch.delenv("FINSENT_TEST_HOOK_TOKEN", raising=False)
    assert webhooks.deliver_pending(engine, params, now=NOW)["retry_later"] == 1
    assert receiver.arrivals == []  # no post without its token
    assert "FINSENT_TEST_HOOK_TOKEN" in deliveries(engine)[0]["last_error"]

    monkeypatch.setenv("FINSENT_TEST_HOOK_TOKEN", "s3cret")
    assert webhooks.deliver_pending(engine, params, now=NOW + timedelta(minutes=1))["delivered"] == 1
    assert receiver.posts[0].headers["Authorization"] == "Bearer s3cret"


def test_a_webhook_no_longer_configured_stays_pending_and_says_so(engine, receivers):
    receiver = receivers().start()
    old = WebhookParams(url=receiver.url(), name="old-hook")
    record_sentiment(engine, hooks(old))
    counts = webhooks.deliver_pending(engine, hooks(), now=NOW)  # params without it
    assert (counts["delivered"], counts["retry_later"], counts["pending"]) == (0, 1, 1)
    (row,) = deliveries(engine)
    assert row["status"] == "pending" and row["attempts"] == 0
    assert row["last_error"] == "webhook old-hook is not configured in alerts.webhooks"
    assert receiver.arrivals == []
    assert webhooks.deliver_pending(engine, hooks(old), now=NOW + timedelta(minutes=1))["delivered"] == 1  # configured again: it lands


def test_a_passed_client_is_used_and_left_open(engine, receivers):
    receiver = receivers().start()
    params = hooks(WebhookParams(url=receiver.url()))
    record_sentiment(engine, params)
    with httpx.Client() as client:
        assert webhooks.deliver_pending(engine, params, client=client, now=NOW)["delivered"] == 1
        assert not client.is_closed


def test_a_store_that_cannot_be_used_raises_store_unusable(tmp_path):
    db = tmp_path / "p.db"
    engine = make_engine(f"sqlite:///{db}")
    engine.dispose()
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnusable, match="cannot be used"):
        webhooks.deliver_pending(engine, hooks(), now=NOW)

"""Recording and reading alerts (real SQLite store): what each says, one per key even when two writers
race, one pending delivery per webhook that takes the kind, and the sentiment alerts of an ingest."""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from finsent.config import AlertParams, MonitorParams, Params, WebhookParams
from finsent.monitoring import alerts
from finsent.monitoring.store import ROW_COLUMNS, BatchMeta, alert_deliveries, append_batch, make_engine
from finsent.monitoring.store import alerts as alerts_table
from finsent.registry.versions import RegistrationSummary
from testkit.webhook_receiver import Receiver

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
SENTIMENT = {
    "ticker": "AAPL",
    "day": "2026-11-30",
    "net_sentiment": -0.45,
    "baseline": 0.07,
    "change": -0.52,
    "count": 23,
    "baseline_count": 9,
}
BULL, BEAR = (0.1, 0.8, 0.1), (0.8, 0.1, 0.1)  # p_bearish, p_bullish, p_neutral
HOOKS = AlertParams(
    webhooks=[
        WebhookParams(url="http://127.0.0.1:9/sentiment", name="markets", events=["sentiment"]),
        WebhookParams(url="http://127.0.0.1:9/ops", name="ops", events=["drift", "promotion"]),
        WebhookParams(url="http://127.0.0.1:9/all", name="all"),
    ]
)


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path}/p.db")


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def record(engine, draft: alerts.AlertDraft, params: AlertParams = HOOKS) -> int | None:
    return alerts.record(engine, params, draft.kind, draft.key, draft.message, draft.payload, now=NOW)


# --- what each alert says ------------------------------------------------------------------------------


def test_a_sentiment_alert_names_ticker_day_move_and_baseline():
    draft = alerts.sentiment_alert(SENTIMENT)
    assert (draft.kind, draft.key) == ("sentiment", "sentiment:AAPL:2026-11-30")
    assert draft.message == "AAPL: net sentiment -0.45 on 2026-11-30, down 0.52 from its baseline +0.07 (23 texts)"
    assert draft.payload == SENTIMENT
    up = alerts.sentiment_alert({**SENTIMENT, "net_sentiment": 0.6, "change": 0.53})
    assert "up 0.53" in up.message


def test_a_drift_alert_names_the_signals_and_the_model():
    verdict = {
        "drift": True,
        "signals_fired": ["prediction", "embedding"],
        "details": {
            "prediction": {"value": 0.312, "threshold": 0.2, "fired": True},
            "embedding": {"fired": True},
            "text": {"fired": False},
        },
    }
    draft = alerts.drift_alert(verdict, window_end=NOW, model_name="finsent-sentiment", model_version="3", window_id=12, rows=400)
    assert draft.key == "drift:window-12"
    assert draft.message == (
        "drift in the window ending 2026-11-30 15:00 UTC: prediction 0.312 (threshold 0.2), embedding "
        "(model finsent-sentiment version 3, 400 rows)"
    )
    assert set(draft.payload["details"]) == {"prediction", "embedding"}  # only what fired
    assert alerts.drift_alert(verdict, window_end=NOW, model_name="m", model_version="3").key == "drift:2026-11-30T15:00:00+00:00"


def test_a_refused_promotion_gives_the_gates_reasons():
    draft = alerts.promotion_alert("finsent-sentiment", "7", ["macro_f1: 0.71 < 0.74", "behaviour: 2 failures"], champion_version="5")
    assert draft.key == "promotion:finsent-sentiment:7"
    assert (
        draft.message
        == "finsent-sentiment version 7 was not promoted (champion stays version 5): macro_f1: 0.71 < 0.74; behaviour: 2 failures"
    )
    assert "there is no champion" in alerts.promotion_alert("m", "1", ["x"], champion_version=None).message


# --- recording -----------------------------------------------------------------------------------------


def test_one_alert_per_key_with_deliveries_only_to_webhooks_taking_its_kind(engine):
    first = record(engine, alerts.sentiment_alert(SENTIMENT))
    assert first is not None
    assert record(engine, alerts.sentiment_alert({**SENTIMENT, "count": 99})) is None  # the same ticker and day: no repeat
    assert (count(engine, alerts_table), count(engine, alert_deliveries)) == (1, 2)
    promotion = record(engine, alerts.promotion_alert("m", "7", ["worse"], champion_version="5"))
    (listed_promotion, listed_sentiment) = alerts.read_alerts(engine)
    assert listed_promotion["id"] == promotion  # newest first (same time: the later id)
    assert {d["webhook"] for d in listed_sentiment["deliveries"]} == {"markets", "all"}
    assert {d["webhook"] for d in listed_promotion["deliveries"]} == {"ops", "all"}
    assert listed_sentiment["payload"]["count"] == 23  # the first one stands
    assert all(d["status"] == "pending" and d["attempts"] == 0 for d in listed_sentiment["deliveries"])


def test_an_alert_without_webhooks_is_still_recorded(engine):
    assert record(engine, alerts.sentiment_alert(SENTIMENT), AlertParams()) is not None
    assert alerts.read_alerts(engine)[0]["deliveries"] == []


def test_two_writers_racing_on_the_same_keys_store_each_once(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    engines = [make_engine(url), make_engine(url)]  # as two processes would
    drafts = [alerts.sentiment_alert({**SENTIMENT, "ticker": f"T{i}"}) for i in range(8)]
    start = threading.Barrier(2)
    ids: list[list[int | None]] = [[], []]

    def writer(i: int) -> None:
        start.wait(timeout=10)
        ids[i] = [record(engines[i], d) for d in drafts]

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for a, b in zip(*ids):
        assert (a is None) != (b is None)  # exactly one writer stored each key
    assert (count(engines[0], alerts_table), count(engines[0], alert_deliveries)) == (8, 16)


def test_an_unknown_kind_is_refused(engine):
    with pytest.raises(alerts.AlertError, match="kind"):
        alerts.record(engine, HOOKS, "weather", "weather:1", "rain", {})
    with pytest.raises(alerts.AlertError, match="kind"):
        alerts.read_alerts(engine, kind="weather")


def test_drift_is_recorded_only_when_it_fired(engine):
    calm = {"drift": False, "signals_fired": [], "details": {}}
    assert alerts.record_drift(engine, HOOKS, calm, window_end=NOW, model_name="m", model_version="3", window_id=1) is None
    fired = alerts.record_drift(
        engine, HOOKS, {**calm, "drift": True, "signals_fired": ["text"]}, window_end=NOW, model_name="m", model_version="3", window_id=2
    )
    assert fired is not None and fired["key"] == "drift:window-2"
    assert count(engine, alerts_table) == 1


# --- the sentiment alerts of an ingest ----------------------------------------------------------------


def news(rows: list[tuple[str, str, tuple[float, float, float]]]) -> pd.DataFrame:
    """Scored rows as the store takes them: (published_at, tickers, probabilities)."""
    frame = pd.DataFrame(
        {
            "published_at": pd.to_datetime([r[0] for r in rows], utc=True),
            "text": [f"headline {i}" for i in range(len(rows))],
            "tickers": [r[1] for r in rows],
            "source": "test",
            "label": -1,
            "p_bearish": [r[2][0] for r in rows],
            "p_bullish": [r[2][1] for r in rows],
            "p_neutral": [r[2][2] for r in rows],
        }
    )
    frame["predicted"] = frame[["p_bearish", "p_bullish", "p_neutral"]].to_numpy().argmax(axis=1)
    return frame[list(ROW_COLUMNS)]


def store_batch(engine, frame: pd.DataFrame, name: str) -> None:
    meta = BatchMeta(
        batch_id=name, file=f"{name}.csv", sha256=name.ljust(64, "0"), rows_in=len(frame), rows_skipped=0,
        model_name="finsent-sentiment", model_version="3", scored_at=NOW,
    )  # fmt: skip
    append_batch(engine, frame, meta)


PARAMS = replace(Params(), monitor=MonitorParams(alert_threshold=0.3, alert_min_count=2, alert_window_days=3), alerts=HOOKS)


def test_an_ingest_alerts_on_a_ticker_whose_sentiment_dropped_once(engine):
    history = [
        (f"2026-11-{day}T{hour}:00:00Z", ticker, BULL)
        for day in (27, 28, 29)
        for hour in (9, 12, 15)
        for ticker in ("DROP", "STEADY", "DROPX")
    ]
    store_batch(engine, news(history), "history")
    today = [(f"2026-11-30T{hour}:00:00Z", "DROP,DROPX", BEAR) for hour in (9, 12, 15)]
    today += [(f"2026-11-30T{hour}:00:00Z", "STEADY", BULL) for hour in (9, 12, 15)]
    store_batch(engine, news(today), "ingest")

    recorded = alerts.record_sentiment_alerts(engine, PARAMS, ["DROP", "STEADY"], ["2026-11-30"])
    assert [r["key"] for r in recorded] == ["sentiment:DROP:2026-11-30"]  # not STEADY, and not DROPX (not asked)
    assert recorded[0]["message"] == "DROP: net sentiment -0.70 on 2026-11-30, down 1.40 from its baseline +0.70 (3 texts)"
    assert alerts.record_sentiment_alerts(engine, PARAMS, ["DROP", "STEADY"], ["2026-11-30"]) == []  # no repeat
    assert alerts.record_sentiment_alerts(engine, PARAMS, ["DROP"], ["2026-11-29"]) == []  # a calm day
    assert [r["key"] for r in alerts.record_sentiment_alerts(engine, PARAMS, ["DROPX"], [datetime(2026, 11, 30, 9)])] == [
        "sentiment:DROPX:2026-11-30"
    ]
    assert alerts.record_sentiment_alerts(engine, PARAMS, [], ["2026-11-30"]) == []


def test_read_alerts_filters_by_kind_ticker_time_and_limit(engine):
    for i, ticker in enumerate(("AAPL", "MSFT", "AAPL_")):
        draft = alerts.sentiment_alert({**SENTIMENT, "ticker": ticker})
        alerts.record(engine, HOOKS, draft.kind, draft.key, draft.message, draft.payload, now=NOW.replace(hour=10 + i))
    record(engine, alerts.promotion_alert("m", "7", ["worse"], champion_version="5"))
    assert [a["kind"] for a in alerts.read_alerts(engine)] == ["promotion", "sentiment", "sentiment", "sentiment"]
    assert [a["key"] for a in alerts.read_alerts(engine, ticker="AAPL")] == ["sentiment:AAPL:2026-11-30"]  # not AAPL_
    assert len(alerts.read_alerts(engine, kind="sentiment", limit=2)) == 2
    assert [a["key"] for a in alerts.read_alerts(engine, kind="sentiment", since="2026-11-30T11:00Z")] == [
        "sentiment:AAPL_:2026-11-30",
        "sentiment:MSFT:2026-11-30",
    ]
    assert alerts.read_alerts(engine, kind="sentiment")[0]["created_at"] == "2026-11-30T12:00:00+00:00"
    with pytest.raises(alerts.AlertError, match="limit"):
        alerts.read_alerts(engine, limit=0)


# --- the hooks: a monitoring window, a training run's registration, the command -------------------------


def test_a_window_records_its_sentiment_alerts_on_its_own_days_and_its_drift(engine):
    older = {**SENTIMENT, "ticker": "MSFT", "day": "2026-11-28"}  # in the index's look-back, not the window
    verdict = {"drift": True, "signals_fired": ["prediction"], "details": {}}
    model = {"window_end": NOW, "model_name": "finsent-sentiment", "model_version": "3"}
    recorded = alerts.record_window_alerts(engine, HOOKS, [SENTIMENT, older], ["2026-11-30"], verdict, window_id=4, rows=1, **model)
    assert [r["key"] for r in recorded] == ["sentiment:AAPL:2026-11-30", "drift:window-4"]
    assert alerts.record_window_alerts(engine, HOOKS, [SENTIMENT], ["2026-11-30"], None, **model) == []  # recorded before; no verdict


def registration(promoted: bool) -> RegistrationSummary:
    return RegistrationSummary(
        run_id="r1", model_name="finsent-sentiment", version="7", promoted=promoted, champion_version="7" if promoted else "5",
        previous_champion_version="5", reasons=["macro_f1: 0.71 < 0.74"],
    )  # fmt: skip


def test_a_refused_registration_is_alerted_and_delivered_and_never_fails(tmp_path):
    receiver = Receiver().start()
    try:
        params = replace(
            PARAMS,
            monitor=replace(PARAMS.monitor, store_url="sqlite:///store/p.db"),
            alerts=AlertParams(webhooks=[WebhookParams(url=receiver.url(), format="slack")], backoff_s=0.01),
        )
        logged: list[str] = []
        assert alerts.alert_on_registration(params, tmp_path, registration(promoted=True), log=logged.append) is None
        key = alerts.alert_on_registration(params, tmp_path, registration(promoted=False), log=logged.append)
        assert key == "promotion:finsent-sentiment:7"
        assert receiver.posts[0].body["text"].startswith("[finsent promotion] finsent-sentiment version 7 was not promoted")
        engine = make_engine(f"sqlite:///{tmp_path}/store/p.db")
        assert alerts.read_alerts(engine)[0]["deliveries"][0]["status"] == "delivered"
    finally:
        receiver.stop()
    (tmp_path / "broken").write_text("a file where the store's folder should be")
    broken = replace(params, monitor=replace(params.monitor, store_url="sqlite:///broken/p.db"))
    assert alerts.alert_on_registration(broken, tmp_path, registration(promoted=False), log=logged.append) is None
    assert "not recorded" in logged[-1]


def test_the_command_lists_and_delivers(tmp_path, capsys):
    from finsent.cli import main

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    store = f"sqlite:///{tmp_path}/p.db"
    record(make_engine(store), alerts.sentiment_alert(SENTIMENT))
    base = ["--root", str(tmp_path), "--set", f"monitor.store_url={store}"]
    assert main([*base, "alerts", "list", "--kind", "sentiment"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["key"] for a in listed] == ["sentiment:AAPL:2026-11-30"]
    assert main([*base, "alerts", "deliver"]) == 0  # params.yaml has no webhooks: both deliveries say so
    counts = json.loads(capsys.readouterr().out)
    assert (counts["delivered"], counts["pending"]) == (0, 2)
    assert main([*base, "alerts", "list", "--kind", "weather"]) == 2
    assert capsys.readouterr().err.strip().startswith("finsent: error: alert kind must be one of")

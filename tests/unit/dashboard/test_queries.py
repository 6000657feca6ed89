"""The dashboard's queries on a small known store (SQLite here; the same tests on PostgreSQL:
tests/integration/test_dashboard_postgresql.py), checked against the library's pandas index."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from finsent.dashboard import queries
from finsent.dashboard.queries import DashboardQueryError
from finsent.monitoring.sentiment_index import daily_index
from finsent.monitoring.store import backfill_prediction_tickers, make_engine, prediction_tickers, read_predictions
from testkit import dashboard_store


@pytest.fixture(params=["sqlite"])
def store(tmp_path):
    return dashboard_store.fill(make_engine(f"sqlite:///{tmp_path / 'predictions.db'}"))


def test_index_matches_the_pandas_index_of_the_monitoring_room(store):
    got = queries.read_index(store, ["AAPL", "MSFT", "TSLA"], "2026-03-01", "2026-03-10")
    want = daily_index(read_predictions(store))
    want["day"] = want["day"].astype(str)
    assert got[["ticker", "day", "count", "bullish", "bearish", "neutral"]].values.tolist() == (
        want[["ticker", "day", "count", "bullish", "bearish", "neutral"]].values.tolist()
    )
    assert got["net_sentiment"].round(9).tolist() == want["net_sentiment"].round(9).tolist()
    aapl = got[(got["ticker"] == "AAPL") & (got["day"] == dashboard_store.ALERT_DAY)].iloc[0]
    assert (aapl["count"], aapl["bearish"]) == (5, 3)  # four AAPL texts and the AAPL,MSFT deal


def test_index_range_holds_both_days_and_only_the_asked_tickers(store):
    got = queries.read_index(store, ["TSLA", "MSFT"], "2026-03-09", "2026-03-10")
    assert got[["ticker", "day", "count"]].values.tolist() == [
        ["MSFT", "2026-03-09", 2],
        ["MSFT", "2026-03-10", 2],
        ["TSLA", "2026-03-10", 1],
    ]
    assert queries.read_index(store, [], "2026-03-01", "2026-03-10").empty
    assert queries.read_index(store, ["NOPE"], "2026-03-01", "2026-03-10").empty


def test_volumes_busiest_first(store):
    assert queries.read_volumes(store, "2026-03-01", "2026-03-10") == [
        {"ticker": "AAPL", "count": 50},
        {"ticker": "MSFT", "count": 20},
        {"ticker": "TSLA", "count": 1},
    ]
    assert queries.read_volumes(store, "2026-03-10", "2026-03-10", limit=1) == [{"ticker": "AAPL", "count": 5}]
    assert queries.read_span(store) == (queries.as_date("2026-03-01", "d"), queries.as_date("2026-03-10", "d"))


def test_alerts_of_the_tickers_and_range(store):
    got = queries.read_alerts(store, ["AAPL", "MSFT"], "2026-03-01", "2026-03-10")
    assert [a["key"] for a in got] == ["sentiment:MSFT:2026-03-07", "sentiment:AAPL:2026-03-05", "drift:window-1"]
    aapl = got[1]
    assert (aapl["ticker"], aapl["day"], aapl["direction"]) == ("AAPL", "2026-03-05", "down")
    assert [a["key"] for a in queries.read_alerts(store, ["AAPL"], "2026-03-01", "2026-03-10", other_kinds=False)] == [
        "sentiment:AAPL:2026-03-05"
    ]
    # A ticker that is a prefix of another does not take its alerts.
    assert queries.read_alerts(store, ["AAP"], "2026-01-01", "2026-12-31", other_kinds=False) == []


def test_headlines_behind_a_move_most_influential_first(store):
    down = queries.read_headlines(store, "AAPL", "2026-03-05", "down")
    assert [h["text"] for h in down[:3]] == ["AAPL plunges after the recall", "AAPL falls with the market", "AAPL slips on supply worries"]
    first = down[0]
    assert (first["p_bearish"], first["p_bullish"], first["predicted"], first["model_version"]) == (0.95, 0.02, "bearish", "7")
    assert len(down) == 5
    up = queries.read_headlines(store, "AAPL", "2026-03-05", "up")
    assert up[0]["text"].startswith("AAPL and MSFT sign a deal")
    strongest = queries.read_headlines(store, "AAPL", "2026-03-05", limit=2)
    assert [h["text"] for h in strongest] == ["AAPL plunges after the recall", "AAPL falls with the market"]


def test_requests_that_cannot_be_answered(store):
    with pytest.raises(DashboardQueryError, match="before it starts"):
        queries.read_index(store, ["AAPL"], "2026-03-10", "2026-03-01")
    with pytest.raises(DashboardQueryError, match="ISO date"):
        queries.read_volumes(store, "March", "2026-03-01")
    with pytest.raises(DashboardQueryError, match="at most"):
        queries.clean_tickers([f"T{i}" for i in range(queries.MAX_TICKERS + 1)])
    assert queries.clean_tickers(" AAPL, MSFT,AAPL,") == ["AAPL", "MSFT"]


def test_index_is_read_through_the_ticker_index(store):
    """The statements use the (ticker, published_at) index, never a scan of predictions."""
    if store.dialect.name != "sqlite":
        pytest.skip("the plan is checked on SQLite")
    with store.connect() as conn:
        compiled = queries.index_query(["AAPL"], "2026-03-01", "2026-03-10").compile(store, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "ix_prediction_tickers_ticker_time" in plan and "COVERING" in plan, plan


def test_ticker_rows_are_backfilled_once_for_an_older_store(store):
    with store.begin() as conn:
        expected = conn.execute(select(func.count()).select_from(prediction_tickers)).scalar_one()
        conn.execute(prediction_tickers.delete())
    assert backfill_prediction_tickers(store, chunk_rows=7) == expected == 71
    assert backfill_prediction_tickers(store) == 0  # not empty any more: nothing to do
    with store.begin() as conn:
        conn.execute(prediction_tickers.delete())
    make_engine(store.url.render_as_string(hide_password=False))  # opening an older store fills it
    assert queries.read_volumes(store, "2026-03-01", "2026-03-10")[0] == {"ticker": "AAPL", "count": 50}


def test_news_items_get_their_ticker_rows_in_the_same_transaction(store):
    from datetime import UTC, datetime

    from finsent.monitoring.store import BatchMeta, append_news

    rows = dashboard_store.rows().head(2).assign(published_at=[datetime(2026, 3, 11, 9, tzinfo=UTC)] * 2, tickers=["NVDA", "NVDA, AMD"])
    meta = BatchMeta("news-1", "api", "1" * 64, 2, 0, "finsent-sentiment", "8", datetime(2026, 3, 11, 10, tzinfo=UTC))
    assert append_news(store, rows, ["id:a", "id:b"], meta) == ["id:a", "id:b"]
    assert queries.read_volumes(store, "2026-03-11", "2026-03-11") == [{"ticker": "NVDA", "count": 2}, {"ticker": "AMD", "count": 1}]
    assert {h["model_version"] for h in queries.read_headlines(store, "NVDA", "2026-03-11")} == {"8"}

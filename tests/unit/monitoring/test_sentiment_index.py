"""Per-ticker, per-day net sentiment, alerts and plots."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from finsent.config import MonitorParams
from finsent.monitoring import sentiment_index
from finsent.monitoring.sentiment_index import daily_index, find_alerts, index_records, plot_index
from finsent.monitoring.store import BatchMeta, append_batch, make_engine

P = MonitorParams(alert_threshold=0.5, alert_min_count=2, alert_window_days=3)
BULL, BEAR, NEUTRAL = (0.1, 0.8, 0.1), (0.7, 0.2, 0.1), (0.1, 0.1, 0.8)  # p_bearish, p_bullish, p_neutral


def predictions(rows: list[tuple[str, str, tuple[float, float, float]]]) -> pd.DataFrame:
    """rows of (published_at, tickers, probabilities)"""
    frame = pd.DataFrame(
        {
            "published_at": pd.to_datetime([r[0] for r in rows], utc=True),
            "text": [f"text {i}" for i in range(len(rows))],
            "tickers": [r[1] for r in rows],
            "source": None,
            "label": -1,
            "p_bearish": [r[2][0] for r in rows],
            "p_bullish": [r[2][1] for r in rows],
            "p_neutral": [r[2][2] for r in rows],
        }
    )
    frame["predicted"] = frame[["p_bearish", "p_bullish", "p_neutral"]].to_numpy().argmax(axis=1)
    return frame


def test_daily_index_counts_and_net_sentiment_per_ticker_and_utc_day():
    df = predictions(
        [
            ("2024-05-01T10:00:00Z", "AAPL", BULL),
            ("2024-05-01T23:30:00-02:00", "AAPL,MSFT", BEAR),  # 01:30 UTC on May 2
            ("2024-05-02T08:00:00Z", "AAPL", NEUTRAL),
            ("2024-05-02T09:00:00Z", "", BULL),  # no ticker: not in the index
        ]
    )
    by_prob = daily_index(df, "probabilities")
    assert by_prob[["ticker", "day"]].astype(str).values.tolist() == [
        ["AAPL", "2024-05-01"],
        ["AAPL", "2024-05-02"],
        ["MSFT", "2024-05-02"],
    ]
    aapl_2 = by_prob.iloc[1]
    assert (aapl_2["count"], aapl_2["bearish"], aapl_2["neutral"], aapl_2["bullish"]) == (2, 1, 1, 0)
    assert aapl_2["net_sentiment"] == pytest.approx(((0.2 - 0.7) + (0.1 - 0.1)) / 2)
    by_label = daily_index(df, "labels")
    assert by_label.iloc[1]["net_sentiment"] == pytest.approx(-0.5)
    assert by_label.iloc[0]["net_sentiment"] == pytest.approx(1.0)
    assert by_prob.iloc[0]["net_sentiment"] == pytest.approx(0.7)  # probabilities are smoother than labels


def test_empty_and_tickerless_predictions_give_an_empty_index():
    assert daily_index(predictions([("2024-05-01T10:00:00Z", "", BULL)])).empty


def swing() -> pd.DataFrame:
    """AAPL bullish for two days then bearish; MSFT steady; TSLA swings on too few texts."""
    rows = []
    for day, probs in (("01", BULL), ("02", BULL), ("03", BEAR)):
        rows += [(f"2024-05-{day}T10:00:00Z", "AAPL", probs)] * 3
        rows += [(f"2024-05-{day}T11:00:00Z", "MSFT", NEUTRAL)] * 3
    rows += [("2024-05-01T12:00:00Z", "TSLA", BULL), ("2024-05-02T12:00:00Z", "TSLA", BEAR)]
    return predictions(rows)


def test_alert_fires_on_a_move_beyond_the_threshold_only():
    alerts = find_alerts(daily_index(swing()), P)
    assert [(a.ticker, a.day, a.direction, a.count) for a in alerts] == [("AAPL", "2024-05-03", "down", 3)]
    assert alerts[0].change == pytest.approx(-1.2)
    assert not find_alerts(daily_index(swing()), replace(P, alert_threshold=1.3))


def test_alert_needs_min_count_on_the_day_and_the_baseline():
    assert not find_alerts(daily_index(swing()), replace(P, alert_min_count=4))


def test_trailing_mean_baseline():
    rows = [(f"2024-05-0{d}T10:00:00Z", "AAPL", BULL if d < 4 else NEUTRAL) for d in range(1, 5) for _ in range(2)]
    index = daily_index(predictions(rows))
    trailing = find_alerts(index, replace(P, alert_baseline="trailing_mean", alert_threshold=0.6))
    assert [(a.day, a.baseline_count) for a in trailing] == [("2024-05-04", 6)]
    assert trailing[0].baseline == pytest.approx(0.7)
    # a baseline outside the window is not used
    far = [("2024-05-01T10:00:00Z", "AAPL", BULL)] * 2 + [("2024-05-09T10:00:00Z", "AAPL", BEAR)] * 2
    assert not find_alerts(daily_index(predictions(far)), P)


def test_records_are_json_able_and_plots_are_written(tmp_path):
    index = daily_index(swing())
    alerts = find_alerts(index, P)
    json.dumps(index_records(index))
    png = plot_index(index, alerts, tmp_path / "index.png", max_tickers=2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = plot_index(index, alerts, tmp_path / "index.html")
    assert "AAPL" in html.read_text() and html.stat().st_size > 100_000  # plotly.js inlined
    with pytest.raises(ValueError, match="png or .html"):
        plot_index(index, alerts, tmp_path / "index.svg")


def test_run_reads_the_store_and_writes_json_and_plot(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'predictions.db'}")
    meta = BatchMeta("b1", "news.csv", "f" * 64, 20, 0, "finsent-sentiment", "1", datetime(2024, 5, 4, tzinfo=UTC))
    append_batch(engine, swing(), meta)
    summary = sentiment_index.run(P, engine, tmp_path / "out", start="2024-05-01", end="2024-05-04")
    assert (summary.rows, summary.tickers, summary.days) == (20, 3, 3)
    assert [a["ticker"] for a in summary.alerts] == ["AAPL"]
    payload = json.loads((tmp_path / "out" / "sentiment_index.json").read_text())
    assert payload["alerts"] == summary.alerts and len(payload["series"]) == 8
    assert summary.plot_path.endswith("sentiment_index.png")

"""A small predictions store with known days, headlines and alerts, for the dashboard's tests.

AAPL: four texts a day on 2026-03-01..10, bullish except 2026-03-05 (bearish, "AAPL plunges" the most);
MSFT: two a day, one of them also naming AAPL; TSLA: one text on 2026-03-10. Alerts: AAPL down on
03-05 and MSFT up on 03-07 (in the range), AAPL on 2026-02-01 (outside it), and one drift alert.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Engine

from finsent.config import AlertParams
from finsent.monitoring.alerts import drift_alert, record_draft, sentiment_alert
from finsent.monitoring.store import BatchMeta, append_batch

DAYS = [f"2026-03-{d:02d}" for d in range(1, 11)]
ALERT_DAY = "2026-03-05"
IN_RANGE_ALERTS = 3  # AAPL 03-05, MSFT 03-07 and the drift alert recorded on 03-06


def rows() -> pd.DataFrame:
    out = []

    def add(day: str, hour: int, text: str, tickers: str, p: tuple[float, float, float]) -> None:
        predicted = max(range(3), key=lambda i: p[i])
        out.append(
            {
                "published_at": pd.Timestamp(f"{day} {hour:02d}:00", tz="UTC"),
                "text": text,
                "tickers": tickers,
                "source": "wire",
                "label": -1,
                "predicted": predicted,
                "p_bearish": p[0],
                "p_bullish": p[1],
                "p_neutral": p[2],
            }
        )

    for day in DAYS:
        if day == ALERT_DAY:
            add(day, 9, "AAPL plunges after the recall", "AAPL", (0.95, 0.02, 0.03))
            add(day, 10, "AAPL slips on supply worries", "AAPL", (0.6, 0.1, 0.3))
            add(day, 11, "AAPL falls with the market", "AAPL", (0.8, 0.05, 0.15))
            add(day, 12, "AAPL holds its event", "AAPL", (0.2, 0.3, 0.5))
        else:
            for hour in range(4):
                add(day, 9 + hour, f"AAPL gains {day} #{hour}", "AAPL", (0.1, 0.7, 0.2))
        add(day, 14, f"MSFT steady {day}", "MSFT", (0.2, 0.3, 0.5))
        add(day, 15, f"AAPL and MSFT sign a deal {day}", "AAPL,MSFT", (0.1, 0.6, 0.3))
    add("2026-03-10", 16, "TSLA deliveries beat", "TSLA", (0.05, 0.9, 0.05))
    return pd.DataFrame(out)


def fill(engine: Engine, *, model_version: str = "7") -> Engine:
    """Write the rows (one batch, through ``append_batch``) and the alerts into ``engine``."""
    meta = BatchMeta("b1", "news.csv", "0" * 64, len(rows()), 0, "finsent-sentiment", model_version, datetime(2026, 3, 11, tzinfo=UTC))
    append_batch(engine, rows(), meta)
    params = AlertParams()
    for ticker, day, net, base, count in (
        ("AAPL", ALERT_DAY, -0.3, 0.55, 4),
        ("MSFT", "2026-03-07", 0.4, 0.1, 2),
        ("AAPL", "2026-02-01", 0.5, 0.0, 3),
    ):
        alert = {"ticker": ticker, "day": day, "net_sentiment": net, "baseline": base, "change": net - base, "count": count}
        alert |= {"baseline_count": count, "direction": "up" if net > base else "down"}
        record_draft(engine, params, sentiment_alert(alert), now=datetime.fromisoformat(f"{day}T23:00:00+00:00"))
    drift = drift_alert(
        {"signals_fired": ["prediction"], "details": {}},
        window_end=datetime(2026, 3, 6, tzinfo=UTC),
        model_name="m",
        model_version="7",
        window_id=1,
    )
    record_draft(engine, params, drift, now=datetime(2026, 3, 6, 1, tzinfo=UTC))
    return engine

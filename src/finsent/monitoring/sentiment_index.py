"""Per-ticker, per-day sentiment from the predictions store, and alerts when it moves.

The net sentiment index of a ticker on a day is (bullish - bearish) / count, in [-1, 1]:
- ``index_from="probabilities"`` (default): the mean of ``p_bullish - p_bearish`` over the day's texts.
  Smoother: a text the model is unsure about moves the index a little, not a whole step.
- ``index_from="labels"``: counts of the predicted classes.
A text that names several tickers counts once for each. Days are UTC calendar days of ``published_at``.

An alert fires when a day's index differs from its baseline by at least ``alert_threshold``: the previous
day with enough texts (within ``alert_window_days``), or the mean over the ``alert_window_days`` before it.
Both the day and its baseline need ``alert_min_count`` texts, so one stray headline cannot fire it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from finsent import files, utc
from finsent.config import MonitorParams
from finsent.errors import FinsentError
from finsent.monitoring.store import read_predictions
from finsent.vocabulary import LABELS

_BEARISH, _BULLISH, _NEUTRAL = (LABELS.index(name) for name in ("bearish", "bullish", "neutral"))
INDEX_COLUMNS = ("ticker", "day", "count", "bullish", "bearish", "neutral", "net_sentiment")


class IndexWindowError(FinsentError, ValueError):
    """The requested window holds no time at all (its start is not before its end)."""


@dataclass(frozen=True)
class Alert:
    ticker: str
    day: str  # ISO date
    net_sentiment: float
    baseline: float
    change: float
    count: int
    baseline_count: int
    direction: str  # up | down


@dataclass(frozen=True)
class IndexSummary:
    rows: int  # predictions read
    tickers: int
    days: int
    alerts: list[dict]
    json_path: str
    plot_path: str | None


def explode_tickers(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per (prediction, ticker); predictions without a ticker are dropped."""
    tickers = predictions["tickers"].fillna("").astype(str).str.split(",")
    out = predictions.assign(ticker=tickers).explode("ticker")
    out["ticker"] = out["ticker"].str.strip()
    return out[out["ticker"] != ""].reset_index(drop=True)


def daily_index(predictions: pd.DataFrame, index_from: str = "probabilities") -> pd.DataFrame:
    """Counts and net sentiment per (ticker, day), sorted by ticker then day."""
    if index_from not in {"probabilities", "labels"}:
        raise ValueError(f"index_from must be probabilities or labels, not {index_from!r}")
    rows = explode_tickers(predictions)
    if rows.empty:
        dtypes = ["object", "object", "int64", "int64", "int64", "int64", "float64"]
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(INDEX_COLUMNS, dtypes)})
    rows["day"] = pd.to_datetime(rows["published_at"], utc=True).dt.date
    predicted = rows["predicted"].to_numpy()
    rows["bullish"] = (predicted == _BULLISH).astype("int64")
    rows["bearish"] = (predicted == _BEARISH).astype("int64")
    rows["neutral"] = (predicted == _NEUTRAL).astype("int64")
    if index_from == "probabilities":
        rows["net"] = rows["p_bullish"] - rows["p_bearish"]
    else:
        rows["net"] = rows["bullish"] - rows["bearish"]
    grouped = rows.groupby(["ticker", "day"], sort=True)
    out = grouped.agg(
        count=("net", "size"),
        bullish=("bullish", "sum"),
        bearish=("bearish", "sum"),
        neutral=("neutral", "sum"),
        net_sentiment=("net", "mean"),
    ).reset_index()
    return out.loc[:, list(INDEX_COLUMNS)]


def find_alerts(index: pd.DataFrame, p: MonitorParams) -> list[Alert]:
    """Alerts for every (ticker, day) whose index moved at least ``p.alert_threshold`` from its baseline."""
    alerts: list[Alert] = []
    window = pd.Timedelta(days=p.alert_window_days)
    for ticker, series in index.groupby("ticker", sort=True):
        series = series.sort_values("day")
        days = pd.to_datetime(series["day"]).to_numpy()
        counts = series["count"].to_numpy()
        values = series["net_sentiment"].to_numpy()
        for i in range(len(series)):
            if counts[i] < p.alert_min_count:
                continue
            before = (days < days[i]) & (days >= days[i] - window)
            if p.alert_baseline == "previous_day":
                candidates = np.flatnonzero(before & (counts >= p.alert_min_count))
                if len(candidates) == 0:
                    continue
                j = candidates[-1]
                baseline, baseline_count = float(values[j]), int(counts[j])
            else:  # trailing_mean: the index over all the window's texts (a count-weighted mean)
                baseline_count = int(counts[before].sum())
                if baseline_count < p.alert_min_count:
                    continue
                baseline = float(np.average(values[before], weights=counts[before]))
            change = float(values[i]) - baseline
            if abs(change) >= p.alert_threshold:
                alerts.append(
                    Alert(
                        ticker=str(ticker),
                        day=str(series["day"].iloc[i]),
                        net_sentiment=float(values[i]),
                        baseline=baseline,
                        change=change,
                        count=int(counts[i]),
                        baseline_count=baseline_count,
                        direction="up" if change > 0 else "down",
                    )
                )
    return alerts


def index_records(index: pd.DataFrame) -> list[dict]:
    """JSON-able rows of the index (days as ISO dates)."""
    return [
        {
            "ticker": str(r.ticker),
            "day": str(r.day),
            "count": int(r.count),
            "bullish": int(r.bullish),
            "bearish": int(r.bearish),
            "neutral": int(r.neutral),
            "net_sentiment": float(r.net_sentiment),
        }
        for r in index.itertuples(index=False)
    ]


def busiest_tickers(index: pd.DataFrame, max_tickers: int) -> list[str]:
    totals = index.groupby("ticker")["count"].sum().sort_values(ascending=False, kind="stable")
    return totals.index[:max_tickers].tolist()


def plot_index(index: pd.DataFrame, alerts: list[Alert], path: str | Path, max_tickers: int = 8) -> Path:
    """Plot the net index of the busiest tickers over time, alerts marked; PNG or HTML by suffix."""
    path = Path(path)
    tickers = busiest_tickers(index, max_tickers)
    shown = [a for a in alerts if a.ticker in tickers]
    if path.suffix.lower() == ".html":
        _plot_html(index, tickers, shown, path)
    elif path.suffix.lower() == ".png":
        _plot_png(index, tickers, shown, path)
    else:
        raise ValueError(f"plot path must end in .png or .html, not {path.name}")
    return path


def _plot_png(index: pd.DataFrame, tickers: list[str], alerts: list[Alert], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for ticker in tickers:
        series = index[index["ticker"] == ticker]
        days = pd.to_datetime(series["day"])
        (line,) = ax.plot(days, series["net_sentiment"], marker="o", markersize=3, label=ticker)
        ax_count.plot(days, series["count"], color=line.get_color())
    if alerts:
        ax.scatter(
            pd.to_datetime([a.day for a in alerts]),
            [a.net_sentiment for a in alerts],
            s=90,
            facecolors="none",
            edgecolors="red",
            linewidths=1.5,
            zorder=3,
            label="alert",
        )
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("net sentiment")
    ax.set_title("Net sentiment per ticker and day")
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    ax_count.set_ylabel("texts")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_html(index: pd.DataFrame, tickers: list[str], alerts: list[Alert], path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for ticker in tickers:
        series = index[index["ticker"] == ticker]
        fig.add_trace(
            go.Scatter(
                x=[str(d) for d in series["day"]],
                y=series["net_sentiment"],
                mode="lines+markers",
                name=ticker,
                customdata=series["count"],
                hovertemplate="%{x}: %{y:.2f} (%{customdata} texts)",
            )
        )
    if alerts:
        fig.add_trace(
            go.Scatter(
                x=[a.day for a in alerts],
                y=[a.net_sentiment for a in alerts],
                mode="markers",
                name="alert",
                marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"color": "red", "width": 2}},
                text=[f"{a.ticker}: {a.change:+.2f} vs baseline" for a in alerts],
            )
        )
    fig.update_layout(title="Net sentiment per ticker and day", yaxis={"range": [-1.05, 1.05], "title": "net sentiment"})
    fig.write_html(path, include_plotlyjs=True)  # self-contained: opens offline


def run(
    p: MonitorParams,
    engine: Engine,
    out_dir: str | Path,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    plot_format: str | None = None,
) -> IndexSummary:
    """Read predictions in ``[start, end)``, write ``sentiment_index.json`` and the plot, return the alerts."""
    bounds = {what: utc.aware(v) if isinstance(v, datetime) else utc.parse(v, what) for what, v in (("start", start), ("end", end)) if v}
    if len(bounds) == 2 and bounds["start"] >= bounds["end"]:
        raise IndexWindowError(f"the window is empty: start {start} is not before end {end} (end is exclusive)")
    out_dir = files.ensure_dir(out_dir)
    predictions = read_predictions(engine, start, end)
    index = daily_index(predictions, p.index_from)
    alerts = find_alerts(index, p)
    fmt = plot_format or p.plot_format
    plot_path = None
    if not index.empty:
        with files.atomic_path(out_dir / f"sentiment_index.{fmt}") as tmp:  # a full disk leaves no half plot
            plot_index(index, alerts, tmp, p.plot_max_tickers)
        plot_path = out_dir / f"sentiment_index.{fmt}"
    payload = {
        "index_from": p.index_from,
        "alert_baseline": p.alert_baseline,
        "alert_threshold": p.alert_threshold,
        "alert_min_count": p.alert_min_count,
        "series": index_records(index),
        "alerts": [asdict(a) for a in alerts],
    }
    json_path = out_dir / "sentiment_index.json"
    files.write_json(json_path, payload)
    return IndexSummary(
        rows=len(predictions),
        tickers=int(index["ticker"].nunique()),
        days=int(index["day"].nunique()),
        alerts=[asdict(a) for a in alerts],
        json_path=str(json_path),
        plot_path=str(plot_path) if plot_path else None,
    )

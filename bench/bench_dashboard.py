"""The dashboard's queries on a large store: one ticker over 90 days, before and after the
``prediction_tickers`` index.

Why: the page must open in under a second on a store of a million scored texts. The comma-separated
``predictions.tickers`` column cannot be indexed, so "before" is what the library did without the new
table: ``read_predictions(..., tickers=[T])`` (a ``LIKE '%T%'`` over the range's rows, on the
published_at index) and the pandas index (``sentiment_index.daily_index``). "After" is
``finsent.dashboard.queries`` on the (ticker, published_at) index.

    python bench/bench_dashboard.py                         # 1,000,000 texts (about 3-4 minutes on 2 cores)
    python bench/bench_dashboard.py --rows 100000 --runs 3  # smoke run

What it does:
1. Generates a SQLite store in a temporary folder with ``--rows`` scored texts (one batch, bulk
   inserted with sqlite3 in one transaction): ``--tickers`` tickers drawn Zipf-like (the busiest, T0000,
   names about 7% of texts), 0-2 tickers per text, spread over ``--days`` days, random probabilities;
   one sentiment alert for every 50th (ticker, day) of the 100 busiest tickers. It leaves
   ``prediction_tickers`` empty, so opening the store (``make_engine``) runs the backfill: that is timed.
2. Times, for the busiest ticker over the last 90 days (median of ``--runs`` runs, warm cache): the
   daily index, the ticker list with volumes, the alert list, the headlines behind the busiest day,
   and the whole page: the layout (span + ticker list) + the page callback + the headlines callback,
   as functions and through Flask's test client (JSON of the figure included).
3. Writes ``--out`` (JSON) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from finsent.dashboard import app as dash_app
from finsent.dashboard import queries
from finsent.monitoring.sentiment_index import daily_index
from finsent.monitoring.store import make_engine, read_predictions

END = datetime(2026, 11, 30)


def generate(path: Path, rows: int, n_tickers: int, days: int, seed: int) -> dict[str, Any]:
    """A store with ``rows`` predictions and no ``prediction_tickers`` rows (as before the table)."""
    make_engine(f"sqlite:///{path}").dispose()  # the schema, empty
    rng = np.random.default_rng(seed)
    names = [f"T{i:04d}" for i in range(n_tickers)]
    weights = 1.0 / np.arange(1, n_tickers + 1) ** 0.9
    weights /= weights.sum()
    how_many = rng.choice([0, 1, 2], size=rows, p=[0.05, 0.7, 0.25])
    first = rng.choice(n_tickers, size=rows, p=weights)
    second = rng.choice(n_tickers, size=rows, p=weights)
    seconds = np.sort(rng.integers(0, days * 86400, size=rows))
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=rows)
    start = END - timedelta(days=days)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    scored = "2026-12-01 00:00:00.000000"
    with conn:
        conn.execute(
            "INSERT INTO batches VALUES (?,?,?,?,?,?,?,?,?)",
            ("bench", "bench.csv", "0" * 64, rows, rows, 0, "finsent-sentiment", "7", scored),
        )

        def records():
            for i in range(rows):
                k = int(how_many[i])
                tickers = "" if k == 0 else names[first[i]] if k == 1 or first[i] == second[i] else f"{names[first[i]]},{names[second[i]]}"
                published = (start + timedelta(seconds=int(seconds[i]))).strftime("%Y-%m-%d %H:%M:%S.%f")
                p = probs[i]
                yield (
                    i + 1,
                    "bench",
                    scored,
                    published,
                    f"headline {i} about {tickers or 'the market'}: shares move on the news of the day",
                    tickers,
                    "wire",
                    None,
                    int(np.argmax(p)),
                    float(p[0]),
                    float(p[1]),
                    float(p[2]),
                    "finsent-sentiment",
                    "7",
                )

        conn.executemany("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", records())
        alerts = []
        for t in range(min(100, n_tickers)):
            for d in range(t % 50, days, 50):
                day = (start + timedelta(days=d)).date().isoformat()
                payload = {"ticker": names[t], "day": day, "net_sentiment": -0.4, "baseline": 0.1, "change": -0.5, "direction": "down"}
                alerts.append(
                    (f"sentiment:{names[t]}:{day}", "sentiment", f"{day} 23:00:00.000000", f"{names[t]} moved", json.dumps(payload))
                )
        conn.executemany("INSERT INTO alerts (key, kind, created_at, message, payload) VALUES (?,?,?,?,?)", alerts)
    conn.close()
    return {"tickers": n_tickers, "days": days, "alerts": len(alerts), "busiest": names[0]}


def median_time(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    fn()  # warm: the page cache, imports
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tickers", type=int, default=2000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--range-days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/dashboard_cpu.json")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="finsent-bench-dash-") as tmp:
        path = Path(tmp) / "predictions.db"
        t0 = time.perf_counter()
        info = generate(path, args.rows, args.tickers, args.days, args.seed)
        generate_s = time.perf_counter() - t0
        print(f"generated {args.rows:,} texts in {generate_s:.1f} s", file=sys.stderr)
        t0 = time.perf_counter()
        engine = make_engine(f"sqlite:///{path}")  # runs the backfill of prediction_tickers
        backfill_s = time.perf_counter() - t0
        with engine.connect() as conn:
            ticker_rows = conn.exec_driver_sql("SELECT count(*) FROM prediction_tickers").scalar_one()
        print(f"backfilled {ticker_rows:,} ticker rows in {backfill_s:.1f} s", file=sys.stderr)

        ticker = info["busiest"]
        end_day = END.date() - timedelta(days=1)
        start_day = end_day - timedelta(days=args.range_days - 1)
        start, end = start_day.isoformat(), end_day.isoformat()
        index = queries.read_index(engine, [ticker], start, end)
        busiest_day = str(index.sort_values("count").iloc[-1]["day"])
        hi = datetime.combine(end_day + timedelta(days=1), datetime.min.time())
        lo = datetime.combine(start_day, datetime.min.time())

        def index_before():
            rows = read_predictions(engine, lo, hi, tickers=[ticker])
            out = daily_index(rows)
            return out[out["ticker"] == ticker]

        def volumes_before():
            rows = read_predictions(engine, lo, hi)
            return daily_index(rows).groupby("ticker")["count"].sum().sort_values(ascending=False)

        def headlines_before():
            day = datetime.fromisoformat(busiest_day)
            rows = read_predictions(engine, day, day + timedelta(days=1), tickers=[ticker])
            rows = rows[rows["tickers"].str.split(",").apply(lambda ts: ticker in ts)]
            return rows.assign(net=rows["p_bullish"] - rows["p_bearish"]).sort_values("net").head(queries.HEADLINES)

        app = dash_app.create_app(engine)
        client = app.server.test_client()

        def page_functions():
            dash_app.layout(engine)
            _, alert_rows, _, _ = dash_app.page_view(engine, [ticker], start, end)
            return dash_app.headline_view(engine, "index-graph", {"points": [{"x": busiest_day, "customdata": ticker}]}, None, alert_rows)

        def page_http():
            assert client.get("/_dash-layout").status_code == 200
            names = ("index-graph.figure", "alerts-table.data", "alert-count.children", "summary.children")
            inputs = [
                {"id": "tickers", "property": "value", "value": [ticker]},
                {"id": "dates", "property": "start_date", "value": start},
                {"id": "dates", "property": "end_date", "value": end},
            ]
            body = {
                "output": ".." + "...".join(names) + "..",
                "outputs": [{"id": n.split(".")[0], "property": n.split(".")[1]} for n in names],
                "inputs": inputs,
                "state": [],
                "changedPropIds": ["tickers.value"],
            }
            response = client.post("/_dash-update-component", json=body)
            assert response.status_code == 200, response.data[:300]
            return len(response.data)

        results: dict[str, dict[str, float]] = {}
        measured = [
            ("daily index", index_before, lambda: queries.read_index(engine, [ticker], start, end)),
            ("ticker list with volumes", volumes_before, lambda: queries.read_volumes(engine, start, end, limit=dash_app.TICKER_OPTIONS)),
            ("alert list", None, lambda: queries.read_alerts(engine, [ticker], start, end)),
            ("headlines behind the busiest day", headlines_before, lambda: queries.read_headlines(engine, ticker, busiest_day, "down")),
            ("first/last day (span)", None, lambda: queries.read_span(engine)),
            ("page: layout + page callback + headlines (functions)", None, page_functions),
            ("page: /_dash-layout + page callback over HTTP (test client)", None, page_http),
        ]
        for name, before, after in measured:
            row: dict[str, float] = {}
            row["after_s"], _ = median_time(after, args.runs)
            if before is not None:
                row["before_s"], _ = median_time(before, max(1, min(args.runs, 3)))
            results[name] = row
            print(f"{name}: {row}", file=sys.stderr)
        before_page = sum(results[n]["before_s"] for n in ("daily index", "ticker list with volumes", "headlines behind the busiest day"))
        results["page: index + ticker list + headlines (sum)"] = {
            "before_s": before_page,
            "after_s": sum(results[n]["after_s"] for n in ("daily index", "ticker list with volumes", "headlines behind the busiest day")),
        }
        summary = {
            "rows": args.rows,
            "prediction_tickers_rows": int(ticker_rows),
            "ticker": ticker,
            "ticker_texts_in_range": int(index["count"].sum()),
            "range": [start, end],
            "busiest_day": busiest_day,
            "runs": args.runs,
            "generate_s": round(generate_s, 2),
            "backfill_s": round(backfill_s, 2),
            "store_mb": round(path.stat().st_size / 2**20, 1),
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, SQLite {sqlite3.sqlite_version}",
            **info,
            "queries": {k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()},
        }
        engine.dispose()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print("| query (one ticker, 90 days) | before: LIKE scan + pandas | after: prediction_tickers index |")
    print("|---|---:|---:|")
    for name, r in results.items():
        before = f"{r['before_s'] * 1000:,.0f} ms" if "before_s" in r else "-"
        print(f"| {name} | {before} | {r['after_s'] * 1000:,.1f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

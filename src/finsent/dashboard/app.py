"""The analysts' page: pick tickers and days; see the net sentiment index and the volume over time, the
alerts, and the headlines behind an alert or a day.

A Dash app over the predictions store alone (``finsent.dashboard.queries``): it needs no live service,
since the hourly monitoring flow writes the same store. The layout is rebuilt on each page load, so a
reload shows what was scored since. The callbacks are plain functions of the store and the inputs
(``page_view``, ``ticker_options``, ``headline_view``), tested without a browser; ``create_app`` wires
them to the components. Every asset is served by the app itself, under ``requests_pathname_prefix``
(no CDN), so the page calls only the server that sent it, whatever its host and port.

With an ``explainer`` (``finsent dashboard --explain`` loads the champion for it), clicking a headline
shows why the model gave it its class: its top words, and the headline with each word highlighted
(``finsent.explain``). One explanation per click, never one per page load or per headline listed,
since each runs the model ``explain.n_steps`` times.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from sqlalchemy import Engine

from finsent.dashboard import queries
from finsent.dashboard.queries import DashboardQueryError

if TYPE_CHECKING:  # the page itself needs no torch: only a dashboard started with --explain loads a model
    from finsent.explain.attributions import Explanation

DEFAULT_DAYS = 90  # the range a page opens with: the last 90 days that have texts
TICKER_OPTIONS = 300  # tickers offered in the picker (the busiest of the range)
TITLE = "finsent: market sentiment"
HINT = "Click an alert in the list, or a day on the chart, to see the headlines behind it."
EXPLAIN_HINT = "Click a headline to see which of its words made the model call it what it did."

ALERT_COLUMNS: list[Any] = [  # DataTable column specs
    {"name": "day", "id": "day"},
    {"name": "ticker", "id": "ticker"},
    {"name": "kind", "id": "kind"},
    {"name": "direction", "id": "direction"},
    {"name": "change", "id": "change", "type": "numeric", "format": {"specifier": "+.2f"}},
    {"name": "message", "id": "message"},
]
HEADLINE_COLUMNS: list[Any] = [
    {"name": "published (UTC)", "id": "published_at"},
    {"name": "headline", "id": "text"},
    {"name": "predicted", "id": "predicted"},
    {"name": "p_bullish", "id": "p_bullish", "type": "numeric", "format": {"specifier": ".3f"}},
    {"name": "p_bearish", "id": "p_bearish", "type": "numeric", "format": {"specifier": ".3f"}},
    {"name": "p_neutral", "id": "p_neutral", "type": "numeric", "format": {"specifier": ".3f"}},
    {"name": "model version", "id": "model_version"},
    {"name": "tickers", "id": "tickers"},
]


# --- the callbacks, as plain functions -----------------------------------------------------------------


def default_range(span: tuple[date, date] | None, days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """The last ``days`` days that hold texts (today's when the store is empty)."""
    end = span[1] if span else date.today()
    start = max(span[0], end - timedelta(days=days - 1)) if span else end - timedelta(days=days - 1)
    return start, end


def ticker_options(engine: Engine, start: str, end: str, selected: list[str] | None = None) -> list[dict[str, str]]:
    """The picker's choices for the range, busiest first, labelled with their volume; the selected
    tickers stay offered even when the range has none of their texts."""
    try:
        volumes = queries.read_volumes(engine, start, end, limit=TICKER_OPTIONS)
    except DashboardQueryError:
        volumes = []
    options = [{"label": f"{v['ticker']} ({v['count']:,})", "value": v["ticker"]} for v in volumes]
    offered = {o["value"] for o in options}
    options += [{"label": f"{t} (0)", "value": t} for t in (selected or []) if t not in offered]
    return options


def index_figure(index: Any, alert_rows: list[dict[str, Any]]) -> go.Figure:
    """Net sentiment per ticker and day above, the texts per day below; sentiment alerts ringed.
    Every point carries its ticker (``customdata``), so a click names a ticker and a day."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    palette = qualitative.Plotly
    for n, (ticker, series) in enumerate(index.groupby("ticker", sort=False)):
        days, color = list(series["day"]), palette[n % len(palette)]
        fig.add_trace(
            go.Scatter(
                x=days,
                y=list(series["net_sentiment"]),
                mode="lines+markers",
                line={"color": color},
                name=str(ticker),
                legendgroup=str(ticker),
                customdata=[ticker] * len(days),
                hovertemplate="%{customdata} %{x}<br>net %{y:+.3f}<extra></extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                x=days,
                y=list(series["count"]),
                name=f"{ticker} texts",
                marker={"color": color},
                legendgroup=str(ticker),
                showlegend=False,
                customdata=[ticker] * len(days),
                hovertemplate="%{customdata} %{x}<br>%{y} texts<extra></extra>",
            ),
            row=2,
            col=1,
        )
    ringed = [a for a in alert_rows if a["kind"] == "sentiment" and a["net_sentiment"] is not None]
    if ringed:
        fig.add_trace(
            go.Scatter(
                x=[a["day"] for a in ringed],
                y=[a["net_sentiment"] for a in ringed],
                mode="markers",
                name="alert",
                marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "crimson", "width": 2}},
                customdata=[a["ticker"] for a in ringed],
                hovertemplate="alert: %{customdata} %{x}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    fig.update_yaxes(title_text="net sentiment", range=[-1.05, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="texts", row=2, col=1)
    fig.update_layout(barmode="group", margin={"l": 60, "r": 20, "t": 30, "b": 30}, height=520, legend={"orientation": "h"})
    return fig


def page_view(
    engine: Engine, tickers: list[str] | None, start: str | None, end: str | None
) -> tuple[go.Figure, list[dict[str, Any]], str, str]:
    """For the chosen tickers and days: the figure, the alert rows, the alert count line and a summary
    line. A request that cannot be answered says why in the summary and shows nothing."""
    empty = go.Figure()
    try:
        chosen = queries.clean_tickers(tickers)
        if not start or not end:
            raise DashboardQueryError("pick a date range")
        alert_rows = queries.read_alerts(engine, chosen, start, end)
        if not chosen:
            return empty, alert_rows, f"{len(alert_rows)} alerts", "Pick one or more tickers."
        index = queries.read_index(engine, chosen, start, end)
    except DashboardQueryError as exc:
        return empty, [], "0 alerts", str(exc)
    texts = int(index["count"].sum())
    summary = f"{texts:,} texts on {index['day'].nunique()} days for {', '.join(chosen)}, {start} to {end} (UTC)"
    return index_figure(index, alert_rows), alert_rows, f"{len(alert_rows)} alerts", summary


def headline_view(
    engine: Engine,
    trigger: str | None,
    click_data: dict[str, Any] | None,
    active_cell: dict[str, Any] | None,
    alert_rows: list[dict[str, Any]] | None,
) -> tuple[list[dict[str, Any]], str]:
    """The headlines behind what was clicked last (``trigger``: the alert table or the chart), most
    influential first, and a title saying what they are behind."""
    if trigger == "alerts-table" and active_cell:
        rows = alert_rows or []
        row_id = active_cell.get("row_id")
        found = [a for a in rows if a["id"] == row_id] if row_id is not None else []
        if not found and isinstance(active_cell.get("row"), int) and 0 <= active_cell["row"] < len(rows):
            found = [rows[active_cell["row"]]]
        if not found:
            return [], HINT
        alert = found[0]
        if alert["kind"] != "sentiment" or not alert["ticker"]:
            return [], f"A {alert['kind']} alert has no headlines behind it: {alert['message']}"
        headlines = queries.read_headlines(engine, alert["ticker"], alert["day"], alert["direction"])
        move = f", {alert['direction']} {alert['change']:+.2f}" if isinstance(alert["change"], int | float) else ""
        return (
            headlines,
            f"Headlines behind the alert {alert['ticker']} on {alert['day']}{move} ({len(headlines)} shown, most influential first)",
        )
    if trigger == "index-graph" and click_data and click_data.get("points"):
        point = click_data["points"][0]
        ticker, day = point.get("customdata"), str(point.get("x", ""))[:10]
        if not ticker or not day:
            return [], HINT
        try:
            headlines = queries.read_headlines(engine, str(ticker), day)
        except DashboardQueryError as exc:
            return [], str(exc)
        return headlines, f"Headlines behind {ticker} on {day} ({len(headlines)} shown, strongest first)"
    return [], HINT


def explanation_view(
    explainer: Callable[[str], Explanation], active_cell: dict[str, Any] | None, rows: list[dict[str, Any]] | None, top_k: int = 5
) -> tuple[str, str]:
    """For the headline clicked in the headline table: a self-contained HTML page with its words
    highlighted (for an iframe's ``srcdoc``), and a title naming its class and top words."""
    from finsent.explain.html import explanation_html

    rows = rows or []
    row = active_cell.get("row") if active_cell else None
    if not isinstance(row, int) or not 0 <= row < len(rows) or not str(rows[row].get("text") or "").strip():
        return "", EXPLAIN_HINT
    explanation = explainer(str(rows[row]["text"]))
    top = ", ".join(f"“{w.word}”" for w in explanation.top_words(top_k)) or "none"
    title = f"Why {explanation.label} (p = {explanation.probability:.2f}): top words {top}"
    return explanation_html(explanation, top_k=top_k), title


# --- the app ---------------------------------------------------------------------------------------------


def layout(engine: Engine, explains: bool = False) -> Any:
    """The page as it opens: the last ``DEFAULT_DAYS`` days with texts and the busiest ticker; with
    ``explains``, a panel under the headlines for the explanation of the one clicked."""
    from dash import dcc, html
    from dash.dash_table.DataTable import DataTable

    span = queries.read_span(engine)
    start, end = default_range(span)
    options = ticker_options(engine, start.isoformat(), end.isoformat())
    chosen = [options[0]["value"]] if options else []
    cell = {"textAlign": "left", "whiteSpace": "normal", "height": "auto", "fontFamily": "sans-serif"}
    return html.Div(
        [
            html.H2(TITLE),
            html.Div(
                [
                    dcc.Dropdown(
                        id="tickers", options=options, value=chosen, multi=True, placeholder="tickers", style={"minWidth": "22em"}
                    ),
                    dcc.DatePickerRange(
                        id="dates",
                        start_date=start.isoformat(),
                        end_date=end.isoformat(),
                        min_date_allowed=span[0].isoformat() if span else None,
                        max_date_allowed=span[1].isoformat() if span else None,
                        display_format="YYYY-MM-DD",
                    ),
                ],
                style={"display": "flex", "gap": "1em", "alignItems": "center"},
            ),
            html.Div(id="summary", style={"margin": "0.5em 0"}),
            dcc.Loading(dcc.Graph(id="index-graph", config={"displaylogo": False})),
            html.H3(["Alerts ", html.Span(id="alert-count", style={"fontWeight": "normal", "fontSize": "0.8em"})]),
            DataTable(
                id="alerts-table",
                columns=ALERT_COLUMNS,
                data=[],
                page_size=15,
                style_data={"cursor": "pointer"},
                style_cell=cell,
            ),
            html.H3(HINT, id="headlines-title"),
            DataTable(id="headlines-table", columns=HEADLINE_COLUMNS, data=[], page_size=25, style_cell=cell),
            *(
                [
                    html.H3(EXPLAIN_HINT, id="explanation-title"),
                    html.Iframe(id="explanation", srcDoc="", style={"width": "100%", "height": "16em", "border": "none"}),
                ]
                if explains
                else []
            ),
        ],
        style={"margin": "1em 2em", "fontFamily": "sans-serif"},
    )


def create_app(
    engine: Engine,
    *,
    requests_pathname_prefix: str = "/",
    explainer: Callable[[str], Explanation] | None = None,
    top_k: int = 5,
) -> Any:
    """The Dash app over ``engine``; its Flask server is ``app.server`` (a WSGI app). With ``explainer``
    (text -> explanation; the server calls it from several threads), a clicked headline is explained.

    ``requests_pathname_prefix`` is the path the app is served and reached under (``/``, or
    ``/sentiment/`` behind a proxy that forwards that path): the page's requests go to that path on
    its own origin, so any host and port work."""
    from dash import Dash, Input, Output, State, ctx

    if not requests_pathname_prefix.startswith("/") or not requests_pathname_prefix.endswith("/"):
        raise DashboardQueryError(f"the path prefix must start and end with '/', not {requests_pathname_prefix!r}")
    app = Dash(
        __name__,
        title=TITLE,
        routes_pathname_prefix=requests_pathname_prefix,
        requests_pathname_prefix=requests_pathname_prefix,
        serve_locally=True,
        update_title="",  # no "Updating..." in the tab while a callback runs
    )
    app.layout = lambda: layout(engine, explains=explainer is not None)

    @app.callback(
        Output("tickers", "options"),
        Input("dates", "start_date"),
        Input("dates", "end_date"),
        State("tickers", "value"),
        prevent_initial_call=True,
    )
    def _options(start, end, selected):
        return ticker_options(engine, start, end, selected)

    @app.callback(
        Output("index-graph", "figure"),
        Output("alerts-table", "data"),
        Output("alert-count", "children"),
        Output("summary", "children"),
        Input("tickers", "value"),
        Input("dates", "start_date"),
        Input("dates", "end_date"),
    )
    def _page(tickers, start, end):
        return page_view(engine, tickers, start, end)

    @app.callback(
        Output("headlines-table", "data"),
        Output("headlines-title", "children"),
        Input("index-graph", "clickData"),
        Input("alerts-table", "active_cell"),
        State("alerts-table", "data"),
        prevent_initial_call=True,
    )
    def _headlines(click_data, active_cell, alert_rows):
        return headline_view(engine, ctx.triggered_id, click_data, active_cell, alert_rows)

    if explainer is not None:

        @app.callback(
            Output("explanation", "srcDoc"),
            Output("explanation-title", "children"),
            Input("headlines-table", "active_cell"),
            State("headlines-table", "data"),
            prevent_initial_call=True,
        )
        def _explanation(active_cell, rows):
            return explanation_view(explainer, active_cell, rows, top_k)

    return app

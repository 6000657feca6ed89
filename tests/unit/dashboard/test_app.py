"""The dashboard's callbacks as plain functions, and the app over HTTP through Flask's test client and
a real server on a free port (no browser: tests/integration/test_dashboard_browser.py)."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from finsent.dashboard import app as dash_app
from finsent.dashboard.queries import DashboardQueryError
from finsent.dashboard.server import DashboardBindError, make_server
from finsent.monitoring.store import make_engine
from testkit import dashboard_store


@pytest.fixture
def store(tmp_path):
    return dashboard_store.fill(make_engine(f"sqlite:///{tmp_path / 'predictions.db'}"))


def test_page_view_draws_the_index_volume_and_alerts(store):
    fig, alert_rows, count, summary = dash_app.page_view(store, ["AAPL", "MSFT"], "2026-03-01", "2026-03-10")
    names = [t.name for t in fig.data]
    assert names == ["AAPL", "AAPL texts", "MSFT", "MSFT texts", "alert"]
    assert list(fig.data[0].x) == dashboard_store.DAYS and fig.data[0].customdata[0] == "AAPL"
    assert count == f"{dashboard_store.IN_RANGE_ALERTS} alerts" and len(alert_rows) == dashboard_store.IN_RANGE_ALERTS
    assert summary.startswith("70 texts on 10 days for AAPL, MSFT")
    assert list(fig.data[-1].x) == ["2026-03-07", "2026-03-05"]  # the sentiment alerts, ringed


def test_page_view_says_why_it_shows_nothing(store):
    fig, rows, count, summary = dash_app.page_view(store, ["AAPL"], "2026-03-10", "2026-03-01")
    assert (len(fig.data), rows, count) == (0, [], "0 alerts") and "before it starts" in summary
    fig, rows, _, summary = dash_app.page_view(store, [], "2026-03-01", "2026-03-10")
    assert len(fig.data) == 0 and summary == "Pick one or more tickers." and len(rows) == 1  # the drift alert


def test_headlines_behind_an_alert_and_a_day(store):
    _, alert_rows, _, _ = dash_app.page_view(store, ["AAPL", "MSFT"], "2026-03-01", "2026-03-10")
    aapl = next(a for a in alert_rows if a["key"] == "sentiment:AAPL:2026-03-05")
    rows, title = dash_app.headline_view(store, "alerts-table", None, {"row": 0, "column": 0, "row_id": aapl["id"]}, alert_rows)
    assert rows[0]["text"] == "AAPL plunges after the recall" and rows[0]["model_version"] == "7"
    assert "AAPL on 2026-03-05, down" in title
    drift = next(a for a in alert_rows if a["kind"] == "drift")
    rows, title = dash_app.headline_view(store, "alerts-table", None, {"row": 2, "row_id": drift["id"]}, alert_rows)
    assert rows == [] and title.startswith("A drift alert has no headlines")
    click = {"points": [{"x": "2026-03-10", "y": 0.5, "customdata": "TSLA"}]}
    rows, title = dash_app.headline_view(store, "index-graph", click, None, alert_rows)
    assert [r["text"] for r in rows] == ["TSLA deliveries beat"] and "TSLA on 2026-03-10" in title
    assert dash_app.headline_view(store, None, None, None, alert_rows) == ([], dash_app.HINT)


def test_ticker_options_keep_the_selected(store):
    options = dash_app.ticker_options(store, "2026-03-01", "2026-03-09", ["TSLA"])
    assert [o["value"] for o in options] == ["AAPL", "MSFT", "TSLA"]
    assert options[0]["label"] == "AAPL (45)" and options[-1]["label"] == "TSLA (0)"


def _post(client, output: str, inputs: list[dict], state: list[dict] | None = None):
    outputs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in output.strip(".").split("...")]
    body = {
        "output": output,
        "outputs": outputs,
        "inputs": inputs,
        "state": state or [],
        "changedPropIds": [f"{i['id']}.{i['property']}" for i in inputs],
    }
    return client.post("/_dash-update-component", json=body)


def test_the_app_serves_its_layout_and_callbacks(store):
    app = dash_app.create_app(store)
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    layout = json.dumps(client.get("/_dash-layout").get_json())
    assert '"AAPL (50)"' in layout and "2026-03-01" in layout and "2026-03-10" in layout
    response = _post(
        client,
        "..index-graph.figure...alerts-table.data...alert-count.children...summary.children..",
        [
            {"id": "tickers", "property": "value", "value": ["AAPL"]},
            {"id": "dates", "property": "start_date", "value": "2026-03-01"},
            {"id": "dates", "property": "end_date", "value": "2026-03-10"},
        ],
    )
    assert response.status_code == 200, response.data[:500]
    assert response.get_json()["response"]["alert-count"]["children"] == "2 alerts"  # AAPL's and the drift alert


def test_a_real_server_on_a_free_port_serves_pages_that_call_it_back(store):
    app = dash_app.create_app(store, requests_pathname_prefix="/sentiment/")
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/sentiment/", timeout=10) as page:
            html = page.read().decode()
        config = json.loads(html.split('<script id="_dash-config" type="application/json">')[1].split("</script>")[0])
        assert config["requests_pathname_prefix"] == "/sentiment/"  # same origin: whatever the host and port
        assert "http://" not in html and "https://" not in html.replace("https://plotly", "")  # no CDN, no other server
        with urllib.request.urlopen(f"{base}/sentiment/_dash-layout", timeout=10) as layout:
            assert b"AAPL" in layout.read()
        with pytest.raises(DashboardBindError):
            make_server(app, "127.0.0.1", server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_bad_path_prefix_is_refused(store):
    with pytest.raises(DashboardQueryError, match="start and end"):
        dash_app.create_app(store, requests_pathname_prefix="sentiment")

"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Why Playwright over Selenium: it speaks to Chromium directly over the DevTools protocol (no
chromedriver whose version must match the browser), waits for Dash's asynchronous callbacks by
itself (``expect(...).to_contain_text``), and reports console messages and uncaught page errors as
events. It is pointed at the system's Chromium (``executable_path``); ``playwright install`` is never
needed. The test skips, saying why, only when no Chromium is found. Screenshots go to
artifacts/screenshots/ in the repository.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from finsent.dashboard.app import create_app
from finsent.dashboard.server import make_server
from finsent.monitoring.store import make_engine
from testkit import dashboard_store
from testkit.browser import headless_page

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"


@pytest.fixture
def dashboard_url(tmp_path):
    engine = dashboard_store.fill(make_engine(f"sqlite:///{tmp_path / 'predictions.db'}"))
    server = make_server(create_app(engine), "127.0.0.1", 0)  # a free port, never the default 8050
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        engine.dispose()


def test_dashboard_in_headless_chromium(dashboard_url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with headless_page(1400, 1300) as browsed:
        page, expect = browsed.page, browsed.expect

        page.goto(dashboard_url)
        # Opens on the busiest ticker over the store's last days: AAPL's alert and the drift alert.
        expect(page.locator("#alert-count")).to_have_text("2 alerts")
        expect(page.locator("#summary")).to_contain_text("50 texts on 10 days for AAPL")
        expect(page.locator("#index-graph .scatterlayer .trace").first).to_be_visible()
        page.screenshot(path=str(SHOTS / "dashboard-open.png"), full_page=True)

        page.locator("#tickers").click()  # the picker offers the store's tickers with their volumes
        for label in ("MSFT (20)", "TSLA (1)"):
            expect(page.get_by_text(label, exact=True)).to_be_visible()
        page.get_by_text("MSFT (20)", exact=True).click()
        page.keyboard.press("Escape")
        expect(page.locator("#alert-count")).to_have_text(f"{dashboard_store.IN_RANGE_ALERTS} alerts")
        expect(page.locator("#alerts-table")).to_contain_text("2026-03-07")  # MSFT's alert

        page.locator("#alerts-table td", has_text=dashboard_store.ALERT_DAY).first.click()
        expect(page.locator("#headlines-title")).to_contain_text(f"AAPL on {dashboard_store.ALERT_DAY}, down")
        headlines = page.locator("#headlines-table")
        expect(headlines).to_contain_text("AAPL plunges after the recall")
        expect(headlines.locator("tr").nth(1)).to_contain_text("0.950")  # its p_bearish, most influential first
        expect(headlines).to_contain_text("bearish")
        page.screenshot(path=str(SHOTS / "dashboard-alert-headlines.png"), full_page=True)
    assert browsed.problems == [], browsed.problems
    port = dashboard_url.split(":")[2].rstrip("/")
    assert all(url.startswith(f"http://127.0.0.1:{port}/") for url in browsed.requests), [u for u in browsed.requests if port not in u]

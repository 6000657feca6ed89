"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Why Playwright over Selenium: it speaks to Chromium directly over the DevTools protocol (no
chromedriver whose version must match the browser), waits for Dash's asynchronous callbacks by
itself (``expect(...).to_contain_text``), and reports console messages and uncaught page errors as
events. It is pointed at the system's Chromium (``executable_path``); ``playwright install`` is never
needed. The test skips, saying why, only when no Chromium is found. Screenshots go to
artifacts/screenshots/ in the repository.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from testkit import dashboard_store

from finsent.dashboard.app import create_app
from finsent.dashboard.server import make_server
from finsent.monitoring.store import make_engine

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"


def find_chromium() -> str | None:
    for candidate in (os.environ.get("FINSENT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


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
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set FINSENT_CHROMIUM to a Chrome or Chromium executable)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (test extra) is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.set_default_timeout(30_000)
            expect = sync_api.expect

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
        finally:
            browser.close()
    assert problems == [], problems
    port = dashboard_url.split(":")[2].rstrip("/")
    assert all(url.startswith(f"http://127.0.0.1:{port}/") for url in requests), [u for u in requests if port not in u]

"""A headless Chromium page for the browser tests: Debian's ``chromium`` (or ``FINSENT_CHROMIUM``)
driven by Playwright, pointed at that executable (``playwright install`` is never needed; its download
cannot work here). The page records console errors and uncaught page errors in ``problems``."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


def find_chromium() -> str | None:
    for candidate in (os.environ.get("FINSENT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@dataclass
class Browsed:
    page: Any  # playwright.sync_api.Page
    expect: Any  # playwright.sync_api.expect
    problems: list[str] = field(default_factory=list)  # console errors and page errors, in order
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


@contextlib.contextmanager
def headless_page(width: int = 1400, height: int = 1300) -> Iterator[Browsed]:
    """Skips the test, saying why, when no Chromium or no playwright package is there."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set FINSENT_CHROMIUM to a Chrome or Chromium executable)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (test extra) is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            browsed = Browsed(page, sync_api.expect)
            page.on("console", lambda m: browsed.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: browsed.problems.append(f"page error: {e}"))
            page.on("request", lambda r: browsed.requests.append(r.url))
            page.set_default_timeout(30_000)
            yield browsed
        finally:
            browser.close()

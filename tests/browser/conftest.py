"""Browser fixtures: Playwright driving Debian's chromium (Playwright cannot download its own browser
here; scripts/ensure_services.sh installs chromium), screenshots saved under test-output/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.stack import REPO

CHROMIUM = Path(os.environ.get("FITEXPLAIN_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("FITEXPLAIN_TEST_OUTPUT", REPO / "test-output")) / "screenshots"


@pytest.fixture(scope="package")  # not session: sync Playwright keeps an event loop running meanwhile
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run scripts/ensure_services.sh (make test does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test; any JavaScript dialog other than our confirmations
    is recorded on `page.alerts` (a script injected through user data would show there)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    alerts: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog):  # type: ignore[no-untyped-def]
        if dialog.type != "confirm":
            alerts.append(dialog.message)
        dialog.accept()

    opened.on("dialog", on_dialog)
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.alerts = alerts  # type: ignore[attr-defined]
    opened.errors = errors  # type: ignore[attr-defined]
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

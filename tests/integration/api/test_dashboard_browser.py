"""The dashboard in real headless Chromium (Debian's, driven by Playwright; no browser download)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import BARS, ApiEnv, make_fill, make_signal
from playwright.sync_api import Browser, Page, expect, sync_playwright

from flinktrade.events import Side

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
README_IMAGE = ROOT / "docs" / "img" / "dashboard.png"
DEADLINE_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp: Playwright evaluates its wait conditions as strings, which the page's CSP forbids
    context = browser.new_context(viewport={"width": 1360, "height": 1000}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def test_dashboard_live(api_env: ApiEnv, page: Page) -> None:
    seeded = api_env.seeded
    store = api_env.store()  # the executor's fills behind the positions table
    try:
        for fill in [*seeded.fills, make_fill(seeded.signals[2], qty=7)]:
            store.add_fill(fill)
    finally:
        store.close()
    page.goto(f"{api_env.server.url}?token={api_env.token}")
    page.wait_for_function("window.ftDashboard && window.ftDashboard.ready", timeout=DEADLINE_MS)
    assert "token" not in page.url  # removed from the address bar and history
    expect(page.locator("#connection")).to_have_text("live")

    # the chart has the first symbol's candles, drawn by lightweight-charts
    assert page.evaluate("window.ftDashboard.symbol()") == "AAA"
    page.wait_for_function(
        f"window.ftDashboard.seriesLength() === {BARS['AAA']}", timeout=DEADLINE_MS
    )
    expect(page.locator("#chart canvas").first).to_be_visible()
    seeded_markers = page.evaluate("window.ftDashboard.markers().map(m => m.id)")
    assert {f"signal:{s.id}" for s in api_env.seeded.signals if s.symbol == "AAA"} <= set(
        seeded_markers
    )
    expect(page.locator("#alerts tr.severity-critical")).to_have_count(1)
    expect(page.locator("#orders tbody tr")).to_have_count(2)
    expect(page.locator("#news tbody tr")).to_have_count(3)
    expect(page.locator('#positions tr[data-id="BBB"]')).to_contain_text("7")
    # the per-strategy books: one row and one equity line per strategy that has a fill
    strategies = sorted({f.strategy for f in seeded.fills} | {seeded.signals[2].strategy})
    expect(page.locator("#strategies tbody tr")).to_have_count(len(strategies))
    expect(page.locator('#strategies tr[data-id="bollinger_breakout"]')).to_contain_text(
        "bollinger"
    )
    page.wait_for_function(
        f"window.ftDashboard.equityLines().length === {len(strategies)}", timeout=DEADLINE_MS
    )
    assert sorted(page.evaluate("window.ftDashboard.equityLines()")) == strategies

    # a signal written to the topic now appears as a marker and in the table, without reload
    bar = api_env.seeded.bars["AAA"][110]
    signal = make_signal("AAA", bar, Side.SELL, "browser_test")
    api_env.producer.send(signal, api_env.settings.api.topics.signals)
    api_env.producer.flush(10)
    page.wait_for_function(
        f"window.ftDashboard.markers().some(m => m.id === 'signal:{signal.id}'"
        f" && m.time === {bar.ts // 1000} && m.shape === 'arrowDown')",
        timeout=DEADLINE_MS,
    )
    row = page.locator(f'#signals tr[data-id="{signal.id}"]')
    expect(row).to_contain_text("browser_test")
    expect(row).to_contain_text("sell")

    # the halt button sets and clears the executor's kill switch
    button = page.locator("#halt")
    expect(button).to_have_text("Halt trading")
    button.click()
    expect(page.locator("#executor")).to_have_text("executor halted")
    expect(button).to_have_text("Resume trading")
    store = api_env.store()
    try:
        assert store.halted() == "halted from the dashboard"
    finally:
        store.close()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-halted.png"), full_page=True)
    button.click()
    expect(page.locator("#executor")).to_have_text("executor running")
    store = api_env.store()
    try:
        assert store.halted() is None
    finally:
        store.close()

    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(README_IMAGE))


def test_dashboard_asks_for_the_token(api_env: ApiEnv, page: Page) -> None:
    page.goto(api_env.server.url)
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", "wrong")
    page.click("#login button")
    expect(page.locator("#login-error")).to_have_text("wrong token")
    page.fill("#token", api_env.token)
    page.click("#login button")
    page.wait_for_function("window.ftDashboard.ready", timeout=DEADLINE_MS)
    expect(page.locator("#dashboard")).to_be_visible()

"""The dashboard in headless Chromium against the running stack: the page shows the API's real numbers.

The page refreshes every few seconds, so each check polls the page and the API until they agree (with a
deadline) rather than comparing one reading of each. A full-page screenshot is kept as a test artifact in
MERCURY_TEST_ARTIFACTS (default `artifacts/` at the repository root).
"""
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import gateway, post_mail, unique_subject, wait_for, wait_for_event

CHROMIUM = Path("/usr/bin/chromium")
# Headless as root, on a machine whose only network is the loopback: no sandbox, no background connections
# (Chromium's own calls home would be refused and retried). Playwright gives it a new empty profile.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("MERCURY_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))
WINDOW_MS = 3600 * 1000  # the page's default window


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (bash deploy/install-system-deps.sh --test)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; JavaScript errors on it fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shown(page: Page, selector: str) -> str | None:
    """The raw number behind a figure on the page (its data-value), or None while it is not drawn."""
    node = page.query_selector(selector)
    value = node.get_attribute("data-value") if node else None
    return value or None


def page_errors(page: Page) -> str:
    return f"errors shown on the page: {page.inner_text('#errors') or 'none'}"


def agreeing(page: Page, selector: str, expected: Callable[[], str], timeout: float = 30.0) -> tuple[str | None, str]:
    """The page's figure and the API's answer, once they agree or at the deadline (the page refreshes every 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        seen, wanted = shown(page, selector), expected()
        if seen == wanted or time.monotonic() > deadline:
            return seen, wanted
        time.sleep(0.5)


def api_providers(api: str) -> dict[str, dict]:
    since = int(time.time() * 1000) - WINDOW_MS
    rows = gateway.get(f"{api}/analytics/providers", params={"since": since}, timeout=10).json()["providers"]
    return {row["provider"]: row for row in rows}


def test_the_page_shows_the_apis_numbers_and_a_mails_trace(stack, api, sandbox, page):
    ids = [post_mail(api, unique_subject("dashboard")) for _ in range(5)]
    for mail_id in ids:
        wait_for_event(api, mail_id, "sent")
    wait_for(lambda: sum(p["sent"] for p in api_providers(api).values()) >= len(ids), what="the sends in ClickHouse")

    page.goto(f"{stack.config.api_url}/dashboard")
    page.wait_for_function("document.getElementById('errors').innerText.includes('an API key is required')")
    page.fill("#api-key", stack.admin_key)
    page.click('[data-testid="use-key"]')
    for provider in api_providers(api):
        page_sent, api_sent = agreeing(page, f'[data-provider="{provider}"][data-field="sent"]',
                                       lambda: str(api_providers(api)[provider]["sent"]))
        assert page_sent == api_sent, f"{provider} sent: page {page_sent}, API {api_sent}; {page_errors(page)}"
        assert page.get_attribute(f'.badge[data-provider="{provider}"]',
                                  "data-value") in {"closed", "open", "half_open"}

    total = wait_for(lambda: shown(page, '[data-field="lag-total"]'), what="the lag total")
    assert int(total) >= 0
    for group in ("mercury-dispatcher", "mercury-analytics"):
        assert int(shown(page, f'.lag-group h3 [data-group="{group}"][data-field="lag"]')) >= 0
    assert page.query_selector('tr[data-group="mercury-dispatcher"][data-topic="mail.requests"]')
    assert int(wait_for(lambda: shown(page, '[data-field="unfinished"]'), what="the stuck mail count")) >= 0
    delivered = shown(page, '[data-metric="delivery_time"][data-field="count"]')
    assert delivered is not None and int(delivered) >= len(ids)
    assert page.inner_text("#errors") == "", "the API answered every request"

    wait_for(lambda: gateway.get(f"{api}/analytics/mails/{ids[0]}/trace", timeout=10).json()["feedback"],
             what="the provider's webhook on the trace")
    page.fill("#mail-id", ids[0])
    page.click("#mail-search button")
    page.wait_for_selector('#trace tr[data-event="sent"]', timeout=15_000)
    assert page.is_visible('#trace tr[data-event="accepted"]')
    assert page.is_visible('#trace tr[data-feedback="delivered"]')
    assert page.get_attribute('#trace [data-field="trace-status"]', "data-value") == "delivered"
    assert f"mail={ids[0]}" in page.url

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_a_mail_link_opens_its_trace_and_an_unknown_id_is_not_found(stack, api, sandbox, page):
    mail_id = post_mail(api, unique_subject("dashboard link"))
    wait_for_event(api, mail_id, "sent")

    page.add_init_script(f"sessionStorage.setItem('mercury-api-key', {stack.admin_key!r})")
    page.goto(f"{stack.config.api_url}/dashboard?mail={mail_id}")
    page.wait_for_selector('#trace tr[data-event="sent"]', timeout=15_000)
    events = [row.get_attribute("data-event") for row in page.query_selector_all("#trace tr[data-event]")]
    assert events[0] == "accepted" and "dispatched" in events and events[-1] == "sent"

    page.goto(f"{stack.config.api_url}/dashboard?mail=no-such-mail")
    assert "no-such-mail" in page.wait_for_selector('[data-testid="trace-not-found"]', timeout=15_000).inner_text()

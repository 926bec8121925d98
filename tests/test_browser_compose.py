"""Compose, schedule and the digest page in Chromium at laptop and phone width, photographed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.admin_helpers import EMAIL
from tests.browser import ARTIFACTS
from tests.test_browser_admin import SIZES, console, log_in, shoot  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.integration]
SHOTS = ARTIFACTS / "console"


def test_the_author_schedules_a_digest_then_sends_it_now(browser, console):  # noqa: F811
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    base = console
    pages = {size: browser.new_context(viewport=viewport).new_page() for size, viewport in SIZES.items()}
    for page in pages.values():
        log_in(page, base)
    laptop = pages["laptop"]
    shoot(pages, "compose", f"{base}/admin/digests")
    titles = laptop.locator(".post-choice strong").all_inner_texts()
    assert titles[0].endswith("Layoff in an Interview?") and titles[1].endswith("Turned Down?")  # newest first

    laptop.click("#compose button[type=submit]")
    laptop.wait_for_url(f"{base}/admin/digests/preview*")
    assert laptop.locator("h1").inner_text() == "Career Q&A: Should I Mention a Layoff in an Interview?, and 1 more"
    assert laptop.locator("input[name=to]").input_value() == EMAIL
    pages["phone"].goto(laptop.url)
    shoot(pages, "compose-preview")

    when = datetime.now(timezone.utc) + timedelta(days=1)
    laptop.fill("input[name=send_at]", when.strftime("%Y-%m-%dT%H:%M"))
    laptop.get_by_role("button", name="Schedule").click()
    laptop.wait_for_url(f"{base}/admin/digests/*")
    expect(laptop.locator("#scheduled")).to_contain_text(when.strftime("%d %b %Y, %H:%M UTC"))
    shoot(pages, "digest-scheduled", laptop.url)

    laptop.once("dialog", lambda dialog: dialog.accept())
    laptop.get_by_role("button", name="Send now").click()
    expect(laptop.locator("#run [data-field=percent]")).to_have_text("100", timeout=60_000)
    laptop.reload()
    expect(laptop.locator("#finished")).to_contain_text("finished")
    shoot(pages, "digest-finished", laptop.url)
    shoot(pages, "digests-list", f"{base}/admin/digests")


def test_the_author_sends_at_nine_on_each_readers_clock_and_sees_what_waits(browser, console):  # noqa: F811
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    base = console
    pages = {size: browser.new_context(viewport=viewport).new_page() for size, viewport in SIZES.items()}
    for page in pages.values():
        log_in(page, base)
    laptop = pages["laptop"]
    laptop.goto(f"{base}/admin/digests")
    laptop.click("#compose button[type=submit]")
    laptop.wait_for_url(f"{base}/admin/digests/preview*")
    laptop.goto(laptop.url + "&confirm=1#confirm")
    pages["phone"].goto(laptop.url)
    shoot(pages, "compose-confirm-local-time")
    for page in pages.values():
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    # An hour from now on the author's clock (UTC here, as no reader told a zone): every mail waits for it.
    nine = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%H:%M")
    laptop.fill("#local_time_now", nine)
    laptop.get_by_role("button", name="Yes, send it now").click()
    laptop.wait_for_url(f"{base}/admin/digests/*")
    expect(laptop.locator("#waiting")).to_contain_text(f"At {nine} on each reader")
    expect(laptop.locator("#waiting [data-field=waiting]")).to_have_text("40")
    assert laptop.locator("#waiting svg.chart rect").count() == 1  # one hour, one bar
    shoot(pages, "digest-waiting", laptop.url)
    for page in pages.values():
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]

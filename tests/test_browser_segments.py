"""The segments page in Chromium at laptop and phone width: the count follows the rules as they change, under CSP."""
from __future__ import annotations

import pytest

from tests.browser import ARTIFACTS
from tests.test_browser_admin import SIZES, console, log_in, shoot  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_the_count_follows_the_rules_and_the_counted_rules_are_saved(browser, console):  # noqa: F811
    from playwright.sync_api import expect

    (ARTIFACTS / "console").mkdir(parents=True, exist_ok=True)
    base, refused = console, []
    pages = {size: browser.new_context(viewport=viewport).new_page() for size, viewport in SIZES.items()}
    for page in pages.values():
        page.on("console", lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None)
        log_in(page, base)
    shoot(pages, "segments", f"{base}/admin/segments")
    for page in pages.values():
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.viewport_size
    laptop = pages["laptop"]
    count = laptop.locator("[data-field=count]")
    expect(count).to_have_text("40")  # every confirmed reader; the five pending ones never count
    laptop.get_by_label("The Multigenerational Manager's Handbook", exact=False).check()
    expect(count).to_have_text("0")  # nobody took it: these readers came without a consent
    laptop.get_by_label("The Multigenerational Manager's Handbook", exact=False).uncheck()
    laptop.select_option("#engaged", "false")
    expect(count).to_have_text("40")
    expect(laptop.locator("[data-field=description]")).to_have_text("not engaged")
    laptop.fill("#engaged_within_days", "0")
    expect(laptop.locator("[data-field=description]")).to_contain_text("whole number of days")
    laptop.fill("#engaged_within_days", "30")
    expect(laptop.locator("[data-field=description]")).to_have_text("not engaged in the last 30 days")

    laptop.fill("input[name=name]", "Quiet readers")
    laptop.get_by_role("button", name="Save these rules as a segment").click()
    expect(laptop.locator("body")).to_contain_text("Saved the segment “Quiet readers”: not engaged in the last 30 days.")
    expect(laptop.locator("table.list")).to_contain_text("Quiet readers")
    shoot(pages, "segments-saved", f"{base}/admin/segments")
    assert refused == []

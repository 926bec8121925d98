"""The settings page and the public archive in headless Chromium at a laptop and a phone width: saved through the
form, shown on the pages, nothing wider than the screen; screenshots go to test-artifacts/studio/."""
from __future__ import annotations

import shutil

import pytest

from mailer.extensions import db
from tests import factories
from tests.admin_helpers import create_admin
from tests.browser import ARTIFACTS
from tests.conftest import make_app
from tests.test_browser_admin import SIZES, log_in, serve

pytestmark = [pytest.mark.browser]
SHOTS = ARTIFACTS / "studio"


@pytest.fixture
def site(tmp_path, sqlite_template):
    """The embedded default with an admin and one digest of two posts, owed to one reader."""
    shutil.copy(sqlite_template, tmp_path / "mailer.db")
    app = make_app(tmp_path)
    with app.app_context():
        create_admin()
        factories.subscribers(1)
        factories.post(n=1)
        factories.post(title="Career Q&A: How Do I Ask for a Raise After Six Months?", n=2)
        from mailer.posts import digests

        digest = digests.create_digest(db.session, intro="Two questions this week, both about money and time.")
        db.session.commit()
        app.config["DIGEST_ID"] = digest.id
        db.engine.dispose()
    yield from serve(app)


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_settings_and_archive_in_the_browser(browser, site):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page = browser.new_context(viewport=viewport).new_page()
        log_in(page, site)
        page.goto(f"{site}/admin/settings")
        page.fill("input[name=newsletter_name]", "Night Shift Notes")
        page.fill("input[name=accent_colour]", "#8a2d1c")
        page.fill("textarea[name=postal_address]", "1 Harbour Street\nPortsmouth PO1 2AB")
        page.click("text=Save settings")
        page.wait_for_url(f"{site}/admin/settings")
        assert page.locator("input[name=newsletter_name]").input_value() == "Night Shift Notes"
        assert "Night Shift Notes" in page.locator(".topbar .brand-name").text_content()
        assert fits(page), size
        page.screenshot(path=str(SHOTS / f"settings-{size}.png"), full_page=True)
        page.goto(f"{site}/archive")
        assert page.locator("h1").inner_text() == "The Night Shift Notes archive"
        # The accent colour reaches the page through the brand stylesheet.
        assert page.evaluate("getComputedStyle(document.querySelector('.button')).backgroundColor") == "rgb(138, 45, 28)"
        assert fits(page), size
        page.screenshot(path=str(SHOTS / f"archive-{size}.png"), full_page=True)
        page.click("ol.archive a")
        assert page.locator("h1").inner_text().endswith(", and 1 more")
        assert page.locator("article.issue-post").count() == 2
        assert fits(page), size
        page.screenshot(path=str(SHOTS / f"issue-{size}.png"), full_page=True)
        page.context.close()

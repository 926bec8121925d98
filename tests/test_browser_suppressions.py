"""The suppressions page, a paused digest and the dashboard's rates in headless Chromium at laptop and phone width;
screenshots go to test-artifacts/console/."""
from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from mailer.bounces.events import COMPLAINT, HARD, record_event
from mailer.extensions import db
from mailer.models import Delivery
from mailer.outbox import sender
from mailer.posts import digests
from tests import factories
from tests.admin_helpers import create_admin
from tests.conftest import make_app
from tests.test_browser_admin import SHOTS, SIZES, log_in, serve

pytestmark = pytest.mark.browser


@pytest.fixture
def suppressed(tmp_path, sqlite_template):
    """The embedded default with a bounced and a complained reader and a digest the guard paused."""
    root = tmp_path / "embedded"
    root.mkdir()
    shutil.copy(sqlite_template, root / "mailer.db")
    app = make_app(root, DIGEST_RATE_MIN_SENT=5)
    with app.app_context():
        create_admin()
        factories.subscribers(12)
        factories.post()
        digest = digests.create_digest(db.session)
        db.session.commit()
        sender.deliver_due(limit=8)
        mails = sorted(db.session.scalars(select(Delivery.id).where(Delivery.digest_id == digest.id, Delivery.status == "sent")))
        record_event(db.session, "dsn", "a", HARD, delivery_id=mails[0], detail=(
            "failed 5.1.1 smtp; 550 5.1.1 <reader0@example.com>: Recipient address rejected: User unknown in "
            "virtual mailbox table"), match_email=False)
        record_event(db.session, "dsn", "b", COMPLAINT, delivery_id=mails[1], detail="abuse report from Yahoo",
                     match_email=False)
        db.session.commit()
        db.engine.dispose()
    yield from serve(app)


def test_the_suppressions_page_and_a_paused_digest_read_well_at_both_widths(browser, suppressed):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page = browser.new_context(viewport=viewport).new_page()
        log_in(page, suppressed)
        page.goto(f"{suppressed}/admin/suppressions")
        assert page.locator("table.suppressions tbody tr").count() == 2
        assert page.get_by_role("button", name="Lift bounce").count() == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.screenshot(path=str(SHOTS / f"suppressions-{size}.png"), full_page=True)
        page.goto(f"{suppressed}/admin/digests/1")
        assert page.locator("#guard").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.screenshot(path=str(SHOTS / f"digest-paused-{size}.png"), full_page=True)
        page.goto(f"{suppressed}/admin/")
        page.locator("#reputation").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"dashboard-rates-{size}.png"), full_page=True)

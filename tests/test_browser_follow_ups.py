"""A digest's follow-ups in headless Chromium at a laptop and a phone width: the subject test's bars and the
resend form, which resends to the readers who did not click."""
from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select, update

from mailer.extensions import db
from mailer.models import Delivery, Digest
from mailer.posts import digests
from mailer.posts.subject_tests import read_test
from tests import factories
from tests.admin_helpers import create_admin
from tests.browser import ARTIFACTS
from tests.conftest import make_app
from tests.test_browser_admin import SIZES, log_in, serve
from tests.test_subject_tests import human_clicks

pytestmark = [pytest.mark.browser]
SUBJECTS = ["Keep in touch?", "Should you stay in touch with a company that you turned down for another offer?"]


@pytest.fixture
def console(tmp_path, sqlite_template):
    """The embedded default with a digest testing two subjects, its test mails sent and clicked."""
    shutil.copy(sqlite_template, tmp_path / "mailer.db")
    app = make_app(tmp_path)
    with app.app_context():
        create_admin()
        factories.subscribers(40)
        factories.post(n=1)
        digest = digests.create_digest(db.session, SUBJECTS[0], **read_test(SUBJECTS, 0.5))
        db.session.commit()
        human_clicks(digest, 1, 3)
        human_clicks(digest, 0, 1)
        db.engine.dispose()
    for base in serve(app):
        yield base, app


def test_the_variants_are_drawn_and_a_decided_digest_is_resent_at_both_widths(browser, console):
    console, app = console
    shots = ARTIFACTS / "console"
    shots.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page = browser.new_context(viewport=viewport).new_page()
        log_in(page, console)
        page.goto(f"{console}/admin/digests/1")
        bars = page.locator("ol.variants li")
        assert bars.count() == 2
        widths = [bars.nth(n).locator("rect").bounding_box()["width"] for n in range(2)]
        assert widths[1] > 2.5 * widths[0] > 0, widths  # 3 clickers against 1
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), size
        page.screenshot(path=str(shots / f"subject-test-{size}.png"), full_page=True)
    from mailer.posts.subject_tests import decide_due_tests
    from tests.test_subject_tests import later

    with app.app_context():
        decide_due_tests(db.session, now=later())
        db.session.execute(update(Delivery).values(status="sent"))  # as the worker would have
        db.session.commit()
    page.goto(f"{console}/admin/digests/1")
    assert page.locator("#winner").text_content() == SUBJECTS[1]
    page.fill("#resend_subject", "In case you missed it")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#resend-form button[type=submit]")
    page.wait_for_url(f"{console}/admin/digests/2")
    assert "Resend of" in page.locator("#follows").text_content()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(shots / "resend-phone.png"), full_page=True)
    with app.app_context():
        resend = db.session.scalar(select(Digest).where(Digest.follows_id == 1))
        assert resend.recipients == 36  # 40 readers, 4 clicked

"""The reader's pages in headless Chromium at 1280 and 390 px: thanks, unsubscribe (asking, then done),
preferences, and the local outbox; none scrolls sideways on a phone."""
from __future__ import annotations

import re
import shutil

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from mailer import links
from mailer.extensions import db
from mailer.models import Status, Subscriber
from mailer.outbox import sender
from tests.browser import ARTIFACTS, serve_in_thread
from tests.conftest import make_app
from tests.smtp_sink import _free_port

pytestmark = pytest.mark.browser
WIDTHS = (1280, 390)


@pytest.fixture
def site(tmp_path, sqlite_template):
    """The mailer on a local port (SQLite, mail to the local outbox), served from a thread."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    shutil.copy(sqlite_template, tmp_path / "mailer.db")
    app = make_app(tmp_path, BASE_URL=url, FORM_MIN_SECONDS=1, MAIL_FROM="Career Q&A <newsletter@mailer.test>")
    server = make_server("127.0.0.1", port, app, threaded=True)
    serve_in_thread(server)
    with app.app_context():
        yield url
        server.shutdown()
        server.server_close()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())  # nothing leaves
    tab = context.new_page()
    yield tab
    context.close()


def look(page, name: str, width: int) -> None:
    """Screenshot the page as it is at `width` and check it needs no sideways scrolling."""
    page.set_viewport_size({"width": width, "height": 900})
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"reader-{name}-{width}.png"), full_page=True)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{name} at {width} px is {scroll_width} px wide"


def _reader(email: str) -> Subscriber:
    return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def _sign_up(page, url: str, email: str) -> None:
    page.goto(url + "/")
    page.locator("input[name=email]").fill(email)
    page.wait_for_timeout(1100)  # a person takes longer than FORM_MIN_SECONDS
    page.locator("form.signup button[type=submit]").click()
    page.get_by_text("Almost there").wait_for()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_thanks_page_and_sending_again(site, page, width):
    page.set_viewport_size({"width": width, "height": 900})
    _sign_up(page, site, "ann.reader.with.a.long.address@gmail.com")
    assert page.locator(".address").inner_text() == "a…@gmail.com"
    assert "ann.reader" not in page.url and "ann.reader" not in page.content()
    mailbox = page.locator("#open-mailbox")
    assert mailbox.inner_text() == "Open Gmail"
    assert mailbox.get_attribute("href").startswith("https://mail.google.com/mail/u/0/#search/from%3Anewsletter%40")
    look(page, "thanks", width)

    page.get_by_role("button", name="Send the link again").click()
    page.get_by_text("If this address can receive a new link, it is on its way.").wait_for()
    look(page, "thanks-sent-again", width)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_unsubscribe_page_asks_then_shows_that_it_is_done(site, page, width):
    page.set_viewport_size({"width": width, "height": 900})
    _sign_up(page, site, "ann@example.com")
    ann = _reader("ann@example.com")
    ann.status = Status.CONFIRMED.value
    db.session.commit()
    url = links.unsubscribe_url(ann.id)

    page.goto(url)
    page.get_by_role("button", name="Fewer emails instead: a monthly summary").wait_for()
    look(page, "unsubscribe-asking", width)

    page.get_by_role("button", name="Unsubscribe", exact=True).click()
    page.get_by_text("You will get no more emails from us").wait_for()
    page.goto(url)
    page.get_by_role("button", name="Subscribe again").wait_for()
    assert page.get_by_role("button", name="Unsubscribe", exact=True).count() == 0
    look(page, "unsubscribe-done", width)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_preferences_page_keeps_unsubscribing_apart(site, page, width):
    page.set_viewport_size({"width": width, "height": 900})
    _sign_up(page, site, "ann@example.com")
    ann = _reader("ann@example.com")
    ann.status = Status.CONFIRMED.value
    db.session.commit()

    page.goto(links.preferences_url(ann.id))
    look(page, "preferences", width)
    page.get_by_text("Unsubscribe from everything…").click()
    danger = page.locator("button.danger")
    assert danger.is_visible()
    colour = danger.evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour != page.locator("fieldset button").evaluate("b => getComputedStyle(b).backgroundColor")
    look(page, "preferences-leaving", width)
    danger.click()  # the box is not ticked: the browser refuses to send the form
    assert _reader("ann@example.com").status == Status.CONFIRMED.value
    page.get_by_label("Yes, stop every email to this address").check()
    danger.click()
    page.get_by_text("You are unsubscribed").wait_for()


def test_the_local_outbox_fits_a_phone(site, page):
    page.set_viewport_size({"width": 390, "height": 900})
    _sign_up(page, site, "ann.reader.with.a.long.address@example.com")
    sender.deliver_due()

    page.goto(site + "/dev/outbox/")
    look(page, "outbox", 390)
    page.locator("table.mails a").first.click()
    page.get_by_text("Confirm your").first.wait_for()
    look(page, "outbox-mail", 390)


def test_the_consoles_outbox_fits_a_phone(site, page):
    from tests.admin_helpers import EMAIL, PASSWORD, create_admin

    create_admin()
    page.set_viewport_size({"width": 390, "height": 900})
    _sign_up(page, site, "ann.reader.with.a.long.address@example.com")
    sender.deliver_due()
    page.goto(site + "/admin/login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(site + "/admin/")

    page.goto(site + "/admin/outbox")
    look(page, "console-outbox", 390)
    page.locator("main a[href*='/admin/outbox/']").first.click()
    page.wait_for_load_state("networkidle")
    look(page, "console-outbox-mail", 390)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sunset_keep_page_and_the_way_back_fit_and_work(site, page, width):
    from datetime import datetime, timedelta, timezone

    page.set_viewport_size({"width": width, "height": 900})
    _sign_up(page, site, "quiet@example.com")
    quiet = _reader("quiet@example.com")
    asked = datetime.now(timezone.utc) - timedelta(days=20)
    quiet.status, quiet.sunset_asked_at = Status.CONFIRMED.value, asked
    db.session.commit()

    page.goto(links.keep_url(quiet.id))
    look(page, "keep", width)
    page.get_by_role("button", name="Yes, keep me on the list").click()
    page.get_by_text("you stay on the list").wait_for()
    look(page, "kept", width)
    db.session.refresh(quiet)
    assert quiet.sunset_kept_at is not None and quiet.sunset_at is None

    quiet.sunset_at = datetime.now(timezone.utc)  # a later round went unanswered
    db.session.commit()
    page.goto(links.preferences_url(quiet.id))
    page.get_by_text("Your digests have stopped").wait_for()
    look(page, "preferences-stopped", width)
    page.get_by_role("button", name="Send me the digests again").click()
    page.get_by_text("Welcome back").wait_for()
    db.session.refresh(quiet)
    assert quiet.sunset_at is None

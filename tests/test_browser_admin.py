"""The console in headless Chromium: log in, find a subscriber, compose, preview and send a digest, watch it finish;
a screenshot of every page at a laptop and a phone width goes to test-artifacts/console/."""
from __future__ import annotations

import shutil

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from mailer.extensions import db
from mailer.models import Subscriber
from tests import factories
from tests.admin_helpers import EMAIL, PASSWORD, create_admin
from tests.browser import ARTIFACTS, serve_in_thread
from tests.conftest import make_app, stack_overrides, truncate_all
from tests.smtp_sink import _free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]
SHOTS = ARTIFACTS / "console"
SIZES = {"laptop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def serve(app):
    """The app on a free local port in a thread; yields its base URL."""
    port = _free_port()
    app.config["BASE_URL"] = f"http://127.0.0.1:{port}"
    server = make_server("127.0.0.1", port, app, threaded=True)
    serve_in_thread(server)
    try:
        yield app.config["BASE_URL"]
    finally:
        server.shutdown()
        server.server_close()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def console(stack_env, worker, smtp, tmp_path):
    """The console on PostgreSQL, with the real worker sending through the SMTP test server."""
    app = make_app(tmp_path, **stack_overrides(stack_env))
    truncate_all(app)
    smtp.clear()
    with app.app_context():
        create_admin()
        db.session.execute(Subscriber.__table__.delete())
        # The session's worker renders each digest once per id; TRUNCATE … RESTART IDENTITY would hand this test
        # an id an earlier test's digest had, and with it that digest's cached frame.
        db.session.execute(text("SELECT setval('digest_id_seq', (extract(epoch FROM clock_timestamp()) * 100)::bigint % 2000000000)"))
        factories.subscribers(40)
        factories.subscribers(5, status="pending", prefix="pending")
        db.session.execute(Subscriber.__table__.update().where(Subscriber.email == "reader7@example.com")
                           .values(name="Margaret Chen"))
        db.session.commit()
        factories.post("Career Q&A: Can You Keep in Touch with an Employer You Turned Down?", n=2)
        factories.post("Career Q&A: Should I Mention a Layoff in an Interview?", n=1)
        db.engine.dispose()
    yield from serve(app)


@pytest.fixture
def local_outbox(tmp_path, sqlite_template):
    """The embedded default (SQLite, no SMTP_URL) with two mails in the local outbox, for the Outbox page."""
    root = tmp_path / "embedded"
    root.mkdir()
    shutil.copy(sqlite_template, root / "mailer.db")
    app = make_app(root)
    with app.app_context():
        create_admin()
        from mailer.people.subscriptions import SignupRequest, subscribe

        subscribe(db.session, SignupRequest(email="reader@example.com", name="Sam"))
        db.session.commit()
        from mailer.outbox.sender import deliver_due

        deliver_due(limit=10)
        db.engine.dispose()
    yield from serve(app)


def log_in(page, base: str) -> None:
    page.goto(f"{base}/admin/")
    assert "/admin/login?next=" in page.url
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def shoot(context_pages: dict, name: str, url: str | None = None) -> None:
    """Screenshot the page at both widths (the phone page follows the laptop page to `url`)."""
    for size, page in context_pages.items():
        if url:
            page.goto(url)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(250)  # let framed mail finish its layout before the capture
        page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)


def test_the_author_sends_a_digest_from_the_browser_and_every_page_is_photographed(browser, console, local_outbox, smtp):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    base = console
    csp_errors: list[str] = []
    pages = {}
    for size, viewport in SIZES.items():
        page = browser.new_context(viewport=viewport).new_page()
        page.on("console", lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None)
        if size == "phone":
            page.goto(f"{base}/admin/login")
            page.screenshot(path=str(SHOTS / "login-phone.png"), full_page=True)
        pages[size] = page
    laptop = pages["laptop"]
    laptop.goto(f"{base}/admin/login")
    laptop.screenshot(path=str(SHOTS / "login-laptop.png"), full_page=True)
    for page in pages.values():
        log_in(page, base)
    shoot(pages, "dashboard")

    # Find a subscriber by the start of her name, then open her record.
    laptop.goto(f"{base}/admin/subscribers")
    shoot(pages, "subscribers", f"{base}/admin/subscribers")
    laptop.fill("input[name=q]", "marg")
    laptop.click("form[role=search] button[type=submit]")
    laptop.get_by_role("link", name="reader7@example.com").click()
    assert laptop.get_by_text("Margaret Chen").is_visible()
    shoot(pages, "subscriber", laptop.url)
    pages["phone"].goto(f"{base}/admin/subscribers?q=reader7")

    # Compose from the unsent posts, preview, then send after confirming.
    laptop.goto(f"{base}/admin/digests")
    shoot(pages, "digests", f"{base}/admin/digests")
    laptop.fill("input[name=subject]", "Two new answers this week")
    laptop.fill("textarea[name=intro]", "Two questions readers asked me lately.")
    laptop.click("#compose button[type=submit]")
    laptop.frame_locator("iframe.mail-frame").get_by_text("Should I Mention a Layoff").wait_for()
    assert "Two questions readers asked me lately." in laptop.locator("pre.mail-text").inner_text()
    pages["phone"].goto(laptop.url)
    pages["phone"].frame_locator("iframe.mail-frame").get_by_text("Should I Mention a Layoff").wait_for()
    shoot(pages, "digest-preview")
    laptop.fill("input[name=to]", "author-test@example.com")
    laptop.get_by_role("button", name="Send test").click()
    laptop.get_by_text("A test copy is on its way").wait_for()
    smtp.wait_for("author-test@example.com", "[Test] Two new answers this week")
    laptop.get_by_role("link", name="Send to 40 subscribers…").click()
    shoot(pages, "digest-confirm", laptop.url)
    laptop.get_by_role("button", name="Yes, send it now").click()
    laptop.wait_for_url(f"{base}/admin/digests/*")
    laptop.evaluate("window.stillThisPage = true")
    expect(laptop.locator("#run [data-field=percent]")).to_have_text("100", timeout=60_000)
    assert laptop.evaluate("window.stillThisPage") is True  # updated in place, never reloaded
    assert laptop.locator("[data-field=sent]").inner_text() == "40"
    assert laptop.locator("[data-field=pending]").inner_text() == "0"
    assert laptop.locator("#run").get_attribute("data-state") == "sent"
    shoot(pages, "digest-sent", laptop.url)
    assert len(smtp.wait_for("reader7@example.com", "Two new answers this week")) == 1

    # The remaining pages, as they look.
    for name, path in [("posts", "/admin/posts"), ("post-new", "/admin/posts/new"), ("magnets", "/admin/magnets"),
                       ("magnet-edit", "/admin/magnets/1"), ("welcome", "/admin/welcome"),
                       ("embed", "/admin/embed"), ("import", "/admin/subscribers/import"),
                       ("password", "/admin/password"), ("dashboard-after", "/admin/")]:
        shoot(pages, name, base + path)
    pages["laptop"].goto(f"{base}/admin/welcome")
    pages["laptop"].get_by_role("link", name="Edit and preview").first.click()
    shoot(pages, "welcome-step", pages["laptop"].url)

    # An import with a bad line: the page imports it and shows the report.
    laptop.goto(f"{base}/admin/subscribers/import")
    laptop.set_input_files("input[name=file]", files=[{"name": "list.csv", "mimeType": "text/csv", "buffer":
                           b"email,name\nnew1@example.com,Ann\nnot-an-email,Bob\nnew2@example.com,\n"}])
    laptop.check("input[name=confirmed]")
    laptop.click("button[type=submit]")
    expect(laptop.locator("h2", has_text="Rejected lines")).to_be_visible(timeout=30_000)  # the report, after the import
    assert laptop.locator("[data-field=created]").inner_text() == "2"
    shoot(pages, "import-report", laptop.url)

    # The local outbox of the embedded default.
    for page in pages.values():
        log_in(page, local_outbox)
    shoot(pages, "outbox", f"{local_outbox}/admin/outbox")
    laptop.get_by_role("link", name="Confirm").first.click()
    laptop.frame_locator("iframe.mail-frame").get_by_text("Confirm").first.wait_for()
    shoot(pages, "outbox-mail", laptop.url)
    assert not csp_errors, csp_errors


def overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]


def test_the_dashboard_charts_are_numbered_and_dated_legibly_at_laptop_and_phone_width(browser, console):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page = browser.new_context(viewport=viewport).new_page()
        log_in(page, console)
        for chart, top in (("signups", "60"), ("rates", "100%")):
            frame = page.locator(".chart-frame", has=page.locator(f"svg.chart.{chart}"))
            numbers = frame.locator("svg.chart-scale text")
            assert numbers.last.text_content() == top  # 45 signups today: a scale up to 60
            boxes = [numbers.nth(n).bounding_box() for n in range(numbers.count())]
            assert all(box["height"] >= 12 for box in boxes), (size, chart, boxes)  # 12 px type, not shrunk
            top_line = frame.locator("svg.chart line.grid").last.bounding_box()
            assert abs(boxes[-1]["y"] + boxes[-1]["height"] / 2 - top_line["y"]) < 3  # the number beside its line
            plot = frame.locator("svg.chart").bounding_box()
            dates = [d.bounding_box() for d in frame.locator("g.mark text").all() if d.is_visible()]
            assert len(dates) == (6 if size == "laptop" else 3), (size, chart)
            inside = [plot["x"] <= d["x"] and d["x"] + d["width"] <= plot["x"] + plot["width"] + 1 for d in dates]
            assert all(inside) and all(d["height"] >= 12 for d in dates), (size, chart, plot, dates)
            assert not any(overlap(a, b) for a, b in zip(dates, dates[1:])), (size, chart, dates)
        page.screenshot(path=str(SHOTS / f"dashboard-charts-{size}.png"), full_page=True)

"""Every page of the public site, in headless Chromium, under the strict Content-Security-Policy: no violations,
and the embeds still work from the blog's origin (embed.js fetching its form token)."""
from __future__ import annotations

import http.server
import json
import re
import shutil
import time
from functools import partial
from unittest import mock

import itsdangerous
import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from mailer import links, tokens
from mailer.extensions import db
from mailer.models import Consent, Subscriber
from mailer.outbox import sender as outbox
from mailer.web import captcha
from mailer.web.embed_snippets import snippets
from tests.browser import serve_in_thread
from tests.conftest import make_app
from tests.smtp_sink import _free_port

pytestmark = pytest.mark.browser
VIOLATION = re.compile(r"Content Security Policy|Refused to")
FAKE_TURNSTILE = """document.querySelectorAll('.cf-turnstile').forEach(function (box) {
  var input = document.createElement('input'); input.type = 'hidden';
  input.name = 'cf-turnstile-response'; input.value = 'passed'; box.appendChild(input); });"""


@pytest.fixture
def site(tmp_path, sqlite_template, request):
    """The mailer on one local port (SQLite), a blog on another, both served from threads."""
    overrides = getattr(request, "param", {})
    mailer_port, blog_port = _free_port(), _free_port()
    mailer_url, blog_url = f"http://127.0.0.1:{mailer_port}", f"http://127.0.0.1:{blog_port}"
    shutil.copy(sqlite_template, tmp_path / "mailer.db")
    app = make_app(tmp_path, BASE_URL=mailer_url, EMBED_ORIGINS=[blog_url], FORM_MIN_SECONDS=1, **overrides)
    # A page that breaks the policy on purpose: proof that a violation would be seen.
    app.add_url_rule("/csp-canary", "canary", lambda: '<!doctype html><p style="color:red">x</p><script>1</script>')

    code = snippets(mailer_url)
    blog = tmp_path / "blog"
    blog.mkdir()
    (blog / "post.html").write_text(
        f'<!doctype html><meta charset="utf-8"><title>Career Q&amp;A</title><section id="snippet">'
        f'{code["HTML form (works without JavaScript)"]}</section><section id="iframe">{code["iframe"]}</section>'
        f'<section id="script">{code["script"]}</section>')
    mailer_server = make_server("127.0.0.1", mailer_port, app, threaded=True)
    blog_server = http.server.ThreadingHTTPServer(("127.0.0.1", blog_port),
                                                  partial(http.server.SimpleHTTPRequestHandler, directory=str(blog)))
    blog_server.RequestHandlerClass.log_message = lambda *a: None
    serve_in_thread(mailer_server), serve_in_thread(blog_server)
    with app.app_context():
        yield app, mailer_url, blog_url
        mailer_server.shutdown(), blog_server.shutdown()
        mailer_server.server_close(), blog_server.server_close()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def page(browser):  # noqa: F811 (the fixture imported above)
    """A page that records CSP violations; nothing it loads leaves this machine."""
    context = browser.new_context()
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), _offline)
    tab = context.new_page()
    tab.violations = []
    tab.on("console", lambda message: VIOLATION.search(message.text) and tab.violations.append(message.text))
    yield tab
    context.close()


def _offline(route) -> None:
    if route.request.url.startswith("https://challenges.cloudflare.com/turnstile/v0/api.js"):
        route.fulfill(status=200, content_type="text/javascript", body=FAKE_TURNSTILE)
    else:
        route.abort()


def visit(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")


def stored(email: str) -> Subscriber | None:
    db.session.rollback()
    return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def test_a_violation_would_be_seen(site, page):
    visit(page, site[1] + "/csp-canary")
    page.wait_for_timeout(200)
    assert any("inline style" in v for v in page.violations) and any("inline script" in v for v in page.violations)


def test_every_public_page_loads_without_a_violation(site, page):
    app, mailer, _ = site
    for path in ["/", "/embed", "/embed?magnet=no-such-magnet", "/no-such-page", "/confirm/not-a-token"]:
        visit(page, mailer + path)

    visit(page, mailer + "/")  # the signup form, the thank-you page, and the error page
    page.fill("input[name=email]", "ann@example.com")
    page.wait_for_timeout(1100)
    page.click("button[type=submit]")
    page.get_by_text("Almost there").wait_for()
    visit(page, mailer + "/")
    page.wait_for_timeout(1100)
    page.eval_on_selector("input[name=email]", "el => { el.value = 'not an address'; el.form.submit(); }")
    page.get_by_text("Please check the form").wait_for()

    consent = db.session.scalar(select(Consent).join(Subscriber).where(Subscriber.email == "ann@example.com"))
    assert outbox.deliver_due() == 1  # her confirmation, for the development outbox below
    visit(page, links.confirm_url(consent.id))  # confirm, then the page with the download link
    page.click("button[type=submit]")
    page.get_by_text("You're in").wait_for()
    with mock.patch.object(itsdangerous.TimestampSigner, "get_timestamp", return_value=int(time.time()) - 10**7):
        expired = tokens.make(tokens.DOWNLOAD, {"s": consent.subscriber_id, "m": consent.magnet_id})
    visit(page, f"{mailer}/download/{expired}")
    page.get_by_text("has expired").wait_for()
    visit(page, links.unsubscribe_url(consent.subscriber_id))
    page.click("button.danger")  # beside "fewer emails instead"
    page.get_by_text("You are unsubscribed").wait_for()

    visit(page, mailer + "/dev/outbox/")
    page.click("table.mails a")
    page.frame_locator("iframe.mail").locator("body").wait_for()

    assert page.violations == []


def test_the_embeds_work_on_the_blog_under_the_policy(site, page):
    _, _, blog = site
    visit(page, blog + "/post.html")
    frame = page.frame_locator("#iframe iframe")
    frame.locator("input[name=email]").fill("iframe-reader@example.com")
    script_button = page.locator("form.mailer-signup button")
    script_button.wait_for()
    page.wait_for_timeout(1100)  # a person takes longer than FORM_MIN_SECONDS to type

    frame.get_by_role("button").click()
    frame.get_by_text("Almost there").wait_for()
    page.locator("form.mailer-signup input[name=email]").fill("script-reader@example.com")
    assert script_button.is_enabled()  # its token has arrived
    with page.expect_request(lambda r: r.url.endswith("/subscribe") and r.method == "POST") as posted:
        script_button.click()
    page.get_by_text("Check your inbox").wait_for()
    # The script sends the token it fetched, not only the honeypot: a genuine form token, rendered a moment ago.
    sent = json.loads(posted.value.post_data)
    assert sent["website"] == "" and 0 < time.time() - tokens.read(tokens.FORM, sent["form_token"])["at"] < 60

    assert stored("iframe-reader@example.com") is not None and stored("script-reader@example.com") is not None
    assert page.violations == []


@pytest.mark.parametrize("site", [{"CAPTCHA_PROVIDER": "turnstile", "CAPTCHA_SITE_KEY": "k", "CAPTCHA_SECRET": "s"}],
                         indirect=True)
def test_the_captcha_widget_loads_under_the_policy(site, page, monkeypatch):
    monkeypatch.setattr(captcha, "post_siteverify", lambda url, form, timeout: {"success": form["response"] == "passed"})
    visit(page, site[1] + "/embed")
    page.locator("input[name=cf-turnstile-response]").wait_for(state="attached")  # the provider's script ran
    page.fill("input[name=email]", "captcha-reader@example.com")
    page.wait_for_timeout(1100)
    page.click("button[type=submit]")
    page.get_by_text("Almost there").wait_for()

    assert stored("captcha-reader@example.com") is not None
    assert page.violations == []

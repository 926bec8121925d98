"""A blog on another origin embeds the form three ways; each submits in headless Chromium and the mail arrives."""
from __future__ import annotations

import http.server
import json
import time
from functools import partial

import pytest
from werkzeug.serving import make_server

from mailer.web.embed_snippets import snippets
from tests.browser import ARTIFACTS, serve_in_thread
from tests.conftest import make_app, stack_overrides, truncate_all
from tests.smtp_sink import _free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def blog_and_mailer(stack_env, worker, smtp, tmp_path):
    """The mailer on one local port, the blog on another: two origins, as in production."""
    mailer_port, blog_port = _free_port(), _free_port()
    mailer_url, blog_url = f"http://127.0.0.1:{mailer_port}", f"http://127.0.0.1:{blog_port}"
    app = make_app(tmp_path, **{**stack_overrides(stack_env), "BASE_URL": mailer_url, "EMBED_ORIGINS": [blog_url]})
    truncate_all(app)
    smtp.clear()

    code = snippets(mailer_url)
    form = code["HTML form (works without JavaScript)"].replace('name="next" value=""', f'name="next" value="{blog_url}/thanks.html"')
    site = tmp_path / "blog"
    site.mkdir()
    (site / "post.html").write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>Career Q&amp;A</title></head>
<body><h1>Career Q&amp;A: Can You Keep in Touch with an Employer You Turned Down?</h1>
<p>GET THE MULTIGENERATIONAL MANAGER'S HANDBOOK</p>
<section id="snippet">{form}</section>
<section id="iframe">{code["iframe"]}</section>
<section id="script">{code["script"]}</section>
</body></html>""")
    (site / "thanks.html").write_text("<!doctype html><title>Thanks</title><h1>Thanks for subscribing</h1>")

    mailer_server = make_server("127.0.0.1", mailer_port, app, threaded=True)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    blog_server = http.server.ThreadingHTTPServer(("127.0.0.1", blog_port), handler)
    blog_server.RequestHandlerClass.log_message = lambda *a: None
    serve_in_thread(mailer_server), serve_in_thread(blog_server)
    yield blog_url
    mailer_server.shutdown(), blog_server.shutdown()
    mailer_server.server_close(), blog_server.server_close()
    with app.app_context():
        from mailer.extensions import db

        db.engine.dispose()


def test_the_three_embeds_submit_from_another_origin(browser, blog_and_mailer, smtp):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    page.goto(f"{blog_and_mailer}/post.html")

    frame = page.frame_locator("#iframe iframe")
    frame.locator("input[name=email]").fill("iframe-reader@example.com")
    page.wait_for_timeout(2100)  # a person takes longer than FORM_MIN_SECONDS; a quicker form is taken for a bot
    frame.get_by_role("button").click()
    frame.get_by_text("Almost there").wait_for()

    page.locator("form.mailer-signup input[name=email]").fill("script-reader@example.com")
    page.locator("form.mailer-signup button").click()
    page.get_by_text("Check your inbox").wait_for()
    page.screenshot(path=str(ARTIFACTS / "blog-embeds-after-submit.png"), full_page=True)

    page.locator("#snippet input[name=email]").fill("snippet-reader@example.com")
    with page.expect_navigation():
        page.locator("#snippet button").click()
    assert page.url == f"{blog_and_mailer}/thanks.html"  # back on the blog, not left on the mailer

    for address in ("iframe-reader@example.com", "script-reader@example.com", "snippet-reader@example.com"):
        [mail] = smtp.wait_for(address, "Confirm your")
        assert "/confirm/" in mail.get_body(("plain",)).get_content()
    page.close()


@pytest.mark.parametrize("width", [320, 390, 1280])
def test_the_iframe_embed_shows_the_whole_form_and_an_error_within_its_height(browser, blog_and_mailer, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{blog_and_mailer}/post.html")
    frame = page.frame(url=lambda url: "/embed" in url)
    frame.wait_for_load_state()
    fits = "document.documentElement.scrollHeight <= window.innerHeight"
    assert frame.evaluate(fits), "the iframe snippet's height hides part of the form"

    frame.evaluate("document.querySelector('input[name=email]').type = 'text'")  # let the server judge the address
    frame.fill("input[name=email]", "someone@example")
    page.wait_for_timeout(2100)  # not a bot's speed
    frame.click("button[type=submit]")
    frame.wait_for_selector("p.error")
    assert frame.evaluate(fits), "with an error shown, the iframe hides part of the form"
    page.screenshot(path=str(ARTIFACTS / f"blog-iframe-error-{width}.png"), full_page=True)
    page.close()


def test_the_script_embed_recovers_from_a_form_left_open_too_long(browser, blog_and_mailer, smtp, app, monkeypatch):
    from itsdangerous import TimestampSigner

    from mailer.web import form_guard

    with monkeypatch.context() as patch:  # a token issued three hours ago, as a laptop that slept would still hold
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 3 * 3600)
        stale = form_guard.tokens.make(form_guard.tokens.FORM, {"at": round(time.time() - 3 * 3600, 3)})
    page = browser.new_page()
    first = []

    def serve_the_stale_token_once(route):
        if first:
            return route.continue_()
        first.append(True)
        return route.fulfill(status=200, content_type="application/json", body=json.dumps({"token": stale}),
                             headers={"Access-Control-Allow-Origin": "*"})

    page.route("**/embed/token", serve_the_stale_token_once)
    page.goto(f"{blog_and_mailer}/post.html")
    form = page.locator("form.mailer-signup")
    form.locator("input[name=email]").fill("late-reader@example.com")
    page.wait_for_timeout(2100)
    form.locator("button").click()
    page.get_by_text("open for a long time").wait_for()

    form.locator("button").click()  # again at once, as a person would
    page.get_by_text("Check your inbox").wait_for()
    [mail] = smtp.wait_for("late-reader@example.com", "Confirm your")
    assert "/confirm/" in mail.get_body(("plain",)).get_content()
    page.close()


def test_the_iframe_and_the_script_tell_the_readers_time_zone_and_the_plain_form_cannot(
        browser, blog_and_mailer, smtp, stack_env):
    import psycopg

    context = browser.new_context(timezone_id="Asia/Tokyo")  # the reader's browser, on Tokyo time
    page = context.new_page()
    page.goto(f"{blog_and_mailer}/post.html")
    frame = page.frame_locator("#iframe iframe")
    frame.locator("input[name=email]").fill("tokyo-iframe@example.com")
    page.wait_for_timeout(2100)
    frame.get_by_role("button").click()
    frame.get_by_text("Almost there").wait_for()
    page.locator("form.mailer-signup input[name=email]").fill("tokyo-script@example.com")
    page.locator("form.mailer-signup button").click()
    page.get_by_text("Check your inbox").wait_for()
    page.locator("#snippet input[name=email]").fill("tokyo-snippet@example.com")
    with page.expect_navigation():
        page.locator("#snippet button").click()
    context.close()
    with psycopg.connect(stack_env["DATABASE_URL"].replace("+psycopg", "")) as conn:
        zones = dict(conn.execute("SELECT email, time_zone FROM subscriber WHERE email LIKE 'tokyo-%'").fetchall())
    assert zones == {"tokyo-iframe@example.com": "Asia/Tokyo", "tokyo-script@example.com": "Asia/Tokyo",
                     "tokyo-snippet@example.com": None}

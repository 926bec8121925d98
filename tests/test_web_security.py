"""The web layer's guards: CORS, framing, headers, health, the dev outbox, error pages, the embeds, rate limits."""
from __future__ import annotations

import gc
import re
import warnings

import pytest

from mailer.extensions import db
from mailer.mail import identity
from mailer.outbox import sender as outbox
from tests.conftest import app_with, make_app

BLOG = "https://blog.example.com"
EVIL = "https://evil.example"


# --- helpers ---------------------------------------------------------------------------------------

def fresh_app(tmp_path, sqlite_template, **overrides):
    """Another app on a copy of the migrated database, for settings the `app` fixture does not have."""
    return app_with(tmp_path, sqlite_template, **overrides)


def preflight(client, origin: str):
    return client.options("/subscribe", headers={
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type",
    })


def frame_ancestors(response) -> list[str]:
    csp = response.headers["Content-Security-Policy"]
    directive = re.search(r"frame-ancestors ([^;]+)", csp).group(1)
    return directive.split()


def one_mail_in_the_outbox(client) -> None:
    assert client.post("/subscribe", json={"email": "ann@example.com"}).status_code == 202
    assert outbox.deliver_due() == 1


# --- CORS ------------------------------------------------------------------------------------------

def test_preflight_from_the_blog_is_allowed(client):
    response = preflight(client, BLOG)

    assert response.status_code < 300
    assert response.headers["Access-Control-Allow-Origin"] == BLOG
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()
    assert response.headers.get("Access-Control-Allow-Credentials") != "true"


@pytest.mark.parametrize("origin", [EVIL, "https://blog.example.com.evil.net", "http://blog.example.com", "null"])
def test_preflight_from_another_origin_gets_no_allow_origin(client, origin):
    response = preflight(client, origin)

    assert "Access-Control-Allow-Origin" not in response.headers


def test_post_from_the_blog_is_readable_by_its_script(client):
    response = client.post("/subscribe", json={"email": "ann@example.com"}, headers={"Origin": BLOG})

    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == BLOG


def test_post_from_another_origin_is_not_readable(client):
    response = client.post("/subscribe", json={"email": "ann@example.com"}, headers={"Origin": EVIL})

    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_is_only_on_subscribe(client):
    response = client.get("/healthz", headers={"Origin": BLOG})

    assert "Access-Control-Allow-Origin" not in response.headers


# --- framing and other response headers -----------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/healthz", "/embed.js", "/no-such-page"])
def test_ordinary_pages_may_not_be_framed(client, path):
    assert frame_ancestors(client.get(path)) == ["'none'"]


def test_the_embed_may_be_framed_by_the_blog_only(client):
    ancestors = frame_ancestors(client.get("/embed"))

    assert BLOG in ancestors and "'self'" in ancestors
    assert "'none'" not in ancestors and "*" not in ancestors
    assert not any("evil" in a for a in ancestors)


def test_the_iframe_thank_you_may_be_framed_by_the_blog(client):
    response = client.post("/subscribe", data={"email": "ann@example.com", "form": "iframe"})

    assert BLOG in frame_ancestors(response)


def test_the_confirm_page_may_not_be_framed(client):
    """Clickjacking guard: the confirm button must not sit under someone else's page."""
    from mailer import links

    client.post("/subscribe", json={"email": "ann@example.com"})
    page = client.get(links.confirm_url(1).removeprefix("http://mailer.test"))

    assert page.status_code == 200
    assert frame_ancestors(page) == ["'none'"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("GET", "/embed"), ("GET", "/healthz"),
                                              ("GET", "/nope"), ("POST", "/subscribe")])
def test_every_response_says_nosniff(client, method, path):
    response = client.open(path, method=method, json={"email": "x"} if method == "POST" else None)

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def session_cookie(client) -> str:
    from mailer import links

    client.post("/subscribe", json={"email": "ann@example.com"})
    page = client.get(links.confirm_url(1).removeprefix("http://mailer.test"))  # puts the CSRF token in the session
    return page.headers["Set-Cookie"]


def test_session_cookie_is_httponly(client):
    assert "HttpOnly" in session_cookie(client)


def test_session_cookie_is_samesite_lax(client):
    assert "SameSite=Lax" in session_cookie(client)


def test_https_base_url_adds_hsts(tmp_path, sqlite_template):
    with fresh_app(tmp_path, sqlite_template, BASE_URL="https://news.example.com") as app:
        response = app.test_client().get("/")

        assert "max-age=" in response.headers["Strict-Transport-Security"]


def test_https_base_url_makes_the_session_cookie_secure(tmp_path, sqlite_template):
    with fresh_app(tmp_path, sqlite_template, BASE_URL="https://news.example.com") as app:
        assert "Secure" in session_cookie(app.test_client())


def test_plain_http_base_url_keeps_the_session_cookie_usable(client):
    # A Secure cookie would never come back over plain http: nobody could log in to a console on http.
    cookie = session_cookie(client)
    assert "Secure" not in cookie and "HttpOnly" in cookie


def test_plain_http_base_url_sends_no_hsts(client):
    assert "Strict-Transport-Security" not in client.get("/").headers


# --- health -----------------------------------------------------------------------------------------

def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.is_json
    assert response.json == {"database": "ok", "broker": "ok"}


def test_healthz_is_503_when_the_database_is_down(tmp_path):
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/no/such/dir/mailer.db")
    with app.app_context():
        response = app.test_client().get("/healthz")
        db.engine.dispose()

    assert response.status_code == 503
    assert response.json["database"].startswith("down")
    assert response.json["broker"] == "ok"


# --- the development outbox ------------------------------------------------------------------------

def test_dev_outbox_lists_and_shows_mail_locally(client):
    one_mail_in_the_outbox(client)

    listing = client.get("/dev/outbox/")
    assert listing.status_code == 200
    assert "Confirm your subscription" in listing.text and "ann@example.com" in listing.text
    (link,) = re.findall(r'href="(/dev/outbox/[^"/]+\.eml)"', listing.text)

    shown = client.get(link)
    assert shown.status_code == 200
    assert "Confirm your subscription" in shown.text
    assert "http://mailer.test/confirm/" in shown.text

    html = client.get(link + "/html")
    assert html.status_code == 200 and html.mimetype == "text/html"
    assert "script-src 'none'" in html.headers["Content-Security-Policy"]
    assert "Confirm my subscription" in html.text


def test_dev_outbox_closes_the_files_it_reads(client):
    one_mail_in_the_outbox(client)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        listing = client.get("/dev/outbox/")
        (link,) = re.findall(r'href="(/dev/outbox/[^"/]+\.eml)"', listing.text)
        client.get(link)
        client.get(link + "/html")
        gc.collect()

    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_dev_outbox_is_empty_at_first(client):
    response = client.get("/dev/outbox/")
    assert response.status_code == 200
    assert "No mail yet" in response.text


@pytest.mark.parametrize("name", ["..%2Fmailer.db", "secret_key", "nothing.eml", "..%2F..%2Fetc%2Fpasswd",
                                  "%2Fetc%2Fpasswd"])
def test_dev_outbox_serves_only_its_own_eml_files(client, name):
    one_mail_in_the_outbox(client)

    assert client.get(f"/dev/outbox/{name}").status_code == 404


def test_dev_outbox_is_404_for_another_machine(client):
    one_mail_in_the_outbox(client)

    response = client.get("/dev/outbox/", environ_base={"REMOTE_ADDR": "192.0.2.10"})

    assert response.status_code == 404
    assert "Confirm your subscription" not in response.text


@pytest.mark.parametrize("header", [{"X-Forwarded-For": "192.0.2.10"}, {"Forwarded": "for=192.0.2.10"}])
def test_dev_outbox_is_404_through_a_proxy_on_this_machine(client, header):
    # A reverse proxy on the same host connects from loopback on behalf of every visitor (as /metrics decides).
    one_mail_in_the_outbox(client)

    response = client.get("/dev/outbox/", headers=header)

    assert response.status_code == 404
    assert "Confirm your subscription" not in response.text


@pytest.mark.parametrize("setting", [{"SMTP_URL": "smtp://127.0.0.1:2525"}, {"MAILER_ENV": "production"}])
def test_dev_outbox_is_404_with_real_mail_or_in_production(client, app, setting):
    one_mail_in_the_outbox(client)
    app.config.update(setting)

    listing = client.get("/dev/outbox/")

    assert listing.status_code == 404
    assert "Confirm your subscription" not in listing.text


# --- errors --------------------------------------------------------------------------------------------

def test_404_is_a_page_not_a_traceback(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "<h1>" in response.text and "Traceback" not in response.text


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/subscribe"), ("PUT", "/embed"), ("POST", "/healthz")])
def test_405_is_a_page_not_a_traceback(client, method, path):
    response = client.open(path, method=method)

    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert "does not take that kind of request" in response.text
    assert "Traceback" not in response.text


def test_errors_are_json_for_json_clients(client):
    response = client.get("/no-such-page", headers={"Accept": "application/json"})

    assert response.status_code == 404
    assert response.is_json and response.json["error"]


def test_an_oversized_body_is_refused_with_a_4xx(tmp_path, sqlite_template):
    with fresh_app(tmp_path, sqlite_template, MAX_CONTENT_LENGTH=10_000) as app:
        response = app.test_client().post("/subscribe", data={"email": "ann@example.com", "name": "x" * 20_000})

        assert response.status_code == 413
        assert "Traceback" not in response.text


# --- the embeds ----------------------------------------------------------------------------------------

def test_embed_js_is_javascript_that_posts_to_base_url(client):
    response = client.get("/embed.js")

    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert '"http://mailer.test/subscribe"' in response.text
    assert "fetch(" in response.text


def test_embed_renders_the_signup_form(client):
    response = client.get("/embed")

    assert response.status_code == 200
    assert '<form class="signup" action="/subscribe" method="post">' in response.text
    assert 'name="email"' in response.text
    assert 'name="form" value="iframe"' in response.text
    assert 'name="magnet" value="handbook"' in response.text


def test_embed_keeps_the_magnet_and_source_it_was_given(client):
    response = client.get("/embed", query_string={"magnet": "handbook", "source": BLOG + "/post"})

    assert f'name="source" value="{BLOG}/post"' in response.text


def test_embed_escapes_what_it_echoes(client):
    response = client.get("/embed", query_string={"source": '"><script>alert(1)</script>'})

    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text


def test_embed_with_an_unknown_magnet_is_a_4xx(client):
    response = client.get("/embed", query_string={"magnet": "no-such-magnet"})

    assert 400 <= response.status_code < 500
    assert "no-such-magnet" in response.text


# --- the signup rate limit --------------------------------------------------------------------------

def test_signups_are_rate_limited_per_client_ip(tmp_path, sqlite_template):
    with fresh_app(tmp_path, sqlite_template, RATELIMIT_ENABLED=True, SIGNUP_RATE_LIMIT="2/minute") as app:
        client = app.test_client()
        codes = [client.post("/subscribe", json={"email": f"a{i}@example.com"}).status_code for i in range(3)]
        other_ip = client.post("/subscribe", json={"email": "b@example.com"},
                               environ_base={"REMOTE_ADDR": "198.51.100.4"})
        form = client.post("/subscribe", data={"email": "c@example.com"})

        assert codes == [202, 202, 429]
        assert other_ip.status_code == 202
        assert form.status_code == 429 and form.mimetype == "text/html"
        assert "Too many attempts" in form.text


def test_opening_the_form_s_answer_address_again_leads_to_the_form(client):
    response = client.get("/subscribe")  # from the history, a bookmark, or the error page's own address
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert 'action="/subscribe"' in client.get("/").text


def test_no_message_page_is_a_dead_end(client, app):
    assert 'href="/" target="_top">Go to the signup form</a>' in client.get("/confirm/forged").text
    app.config["BLOG_URL"] = "https://blog.example.com/"
    identity.forget()  # the test's app context (and `g`) spans its requests: read the default blog address again
    assert 'href="https://blog.example.com/" target="_top">Back to the blog</a>' in client.get("/nowhere").text
    assert 'href="https://blog.example.com/" target="_top">Back to the blog</a>' in client.get("/unsubscribe/forged").text
    assert 'href="/admin/" target="_top">Back to the console</a>' in client.get("/admin/nowhere").text  # signed out
    # An iframe post refused as too large: the link leaves the frame rather than load the blog inside it.
    refused = client.post("/subscribe", data={"form": "iframe", "email": "a@example.com", "name": "x" * 70_000})
    assert refused.status_code == 413 and 'target="_top">Back to the blog</a>' in refused.text
    assert "Back to the blog" not in client.get("/embed?magnet=nothing-like-it").text  # the blog is around the frame

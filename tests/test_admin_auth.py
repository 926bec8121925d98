"""Console login: argon2 passwords, CSRF, lockout per account and per IP, safe `next`, logout, password change."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import AdminUser, LoginAttempt
from tests.admin_helpers import EMAIL, PASSWORD, create_admin, fresh_g_per_request, log_in, token  # noqa: F401

PAGES = ["/admin/", "/admin/subscribers", "/admin/subscribers/1", "/admin/subscribers/export.csv",
         "/admin/subscribers/import", "/admin/posts", "/admin/posts/new", "/admin/digests", "/admin/digests/1",
         "/admin/digests/1/progress", "/admin/magnets", "/admin/welcome", "/admin/embed", "/admin/outbox",
         "/admin/password"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_an_anonymous_visitor_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_login_goes_to_the_page_asked_for_and_the_password_is_stored_as_argon2(client):
    create_admin()
    stored = db.session.scalar(select(AdminUser.password_hash))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    response = log_in(client, next_url="/admin/posts?before=5")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/posts?before=5"
    assert client.get("/admin/posts").status_code == 200


def test_console_pages_run_no_inline_script_and_may_not_be_framed(client):
    create_admin()
    pages = [client.get("/admin/login")]
    log_in(client)
    pages += [client.get(path) for path in ("/admin/", "/admin/subscribers", "/admin/digests")]
    for page in pages:
        assert page.status_code == 200
        policy = dict(d.strip().split(" ", 1) for d in page.headers["Content-Security-Policy"].split(";"))
        assert policy["script-src"].strip() == "'self'" and policy["frame-ancestors"] == "'none'"
        assert page.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/admin/", "/\\evil.example",
                                    "javascript:alert(1)", "/unsubscribe/x", "http:/admin/x"])
def test_next_never_leaves_the_console(client, target):
    create_admin()
    response = log_in(client, next_url=target)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"


def test_a_wrong_password_or_unknown_account_is_refused_alike(client):
    create_admin()
    wrong = log_in(client, password="not the password")
    unknown = log_in(client, email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert b"do not match an account" in wrong.data and b"do not match an account" in unknown.data
    assert client.get("/admin/").status_code == 302


def test_a_post_without_the_csrf_token_is_refused(client):
    create_admin()
    response = client.post("/admin/login", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302
    log_in(client)
    assert client.post("/admin/logout").status_code == 400
    assert client.post("/admin/posts/fetch").status_code == 400
    assert client.get("/admin/").status_code == 200  # still logged in


def test_the_eleventh_attempt_on_an_account_is_refused_even_with_the_right_password(client):
    create_admin()
    for n in range(10):
        assert log_in(client, password=f"wrong {n}", REMOTE_ADDR=f"198.51.100.{n}").status_code == 401
    refused = log_in(client, REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 429 and b"Too many failed attempts" in refused.data
    assert client.get("/admin/").status_code == 302


def test_the_lockout_says_how_it_ends_and_admin_unlock_opens_sign_in_at_once(client, runner):
    create_admin()
    for n in range(10):
        log_in(client, password="wrong", REMOTE_ADDR="192.0.2.7")
    refused = log_in(client, REMOTE_ADDR="192.0.2.7")
    assert refused.status_code == 429
    assert "a try while it is closed counts as one more" in refused.text and "mailer admin unlock" in refused.text

    result = runner.invoke(args=["admin", "unlock"])
    assert result.exit_code == 0 and "Forgot 11 failed sign-in attempts" in result.output
    assert log_in(client, REMOTE_ADDR="192.0.2.7").status_code == 302


def test_ten_failures_from_one_address_lock_that_address_for_every_account(client):
    create_admin()
    create_admin("editor@example.com")
    for n in range(10):
        log_in(client, email=f"guess{n}@example.com", password="x", REMOTE_ADDR="192.0.2.7")
    assert log_in(client, REMOTE_ADDR="192.0.2.7").status_code == 429
    assert log_in(client, email="editor@example.com", REMOTE_ADDR="192.0.2.7").status_code == 429
    assert log_in(client, REMOTE_ADDR="192.0.2.8").status_code == 302  # another address still gets in


def test_the_lockout_ends_after_fifteen_minutes(client):
    from datetime import timedelta

    from mailer.models import utcnow

    create_admin()
    for n in range(10):
        log_in(client, password="wrong")
    assert log_in(client).status_code == 429  # locked: the right password is refused too
    db.session.execute(LoginAttempt.__table__.update().values(at=utcnow() - timedelta(minutes=16)))
    db.session.commit()
    assert log_in(client).status_code == 302


def test_logout_ends_the_session(client):
    create_admin()
    log_in(client)
    assert client.post("/admin/logout", data={"csrf_token": token(client)}).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_logout_ends_the_session_for_a_copy_of_its_cookie(app, client):
    create_admin()
    log_in(client)
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert copy.get("/admin/").status_code == 200
    other = app.test_client()
    log_in(other)

    assert client.post("/admin/logout", data={"csrf_token": token(client)}).status_code == 302

    assert copy.get("/admin/").status_code == 302
    assert other.get("/admin/").status_code == 200  # another login of the same account goes on


def test_changing_the_password_logs_out_other_browsers(app, client):
    create_admin()
    other = app.test_client()
    log_in(client)
    log_in(other)
    page = client.get("/admin/password")
    form = {"csrf_token": token(client, "/admin/password"), "current": PASSWORD}
    assert client.post("/admin/password", data={**form, "new": "short", "repeat": "short"}).status_code == 400
    wrong = client.post("/admin/password", data={**form, "current": "nope", "new": "a" * 12, "repeat": "a" * 12})
    assert b"not your current password" in wrong.data
    done = client.post("/admin/password", data={**form, "new": "a new long passphrase", "repeat": "a new long passphrase"})
    assert done.status_code == 302 and page.status_code == 200
    assert client.get("/admin/").status_code == 200
    assert other.get("/admin/").status_code == 302
    assert log_in(other, password="a new long passphrase").status_code == 302


def test_admin_create_reads_the_password_from_stdin_and_resets_it_when_run_again(runner, client):
    result = runner.invoke(args=["admin", "create", "Author@Example.com", "--password-stdin"],
                           input=PASSWORD + "\n")
    assert result.exit_code == 0 and "Created the account author@example.com" in result.output
    assert log_in(client).status_code == 302
    again = runner.invoke(args=["admin", "create", EMAIL, "--password-stdin"], input="another long password\n")
    assert again.exit_code == 0 and "new password" in again.output
    short = runner.invoke(args=["admin", "create", EMAIL, "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    assert db.session.scalar(select(AdminUser.email)) == EMAIL

"""Input shaped to break the parsers under us: broken URLs, NUL, lone surrogates, odd types, deep MIME. Each is a
clear 4xx (or a harmless answer), never a 500, and changes nothing it should not."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from mailer.api_tokens import create_token
from mailer.bounces import sns, verp
from mailer.extensions import db
from mailer.models import Consent, MailEvent
from tests import factories
from tests.admin_helpers import create_admin, csrf_from, log_in
from tests.test_bounces import add_subscriber, fresh, owe, process
from tests.test_openapi_fuzz import row_counts

BROKEN_URLS = ["http://[", "https://blog.example.com\uff20evil.example/", "http://[::1", "https://[blog.example.com]/"]


@pytest.fixture
def bearer(app) -> dict[str, str]:
    token = create_token(db.session, "hostile")
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


# --- URLs that urllib cannot split are not ours -------------------------------------------------------------

@pytest.mark.parametrize("url", BROKEN_URLS)
def test_a_broken_next_on_a_signup_is_no_return_address(client, url):
    response = client.post("/subscribe", data={"email": "ann@example.com", "next": url})
    assert response.status_code == 200 and "Location" not in response.headers
    assert factories.subscriber("ann@example.com") is not None


@pytest.mark.parametrize("url", BROKEN_URLS)
def test_a_broken_referer_is_no_blog_page_and_is_not_kept_as_the_source(client, url):
    response = client.post("/subscribe", data={"email": "ann@example.com"}, headers={"Referer": url})
    assert response.status_code == 200
    assert db.session.scalar(select(Consent.source_url)) is None
    refused = client.post("/subscribe", data={"email": "not an address"}, headers={"Referer": url})
    assert refused.status_code == 422


@pytest.mark.parametrize("url", BROKEN_URLS)
def test_a_broken_source_is_dropped_and_its_confirm_page_still_shows(client, url):
    from mailer.links import confirm_url

    response = client.post("/subscribe", json={"email": "ann@example.com", "source": url})
    assert response.status_code == 202
    consent = db.session.scalar(select(Consent))
    assert consent.source_url is None
    path = confirm_url(consent.id).removeprefix("http://mailer.test")
    page = client.get(path)
    assert page.status_code == 200
    assert client.post(path, data={"csrf_token": csrf_from(page.text)}).status_code == 200


def test_a_stored_broken_source_does_not_break_the_confirm_page(client):
    """Rows stored before the source was checked still hold such URLs."""
    from mailer.links import confirm_url

    client.post("/subscribe", json={"email": "ann@example.com"})
    consent = db.session.scalar(select(Consent))
    consent.source_url = "http://["
    db.session.commit()
    path = confirm_url(consent.id).removeprefix("http://mailer.test")
    page = client.get(path)
    assert client.post(path, data={"csrf_token": csrf_from(page.text)}).status_code == 200


@pytest.mark.parametrize("url", BROKEN_URLS)
def test_a_broken_next_on_the_console_login_goes_to_the_console_home(client, url):
    create_admin()
    response = log_in(client, next_url=url)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"


# --- NUL, which PostgreSQL cannot store or compare --------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_client(request):
    app = request.getfixturevalue("app" if request.param == "sqlite" else "private_pg_app")
    return app.test_client()


def test_a_nul_in_the_embed_query_is_a_400(any_db_client):
    response = any_db_client.get("/embed?magnet=%00")
    assert response.status_code == 400 and "NUL" in response.text and "magnet" in response.text


def test_a_nul_in_the_login_email_is_a_400(any_db_client):
    page = any_db_client.get("/admin/login")
    response = any_db_client.post("/admin/login", data={"email": "author\0@example.com", "password": "x",
                                                        "csrf_token": csrf_from(page.data)})
    assert response.status_code == 400 and "NUL" in response.text and "email" in response.text


def test_a_nul_in_an_api_query_is_a_400_naming_it(any_db_client):
    token = create_token(db.session, "hostile")
    db.session.commit()
    response = any_db_client.get("/api/v1/subscribers?q=%00", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and "NUL" in response.json["error"] and "'q'" in response.json["error"]


def test_a_nul_in_a_path_is_a_400(any_db_client):
    token = create_token(db.session, "hostile")
    db.session.commit()
    response = any_db_client.get("/api/v1/subscribers/ann%00@example.com", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and "NUL" in response.json["error"]


# --- lone surrogates in JSON, which no UTF-8 text can hold ----------------------------------------------------

SURROGATE_NAME = '{"email": "ann@example.com", "name": "Ann \\ud800"}'


def test_a_lone_surrogate_in_a_signup_name_is_a_400_naming_the_field(client):
    before = row_counts()
    response = client.post("/subscribe", data=SURROGATE_NAME, content_type="application/json")
    assert response.status_code == 400 and response.json["field"] == "name" and "'name'" in response.json["error"]
    assert row_counts() == before


def test_a_lone_surrogate_in_an_api_name_is_a_400_naming_the_field(client, bearer):
    before = row_counts()
    response = client.post("/api/v1/subscribers", data=SURROGATE_NAME, content_type="application/json", headers=bearer)
    assert response.status_code == 400 and response.json["field"] == "name" and "'name'" in response.json["error"]
    nested = client.post("/api/v1/posts", data='{"title": "T", "url": "https://blog.example.com/x", "tags": ["\\udfff"]}',
                         content_type="application/json", headers=bearer)
    assert nested.status_code == 400 and nested.json["field"] == "tags[0]"
    assert row_counts() == before


# --- SNS certificate URLs that only look like Amazon's --------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://evil.example\\@sns.eu-west-1.amazonaws.com/cert.pem",
    "https://evil.example@sns.eu-west-1.amazonaws.com/cert.pem",
    "https://sns.eu-west-1.amazonaws.com\\@evil.example/cert.pem",
    "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
    "https://sns.eu-west-1.amazonaws.com/cert.pem?from=elsewhere",
    "https://sns.eu-west-1.amazonaws.com/a\\b.pem",
    "https://evil.example\uff20sns.eu-west-1.amazonaws.com/cert.pem",
    "https://[sns.eu-west-1.amazonaws.com/cert.pem",
    "http://[",
])
def test_an_odd_signing_cert_url_is_refused_and_never_fetched(app, client, monkeypatch, url):
    from tests.test_webhooks import TOPIC

    fetched: list[str] = []
    monkeypatch.setattr(sns, "fetch", lambda u: fetched.append(u) or b"")
    monkeypatch.setattr(sns, "_certificates", {})
    app.config["SES_TOPIC_ARNS"] = [TOPIC]
    body = {"Type": "Notification", "MessageId": "m-1", "TopicArn": TOPIC, "Message": "{}", "Timestamp": "2024-05-15",
            "SignatureVersion": "1", "Signature": "AAAA", "SigningCertURL": url}
    response = client.post("/webhooks/ses", data=json.dumps(body), content_type="text/plain")
    assert response.status_code == 401 and "SigningCertURL" in response.json["error"]
    assert fetched == []


# --- MIME nested deeper than the email package can recurse ---------------------------------------------------

def nested_message(depth: int) -> bytes:
    head = b"".join(b"Content-Type: message/rfc822\r\n\r\n" for _ in range(depth))
    return b"From: mailer-daemon@example.net\r\nSubject: Undelivered Mail\r\n" + head + b"Subject: x\r\n\r\nbody\r\n"


def nested_multipart(depth: int) -> bytes:
    parts = [f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode() for i in range(depth)]
    ends = [f"\r\n--b{i}--\r\n".encode() for i in reversed(range(depth))]
    return b"From: mailer-daemon@example.net\r\n" + b"".join(parts) + b"Content-Type: text/plain\r\n\r\nx" + b"".join(ends)


@pytest.mark.parametrize("make", [nested_message, nested_multipart])
def test_a_dsn_nested_3000_deep_is_refused_and_suppresses_nobody(client, bearer, make):
    sub = add_subscriber()
    recipient = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    response = client.post(f"/webhooks/dsn?recipient={recipient}", data=make(3000),
                           headers={**bearer, "Content-Type": "message/rfc822"})
    assert response.status_code == 400 and "nested too deeply" in response.json["error"]
    assert fresh(sub).status == "confirmed" and db.session.scalar(select(MailEvent)) is None


@pytest.mark.parametrize("make", [nested_message, nested_multipart])
def test_bounces_process_refuses_a_message_nested_3000_deep(app, runner, make):
    sub = add_subscriber()
    recipient = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    result = process(runner, make(3000), "--recipient", recipient)
    assert result.exit_code == 1 and "nested too deeply" in result.stderr
    assert fresh(sub).status == "confirmed"


# --- a test copy of a digest goes to one address, given as a string -----------------------------------------

@pytest.mark.parametrize("test_to", [5, ["editor@example.com"], {"to": "editor@example.com"}, True])
def test_a_digest_test_to_that_is_not_a_string_is_a_400_naming_it(client, bearer, test_to):
    factories.post()
    before = row_counts()
    response = client.post("/api/v1/digests", json={"test_to": test_to}, headers=bearer)
    assert response.status_code == 400 and response.json["field"] == "test_to" and "test_to" in response.json["error"]
    assert row_counts() == before

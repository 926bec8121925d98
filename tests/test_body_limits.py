"""Body limits on a real server: a chunked body (no Content-Length) is cut at the endpoint's limit and answered 413."""
from __future__ import annotations

import base64
import http.client
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.web import body_limits
from tests.browser import serve_in_thread
from tests.smtp_sink import _free_port

BLOCK = 64 * 1024


@pytest.fixture
def server(app):
    """The app behind werkzeug's threaded server on a free port; yields the port."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    app.config.update(SENDGRID_WEBHOOK_PUBLIC_KEY=base64.b64encode(der).decode(),
                      SES_TOPIC_ARNS=["arn:aws:sns:eu-west-1:123456789012:bounces"])
    port = _free_port()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    serve_in_thread(httpd)
    try:
        yield port
    finally:
        httpd.shutdown()
        httpd.server_close()


def post_chunked(port: int, path: str, first: bytes, size: int, headers: dict | None = None) -> tuple[int, bytes]:
    """POST `size` bytes (starting with `first`, padded with spaces) with Transfer-Encoding: chunked."""

    def chunks():
        sent = 0
        while sent < size:
            block = (first if sent == 0 else b"") + b" " * BLOCK
            block = block[:size - sent]
            sent += len(block)
            yield block

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        try:
            connection.request("POST", path, body=chunks(), encode_chunked=True,
                               headers={"Transfer-Encoding": "chunked", **(headers or {})})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent: its answer is still there
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_chunked_signup_past_64_kb_is_a_413(server):
    status, body = post_chunked(server, "/subscribe", b'{"email": "ann@example.com", "name": "Ann"}',
                                body_limits.SMALL + BLOCK, {"Content-Type": "application/json"})

    assert status == 413, body
    assert b"64 KB" in body


def test_a_chunked_signup_within_the_limit_is_read(server):
    status, body = post_chunked(server, "/subscribe", b'{"email": "ann@example.com"}', 2000,
                                {"Content-Type": "application/json"})

    assert status == 202, body


def test_a_chunked_api_call_past_64_kb_is_a_413(app, server):
    with app.app_context():
        token = create_token(db.session, "tests")
        db.session.commit()
    status, body = post_chunked(server, "/api/v1/subscribers", b'{"email": "ann@example.com"}',
                                body_limits.SMALL + BLOCK,
                                {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})

    assert status == 413 and json.loads(body)["error"]


@pytest.mark.parametrize("path, content_type", [("/webhooks/sendgrid", "application/json"),
                                                ("/webhooks/ses", "text/plain"),
                                                ("/webhooks/dsn", "message/rfc822")])
def test_a_chunked_webhook_past_25_mb_is_a_413_before_its_signature_is_checked(app, server, path, content_type):
    with app.app_context():
        token = create_token(db.session, "mta")
        db.session.commit()
    status, body = post_chunked(server, path, b"[", body_limits.WEBHOOK + BLOCK,
                                {"Content-Type": content_type, "Authorization": f"Bearer {token}"})

    assert status == 413, body
    assert "25 MB" in json.loads(body)["error"]


def test_a_chunked_console_form_past_its_limit_is_a_413(server):
    status, _ = post_chunked(server, "/admin/login", b"email=a%40example.com&password=", body_limits.CONSOLE + BLOCK,
                             {"Content-Type": "application/x-www-form-urlencoded"})

    assert status == 413


def test_every_endpoint_has_a_limit(app):
    limits = {}
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            limits[rule.endpoint] = body_limits.limit_for(rule.endpoint)
    assert all(limits.values())
    assert limits["public.subscribe"] == limits["api.subscribers_add"] == body_limits.SMALL == 64 * 1024
    assert limits["webhooks.dsn"] == limits["webhooks.sendgrid"] == body_limits.WEBHOOK == 25 * 1024 * 1024
    assert limits["admin.import_upload"] == body_limits.CSV_UPLOAD

"""Log lines carry the request id or the delivery id, so a mail can be followed from the signup to the SMTP reply."""
from __future__ import annotations

import io
import json
import logging

import pytest

from mailer.extensions import db
from mailer.ops import logs
from mailer.outbox import sender as outbox
from tests.conftest import Worker, build_stack_env, fresh_database, make_app, stack_overrides


def capture_json_lines(request):
    """Everything logged from now to the end of the test, as our JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def restore():
        root.removeHandler(handler)
        root.setLevel(level)

    request.addfinalizer(restore)
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def json_lines(request):
    return capture_json_lines(request)


def test_request_id_is_echoed_when_sane_and_made_up_otherwise(client):
    assert client.get("/healthz", headers={"X-Request-ID": "edge-4f2a.9:1"}).headers["X-Request-ID"] == "edge-4f2a.9:1"
    for bad in ("two words", "x" * 200, "id\u2028forged", ""):
        made = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert made != bad and logs.SANE_REQUEST_ID.match(made)
    assert logs.SANE_REQUEST_ID.match(client.get("/healthz").headers["X-Request-ID"])


def test_json_lines_trace_a_signup_to_the_delivery_and_its_reply(client, app, json_lines):
    response = client.post("/subscribe", json={"email": "traced@example.com"}, headers={"X-Request-ID": "req-trace-1"})
    assert response.status_code == 202 and response.headers["X-Request-ID"] == "req-trace-1"
    signup = [e for e in json_lines() if e["message"].startswith("signup stored")]
    assert len(signup) == 1 and signup[0]["request_id"] == "req-trace-1"
    (delivery_id,) = signup[0]["delivery_ids"]
    assert {"time", "level", "logger", "message"} <= signup[0].keys()

    outbox.deliver_due(10)  # the local outbox transport, in this process
    sent = [e for e in json_lines() if e.get("delivery_id") == delivery_id]
    assert sent and "250" in sent[-1]["message"] and sent[-1]["level"] == "INFO"
    assert "request_id" not in sent[-1]  # outside a request nothing is made up


def test_text_lines_carry_the_ids_in_brackets():
    record = logging.LogRecord("mailer.outbox", logging.INFO, __file__, 1, "sent: %s", ("250 ok",), None)
    with logs.delivery(42):
        logs.ContextFilter().filter(record)
    assert logs.TextFormatter().format(record).endswith("mailer.outbox: sent: 250 ok [delivery_id=42]")


@pytest.mark.integration
def test_worker_writes_json_lines_with_the_delivery_id_and_the_smtp_reply(redis_url, smtp, tmp_path, request):
    env = build_stack_env(fresh_database("mailer_logs"), redis_url, smtp.url, tmp_path, LOG_FORMAT="json")
    json_lines = capture_json_lines(request)  # after the migration, whose logging setup replaces the root's handlers
    worker = Worker(env, tmp_path / "worker.log", concurrency=1, name="logs")
    try:
        app = make_app(tmp_path, **stack_overrides(env))
        with app.app_context():
            client = app.test_client()
            assert client.post("/subscribe", json={"email": "trail@example.com"},
                               headers={"X-Request-ID": "req-trail"}).status_code == 202
            (delivery_id,) = next(e["delivery_ids"] for e in json_lines() if e.get("request_id") == "req-trail"
                                  and e["message"].startswith("signup stored"))
            smtp.wait_for("trail@example.com", "Confirm", timeout=60)
            db.session.remove()
            db.engine.dispose()
        import time

        deadline = time.monotonic() + 10
        while True:
            entries = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
            trail = [e for e in entries if e.get("delivery_id") == delivery_id]
            if trail or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert trail and "250" in trail[-1]["message"], worker.log()[-3000:]
        assert {"time", "level", "logger", "message"} <= trail[-1].keys()
        # Celery's own lines go through the same formatter.
        assert any(e["logger"].startswith("celery") for e in entries)
    finally:
        worker.stop()

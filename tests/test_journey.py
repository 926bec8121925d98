"""The whole journey on PostgreSQL + Redis + a Celery worker + SMTP: signup, confirm, handbook, welcome, unsubscribe."""
from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import Delivery, Subscriber
from tests.conftest import csrf_from, make_app, stack_overrides
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def link(msg, path: str) -> str:
    text = msg.get_body(("plain",)).get_content()
    return re.search(rf"http://mailer\.test(/{path}/\S+)", text).group(1)


def test_signup_to_welcome_on_the_real_stack(pg_app, worker, smtp):
    client = pg_app.test_client()
    started = time.monotonic()
    response = client.post("/subscribe", json={"email": "Reader@Example.com", "name": "Reader"},
                           headers={"Origin": "https://blog.example.com"})
    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == "https://blog.example.com"

    [confirmation] = smtp.wait_for("reader@example.com", "Confirm your")
    assert "Reader" not in confirmation.as_string()
    assert confirmation["List-Unsubscribe"] is None
    confirm_path = link(confirmation, "confirm")

    page = client.get(confirm_path)
    assert b"confirm my subscription" in page.data.lower()
    assert db.session.scalar(select(Subscriber.status)) == "pending"
    confirmed = client.post(confirm_path, data={"csrf_token": csrf_from(page.data)})
    assert confirmed.status_code == 200
    download_path = re.search(rb'href="http://mailer\.test(/download/[^"]+)"', confirmed.data).group(1).decode()

    [handbook] = smtp.wait_for("reader@example.com", "Your copy")
    [welcome] = smtp.wait_for("reader@example.com", "Welcome")
    journey = time.monotonic() - started
    print(f"\njourney on PostgreSQL+Redis+Celery+SMTP: signup to welcome mail in {journey:.2f}s")

    for path in (download_path, link(handbook, "download")):
        with client.get(path) as pdf:
            assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert welcome["List-Id"] and welcome["Message-ID"]
    assert {part.get_content_type() for part in welcome.iter_parts()} == {"text/plain", "text/html"}

    unsubscribe_path = re.search(r"<http://mailer\.test(/unsubscribe/[^>]+)>", welcome["List-Unsubscribe"]).group(1)
    one_click = pg_app.test_client().post(unsubscribe_path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    db.session.expire_all()
    assert db.session.scalar(select(Subscriber.status)) == "unsubscribed"
    assert len(smtp.to("reader@example.com")) == 3


def test_a_signup_is_kept_and_confirmed_when_the_broker_is_down(stack_env, worker, smtp, tmp_path):
    """Redis unreachable from the web app: the signup still succeeds, and beat's sweep sends the mail."""
    overrides = {**stack_overrides(stack_env), "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}
    app = make_app(tmp_path, **overrides)
    from tests.conftest import truncate_all

    truncate_all(app)
    smtp.clear()
    with app.app_context():
        response = app.test_client().post("/subscribe", json={"email": "offline@example.com"})
        assert response.status_code == 202
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 1
        smtp.wait_for("offline@example.com", "Confirm", timeout=20)
        db.session.remove()
        db.engine.dispose()


def test_unsubscribe_stops_list_mail_already_queued(pg_app, worker, smtp):
    from datetime import timedelta

    from mailer.models import utcnow
    from mailer.outbox import ledger
    from mailer.people import subscriptions

    subscriber = Subscriber(email="soon-gone@example.com", status="confirmed", confirmed_at=utcnow())
    staying = Subscriber(email="staying@example.com", status="confirmed", confirmed_at=utcnow())
    db.session.add_all([subscriber, staying])
    db.session.flush()
    for sub in (subscriber, staying):
        ledger.queue(db.session, "welcome", sub.id, f"welcome:{sub.id}")
    db.session.execute(Delivery.__table__.update().values(next_attempt_at=utcnow() + timedelta(seconds=2)))
    db.session.commit()

    subscriptions.unsubscribe(db.session, subscriber.id)
    db.session.commit()

    # The other welcome, due at the same moment, arriving means a worker has taken the rows that fell due.
    smtp.wait_for("staying@example.com", "Welcome")

    def status() -> str:
        db.session.rollback()
        return db.session.scalar(select(Delivery.status).where(Delivery.subscriber_id == subscriber.id))

    wait_until(lambda: status() not in ("queued", "sending"), 30, "the unsubscribed address's welcome settled")
    assert smtp.to("soon-gone@example.com") == []
    assert status() == "skipped"


def test_repeated_wake_ups_and_confirm_clicks_send_one_copy(pg_app, worker, smtp):
    client = pg_app.test_client()
    client.post("/subscribe", json={"email": "twice@example.com"})
    [confirmation] = smtp.wait_for("twice@example.com", "Confirm")
    path = link(confirmation, "confirm")
    token = csrf_from(client.get(path).data)
    for _ in range(3):
        assert client.post(path, data={"csrf_token": token}).status_code == 200
    celery = pg_app.extensions["celery"]
    for _ in range(5):
        celery.send_task("worker.tasks.deliver_due")
    smtp.wait_for("twice@example.com", "Welcome")

    def unfinished() -> int:
        db.session.rollback()
        return db.session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.status.in_(["queued", "sending"])))

    # Once every row is recorded, every mail is at the server: a copy too many would be among them.
    wait_until(lambda: unfinished() == 0, 30, "the worker recording every mail it sent")
    subjects = sorted(m["Subject"] for m in smtp.to("twice@example.com"))
    assert len(subjects) == 3, subjects


BAD_SIGNUPS = [
    ({"email": "not-an-address"}, "email"),
    ({"email": ""}, "email"),
    ({"email": "a" * 250 + "@example.com"}, "email"),
    ({"email": "x@example.com\r\nBcc: victim@example.com"}, "email"),
    ({"email": "x@example.com", "name": "Eve\nBcc: victim@example.com"}, "name"),
    ({"email": "x@example.com\0"}, "email"),
    ({"email": "x@example.com", "magnet": "no-such-thing"}, "magnet"),
    ({"name": "no email"}, "email"),
    ({"email": 42}, "email"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SIGNUPS)
def test_bad_signups_get_a_4xx_naming_the_field_and_store_nothing(pg_app, body, field):
    response = pg_app.test_client().post("/subscribe", json=body)
    assert 400 <= response.status_code < 500
    assert response.json["field"] == field and response.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"just a string"', b"{not json", b""])
def test_bodies_that_are_not_a_json_object_get_400(pg_app, raw):
    response = pg_app.test_client().post("/subscribe", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert "JSON object" in response.json["error"]


@pytest.mark.parametrize("path", ["/confirm/garbage", "/download/garbage", "/unsubscribe/garbage"])
def test_tampered_links_get_a_4xx_page(pg_app, path):
    client = pg_app.test_client()
    assert client.get(path).status_code == 400
    assert b"not valid" in client.get(path).data

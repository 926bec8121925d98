"""Digests on PostgreSQL with a real Celery worker (two processes) and an SMTP server: one copy each, no more."""
from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import Delivery, Subscriber
from tests import factories
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def wait_for_digest(api, digest_id: int, done=lambda s: s["pending"] == 0, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api.get(f"/digests/{digest_id}").json
        if done(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"digest {digest_id} not done in {timeout}s: {state}")


def in_hand(digest_id: int) -> int:
    """The digest's mails a worker has claimed and not yet recorded."""
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.digest_id == digest_id,
                                                                                Delivery.status == "sending"))


def copies(smtp, subject: str) -> Counter:
    with smtp.handler.lock:
        return Counter(r.recipients[0] for r in smtp.handler.messages if subject in r.message["Subject"])


def test_a_digest_reaches_every_confirmed_subscriber_once(pg_app, worker, smtp, api):
    confirmed = factories.subscribers(150)
    pending = factories.subscribers(5, "pending", prefix="pending")
    gone = factories.subscribers(5, "unsubscribed", prefix="gone")
    factories.post(n=1)
    factories.post("How to Answer 'Why Do You Want to Work Here?'", n=2)

    created = api.post("/digests", {"intro": "Two new answers this week."})
    assert created.status_code == 202
    state = wait_for_digest(api, created.json["id"])
    assert state["status"] == "sent"
    assert (state["recipients"], state["sent"], state["failed"], state["pending"]) == (150, 150, 0, 0)

    received = copies(smtp, "Turned Down?, and 1 more")
    assert set(received) == set(confirmed) and set(received.values()) == {1}
    assert not any(address in received for address in pending + gone)

    mail = smtp.to(confirmed[0])[0]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and mail["List-Id"]
    text = mail.get_body(("plain",)).get_content()
    assert "Two new answers this week." in text and "http://mailer.test/c/" in text  # tracked: the post link goes through the redirect
    assert "Career Q&A: Can You Keep in Touch" in text
    assert "/unsubscribe/" in mail["List-Unsubscribe"]

    again = api.post("/digests")
    assert again.status_code == 409 and "no new posts" in again.json["error"]


def test_pause_holds_the_rest_and_resume_finishes_exactly_once(pg_app, worker, smtp, api):
    confirmed = factories.subscribers(120)
    factories.post(n=1)
    smtp.handler.delay = 0.02
    digest_id = api.post("/digests").json["id"]
    wait_for_digest(api, digest_id, done=lambda s: s["sent"] >= 10)
    paused = api.post(f"/digests/{digest_id}/pause")
    assert paused.status_code == 200 and paused.json["status"] == "paused"
    wait_until(lambda: in_hand(digest_id) == 0, 30, "the mails in a worker's hands finishing")
    held = api.get(f"/digests/{digest_id}").json
    # Mail owed after the pause goes out; a claim that took it would have taken held rows too, were they due.
    pg_app.test_client().post("/subscribe", json={"email": "after-the-pause@example.com"})
    smtp.wait_for("after-the-pause@example.com", "Confirm")
    wait_until(lambda: in_hand(digest_id) == 0, 30, "the worker finishing its batch")
    assert api.get(f"/digests/{digest_id}").json["sent"] == held["sent"] < 120
    assert api.post(f"/digests/{digest_id}/pause").status_code == 409

    smtp.handler.delay = 0
    assert api.post(f"/digests/{digest_id}/resume").json["status"] == "sending"
    state = wait_for_digest(api, digest_id)
    assert state["sent"] == 120
    received = copies(smtp, "Career Q&A")
    assert set(received) == set(confirmed) and set(received.values()) == {1}


def test_cancel_stops_the_digest_and_frees_its_posts(pg_app, worker, smtp, api):
    factories.subscribers(80)
    factories.post(n=1)
    smtp.handler.delay = 0.05
    digest_id = api.post("/digests").json["id"]
    wait_for_digest(api, digest_id, done=lambda s: s["sent"] >= 3)
    cancelled = api.post(f"/digests/{digest_id}/cancel").json
    assert cancelled["status"] == "cancelled"
    wait_until(lambda: in_hand(digest_id) == 0, 30, "the worker sending or skipping the mails it had claimed")
    final = api.get(f"/digests/{digest_id}").json
    assert final["skipped"] > 0 and final["sent"] + final["skipped"] + final["pending"] == 80
    assert final["sent"] < 80
    smtp.handler.delay = 0
    # The posts of a cancelled digest are new again for the next one.
    assert api.post("/digests", {"dry_run": True}).status_code == 200


def test_dry_run_preview_and_test_send_touch_no_subscriber(pg_app, worker, smtp, api):
    factories.subscribers(3)
    factories.post(n=1)
    dry = api.post("/digests", {"dry_run": True, "subject": "This week"})
    assert dry.status_code == 200 and dry.json["recipients"] == 3 and "Read more" in dry.json["text"]
    preview = api.get("/digests/preview?format=text&email=reader1@example.com")
    assert preview.status_code == 200 and "/unsubscribe/" in preview.get_data(as_text=True)
    test = api.post("/digests", {"test_to": "editor@example.com"})
    assert test.status_code == 202
    [copy] = smtp.wait_for("editor@example.com", "[Test]")
    assert "Career Q&A" in copy["Subject"]
    # Every mail is a row first: the test copy's is the only one, so no subscriber's mail can be on its way.
    db.session.rollback()
    assert list(db.session.scalars(select(Delivery.kind))) == ["test"]
    assert smtp.to("reader0@example.com") == []
    assert api.get("/digests").json["digests"] == []


@pytest.mark.parametrize("body", [
    pytest.param({"subject": 5}, id="number-subject"),
    pytest.param({"post_ids": "1"}, id="post-ids-not-a-list"),
    pytest.param({"post_ids": [True]}, id="post-id-not-a-number"),
    pytest.param({"subject": "a\r\nBcc: x"}, id="crlf-subject"),
    pytest.param({"subject": "Weekly\x85Bcc: x"}, id="next-line-subject"),
    pytest.param({"subject": "Weekly\u2028Bcc: x"}, id="line-separator-subject"),
])
def test_bad_digest_requests_get_4xx(pg_app, api, body):
    factories.post(n=1)
    response = api.post("/digests", body)
    assert 400 <= response.status_code < 500 and response.json["error"]


def test_queue_says_whether_it_inserted_on_postgresql(pg_app):
    from mailer.outbox import ledger

    [email] = factories.subscribers(1)
    subscriber_id = db.session.scalar(select(Subscriber.id).where(Subscriber.email == email))
    assert ledger.queue(db.session, "welcome", subscriber_id, "welcome:test:1") is True
    assert ledger.queue(db.session, "welcome", subscriber_id, "welcome:test:1") is False
    db.session.rollback()

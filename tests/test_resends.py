"""Resending a digest to its readers who did not engage: once, now or later, decided when it goes."""
from __future__ import annotations

import email
import time
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.models import Click, Delivery, Digest, Open, Subscriber
from mailer.outbox import sender
from mailer.posts import click_buffer, digests, resends
from mailer.posts.click_store import Hit
from mailer.posts.digest_schedule import start_due_digests
from tests import factories
from tests.test_digests import copies, wait_for_digest
from tests.waiting import wait_until


def sent_digest(readers: int = 6) -> tuple[Digest, list[int]]:
    """A digest owed to `readers` readers and marked sent to all of them; their ids in order."""
    factories.subscribers(readers)
    factories.post(n=1)
    digest = digests.create_digest(db.session, "Keep in touch?")
    db.session.execute(update(Delivery).where(Delivery.digest_id == digest.id).values(status="sent"))
    db.session.commit()
    return digest, list(db.session.scalars(select(Subscriber.id).order_by(Subscriber.id)))


def engage(table, digest: Digest, subscriber_id: int, human: bool = True) -> None:
    delivery_id = db.session.scalar(select(Delivery.id).where(Delivery.digest_id == digest.id,
                                                              Delivery.subscriber_id == subscriber_id))
    values = {"delivery_id": delivery_id, "subscriber_id": subscriber_id, "digest_id": digest.id, "human": human}
    if table is Click:
        values["post_id"] = digest.posts[0].id
    db.session.execute(table.__table__.insert().values(**values))
    db.session.commit()


def owed_to(digest_id: int) -> list[int]:
    db.session.rollback()
    return list(db.session.scalars(select(Delivery.subscriber_id).where(Delivery.digest_id == digest_id)
                                   .order_by(Delivery.subscriber_id)))


def resend_now(original: Digest, subject: str = "In case you missed it", **options) -> Digest:
    resend = resends.schedule_resend(db.session, original, subject, **options)
    digests.start_digest(db.session, resend)
    db.session.commit()
    return resend


def test_a_resend_goes_to_the_readers_with_no_human_click_and_only_once(either_app):
    digest, ids = sent_digest(6)
    engage(Click, digest, ids[0])                    # a person clicked: engaged
    engage(Click, digest, ids[1], human=False)       # only a link scanner: not engaged
    db.session.execute(update(Delivery).where(Delivery.subscriber_id == ids[2]).values(status="failed"))
    db.session.execute(update(Subscriber).where(Subscriber.id == ids[3]).values(status="unsubscribed"))
    db.session.execute(update(Subscriber).where(Subscriber.id == ids[4]).values(
        paused_until=datetime.now(timezone.utc) + timedelta(days=3)))
    db.session.commit()

    resend = resend_now(digest)
    assert owed_to(resend.id) == [ids[1], ids[5]]
    assert resend.recipients == 2 and resend.follows_id == digest.id and resend.status == "sending"
    assert [p.id for p in resend.posts] == [p.id for p in digest.posts]
    keys = set(db.session.scalars(select(Delivery.dedupe_key).where(Delivery.digest_id == resend.id)))
    assert keys == {f"digest:{resend.id}:{ids[1]}", f"digest:{resend.id}:{ids[5]}"}

    with pytest.raises(resends.AlreadyResent, match="at most once"):
        resends.schedule_resend(db.session, db.session.get(Digest, digest.id), "Another try")
    with pytest.raises(resends.AlreadyResent, match="itself a resend"):
        resends.schedule_resend(db.session, db.session.get(Digest, resend.id), "Another try")
    assert owed_to(resend.id) == [ids[1], ids[5]]


def test_a_resend_neither_makes_its_posts_new_nor_takes_new_posts(either_app):
    digest, _ = sent_digest(3)
    resend = resends.schedule_resend(db.session, digest, "Did you see this?", after_hours=5)
    db.session.commit()
    assert digests.unsent_posts(db.session) == []
    newer = factories.post("A newer answer", n=0)
    assert [p.id for p in digests.unsent_posts(db.session)] == [newer.id]
    assert [p.id for p in resend.posts] == [p.id for p in digest.posts]  # the digest's posts, not the new one
    digests.cancel(db.session, resend)
    db.session.commit()
    assert [p.id for p in digests.unsent_posts(db.session)] == [newer.id]  # the digest still carried them
    following = digests.create_digest(db.session)
    assert [p.id for p in following.posts] == [newer.id]


def test_a_later_resend_decides_who_has_not_engaged_when_it_goes(either_app):
    digest, ids = sent_digest(4)
    resend = resends.schedule_resend(db.session, digest, "Still time to read", after_hours=2)
    db.session.commit()
    assert resend.status == "scheduled" and owed_to(resend.id) == []
    assert start_due_digests(db.session) == []  # not due yet

    engage(Click, digest, ids[2])  # a click after the resend was asked for, before it goes
    due = datetime.now(timezone.utc) + timedelta(hours=2, seconds=1)
    assert [d.id for d in start_due_digests(db.session, now=due)] == [resend.id]
    db.session.commit()
    assert owed_to(resend.id) == [ids[0], ids[1], ids[3]]
    assert start_due_digests(db.session, now=due + timedelta(hours=1)) == []  # a second beat owes nothing
    db.session.commit()
    assert owed_to(resend.id) == [ids[0], ids[1], ids[3]]


def test_unless_opened_skips_people_who_opened_or_clicked(either_app):
    either_app.config["OPEN_TRACKING"] = True
    digest, ids = sent_digest(5)
    engage(Open, digest, ids[0])
    engage(Open, digest, ids[1], human=False)  # an image proxy: not a person
    engage(Click, digest, ids[2])
    resend = resend_now(digest, unless="opened")
    assert owed_to(resend.id) == [ids[1], ids[3], ids[4]] and resend.resend_unless == "opened"


def test_a_resend_of_a_digest_cancelled_since_sends_nothing(app):
    factories.subscribers(3)
    factories.post(n=1)
    digest = digests.create_digest(db.session)
    db.session.execute(update(Delivery).where(Delivery.id == db.session.scalar(
        select(func.min(Delivery.id)).where(Delivery.digest_id == digest.id))).values(status="sent"))
    db.session.commit()
    resend = resends.schedule_resend(db.session, digest, "Once more", after_hours=1)
    digests.cancel(db.session, digest)
    db.session.commit()
    assert start_due_digests(db.session, now=datetime.now(timezone.utc) + timedelta(hours=2))
    db.session.commit()
    assert db.session.get(Digest, resend.id).status == "cancelled" and owed_to(resend.id) == []


def test_clicks_waiting_in_redis_count_before_the_resend_is_owed(app, redis_url, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    monkeypatch.setitem(app.config, "CELERY_QUEUE", "followups-resend-test")
    digest, ids = sent_digest(3)
    delivery = db.session.scalar(select(Delivery.id).where(Delivery.subscriber_id == ids[1]))
    browser = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
    assert click_buffer.push(app.config, Hit(delivery, ids[1], digest.id, digest.posts[0].id, time.time(), "GET", browser))
    resend = resend_now(digest)
    assert owed_to(resend.id) == [ids[0], ids[2]]


def test_the_send_time_checks_drop_readers_paused_or_gone_since_it_was_owed(app):
    digest, ids = sent_digest(4)
    resend = resend_now(digest, "Worth a second look")
    db.session.execute(update(Subscriber).where(Subscriber.id == ids[0]).values(
        paused_until=datetime.now(timezone.utc) + timedelta(days=30)))
    db.session.execute(update(Subscriber).where(Subscriber.id == ids[1]).values(status="unsubscribed"))
    db.session.execute(update(Subscriber).where(Subscriber.id == ids[2]).values(status="bounced"))
    db.session.commit()
    assert sender.deliver_due() == 4
    rows = dict(db.session.execute(select(Delivery.subscriber_id, Delivery.status)
                                   .where(Delivery.digest_id == resend.id)).all())
    assert rows == {ids[0]: "skipped", ids[1]: "skipped", ids[2]: "skipped", ids[3]: "sent"}
    [mail] = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in Path(app.config["OUTBOX_DIR"]).glob("*.eml")]
    assert mail["Subject"] == "Worth a second look" and mail["To"] == "reader3@example.com"
    assert f"/archive/{digest.id}" in mail.get_body(("plain",)).get_content()  # the digest's page, not its own


# --- the API and the console ----------------------------------------------------------------------------------

def bearer(app) -> dict:
    token = create_token(db.session, "tests")
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_the_api_resends_once_and_answers_409_the_second_time(either_app):
    digest, ids = sent_digest(3)
    engage(Click, digest, ids[0])
    client, auth = either_app.test_client(), bearer(either_app)
    url = f"/api/v1/digests/{digest.id}/resend"
    later = client.post(url, json={"subject": "Missed this?", "after_hours": 24}, headers=auth)
    assert later.status_code == 202, later.json
    assert later.json["status"] == "scheduled" and later.json["follows"] == digest.id
    assert later.json["unless"] == "clicked" and later.json["recipients"] == 0
    again = client.post(url, json={"subject": "Missed this, really?"}, headers=auth)
    assert again.status_code == 409 and "at most once" in again.json["error"]
    state = client.get(f"/api/v1/digests/{digest.id}", headers=auth).json
    assert state["resend"]["id"] == later.json["id"] and state["resend"]["status"] == "scheduled"
    assert state["subject_test"] is None


@pytest.mark.parametrize(("body", "field"), [
    ({}, "subject"), ({"subject": "  "}, "subject"), ({"subject": "Keep in touch?"}, "subject"),
    ({"subject": "Line\r\nBcc: x@example.com"}, "subject"), ({"subject": "New", "after_hours": -1}, "after_hours"),
    ({"subject": "New", "after_hours": "soon"}, "after_hours"), ({"subject": "New", "after_hours": True}, "after_hours"),
    ({"subject": "New", "unless": "bounced"}, "unless"), ({"subject": "New", "unless": "opened"}, "unless"),
])
def test_a_bad_resend_is_refused_naming_the_field_and_stores_nothing(app, body, field):
    digest, _ = sent_digest(2)
    answer = app.test_client().post(f"/api/v1/digests/{digest.id}/resend", json=body, headers=bearer(app))
    assert answer.status_code == 422 and answer.json["field"] == field, answer.json
    assert db.session.scalar(select(func.count()).select_from(Digest)) == 1


def test_the_api_refuses_a_resend_of_what_did_not_go_out(app):
    factories.subscribers(2)
    factories.post(n=1)
    from mailer.posts.digest_schedule import schedule_digest

    scheduled = schedule_digest(db.session, datetime.now(timezone.utc) + timedelta(hours=1))
    db.session.commit()
    client, auth = app.test_client(), bearer(app)
    answer = client.post(f"/api/v1/digests/{scheduled.id}/resend", json={"subject": "New"}, headers=auth)
    assert answer.status_code == 409 and "scheduled" in answer.json["error"]
    assert client.post("/api/v1/digests/999/resend", json={"subject": "New"}, headers=auth).status_code == 404
    assert client.post(f"/api/v1/digests/{scheduled.id}/resend", data="[1]", headers={
        **auth, "Content-Type": "application/json"}).status_code == 400


def test_the_console_resends_from_the_digest_page(admin):
    from tests.conftest import csrf_from

    digest, ids = sent_digest(3)
    engage(Click, digest, ids[0])
    page = admin.get(f"/admin/digests/{digest.id}")
    assert b'id="resend"' in page.data
    sent = admin.post(f"/admin/digests/{digest.id}/resend", data={
        "csrf_token": csrf_from(page.data), "subject": "Missed it?", "after_hours": "0", "unless": "clicked"})
    assert sent.status_code == 302
    resend = db.session.scalar(select(Digest).where(Digest.follows_id == digest.id))
    assert sent.headers["Location"].endswith(f"/admin/digests/{resend.id}")
    assert owed_to(resend.id) == ids[1:]
    page = admin.get(f"/admin/digests/{digest.id}").get_data(as_text=True)
    assert "Missed it?" in page and 'id="resend-form"' not in page
    again = admin.post(f"/admin/digests/{digest.id}/resend", data={
        "csrf_token": csrf_from(page), "subject": "Again?", "after_hours": "0"}, follow_redirects=True)
    assert "at most once" in again.get_data(as_text=True)
    assert "Resend of" in admin.get(f"/admin/digests/{resend.id}").get_data(as_text=True)


@pytest.mark.integration
def test_the_worker_sends_the_resend_to_who_did_not_click(pg_app, worker, smtp, api):
    readers = factories.subscribers(4)
    factories.post(n=1)
    first = api.post("/digests", {"subject": "This week's answer"}).json
    wait_for_digest(api, first["id"])
    digest = db.session.get(Digest, first["id"])
    engage(Click, digest, db.session.scalar(select(Subscriber.id).where(Subscriber.email == readers[0])))
    resent = api.post(f"/digests/{first['id']}/resend", {"subject": "In case you missed this week's answer"})
    assert resent.status_code == 202, resent.json
    wait_for_digest(api, resent.json["id"])
    wait_until(lambda: sum(copies(smtp, "In case you missed").values()) == 3, timeout=30)
    assert copies(smtp, "In case you missed") == {r: 1 for r in readers[1:]}
    assert copies(smtp, "This week's answer") == {r: 1 for r in readers}

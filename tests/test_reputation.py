"""The reputation guard: a digest whose hard-bounce or complaint rate passes its limit pauses itself, reports come
in through the real intake paths (`mailer bounces process`, POST /webhooks/dsn)."""
from __future__ import annotations

import logging
import time

import pytest
from flask import g
from sqlalchemy import func, select

from mailer.api_tokens import create_token
from mailer.bounces import verp
from mailer.extensions import db
from mailer.models import Delivery, Digest, MailEvent, Subscriber
from mailer.outbox import sender
from mailer.posts import digests, reputation
from tests import factories
from tests.admin_helpers import create_admin, log_in
from tests.bounce_formats import sample
from tests.test_digests import in_hand, wait_for_digest
from tests.waiting import wait_until


def statuses(digest_id: int) -> dict[str, int]:
    db.session.rollback()
    return dict(db.session.execute(select(Delivery.status, func.count()).where(Delivery.digest_id == digest_id)
                                   .group_by(Delivery.status)).all())


def sent_deliveries(digest_id: int, count: int) -> list[Delivery]:
    return list(db.session.scalars(select(Delivery).where(Delivery.digest_id == digest_id, Delivery.status == "sent")
                                   .order_by(Delivery.id).limit(count)))


def complain(app, delivery: Delivery, n: int) -> str:
    raw = sample("yahoo-complaint.eml", verp.envelope_sender(delivery.id), delivery.subscriber.email,
                 **{"1715792601.491337": f"1715792601.{n:06d}"})
    result = app.test_cli_runner().invoke(args=["bounces", "process"], input=raw)
    assert result.exit_code == 0, result.output
    return result.output


def a_digest_part_sent(readers: int = 30, first: int = 20) -> Digest:
    """A digest to `readers` readers of which the first `first` mails have gone (one batch)."""
    factories.subscribers(readers)
    factories.post()
    digest = digests.create_digest(db.session)
    db.session.commit()
    assert sender.deliver_due(limit=first) == first
    return digest


@pytest.fixture
def guarded(either_app):
    either_app.config["DIGEST_RATE_MIN_SENT"] = 10

    def forget() -> None:
        for name in ("_login_user", "csrf_token"):
            g.pop(name, None)

    either_app.before_request_funcs.setdefault(None, []).insert(0, forget)
    return either_app


def test_a_digest_pauses_itself_past_the_complaint_rate_and_resumes_when_told(guarded, caplog):
    digest = a_digest_part_sent()
    [delivery] = sent_deliveries(digest.id, 1)

    with caplog.at_level(logging.WARNING, "mailer.posts.reputation"):
        complain(guarded, delivery, 1)
    db.session.expire_all()
    digest = db.session.get(Digest, digest.id)
    assert digest.status == "paused"
    assert "1 spam complaint out of 20 mails sent (5.00%), above the limit of 0.10%" in digest.paused_reason
    assert [r.levelname for r in caplog.records if "paused" in r.message] == ["WARNING"]
    assert statuses(digest.id) == {"sent": 20, "held": 10}
    assert sender.deliver_due() == 0  # nothing of it is claimed while it is paused
    assert statuses(digest.id) == {"sent": 20, "held": 10}

    token = create_token(db.session, "tests")
    db.session.commit()
    api = guarded.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    state = api.get(f"/api/v1/digests/{digest.id}", headers=headers).json
    assert (state["status"], state["complaints"], state["complaint_rate"], state["hard_bounce_rate"]) == (
        "paused", 1, 0.05, 0.0)
    assert state["paused_reason"] == digest.paused_reason

    create_admin()
    console = guarded.test_client()
    log_in(console)
    page = console.get(f"/admin/digests/{digest.id}").text
    assert "paused itself to protect your sender reputation" in page and "5.00%" in page
    assert 'href="/admin/suppressions"' in page and "Resume" in page
    dashboard = console.get("/admin/").text
    assert "Bounces and complaints" in dashboard and "(5.0%)" in dashboard and "Gmail" in dashboard

    resumed = api.post(f"/api/v1/digests/{digest.id}/resume", headers=headers)
    assert resumed.status_code == 200 and resumed.json["status"] == "sending"
    assert sender.deliver_due() == 10
    db.session.expire_all()
    after = api.get(f"/api/v1/digests/{digest.id}", headers=headers).json
    assert (after["status"], after["sent"], after["paused_reason"]) == ("sent", 30, None)


def test_a_complaint_before_the_minimum_of_mails_pauses_nothing(guarded):
    guarded.config["DIGEST_RATE_MIN_SENT"] = 21
    digest = a_digest_part_sent()
    complain(guarded, sent_deliveries(digest.id, 1)[0], 1)
    db.session.expire_all()
    assert db.session.get(Digest, digest.id).status == "sending"
    assert sender.deliver_due() == 10


def test_rates_within_the_limits_pause_nothing(guarded):
    guarded.config["DIGEST_MAX_COMPLAINT_RATE"] = 0.1  # one complaint in 20 is 5%
    digest = a_digest_part_sent()
    complain(guarded, sent_deliveries(digest.id, 1)[0], 1)
    db.session.expire_all()
    assert db.session.get(Digest, digest.id).status == "sending"


@pytest.mark.integration
def test_hard_bounces_through_the_dsn_webhook_pause_a_digest_with_the_rest_unsent(pg_app, worker, smtp, caplog):
    pg_app.config["DIGEST_RATE_MIN_SENT"] = 20
    factories.subscribers(100)
    factories.post()
    token = create_token(db.session, "mta")
    db.session.commit()
    client = pg_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    class Api:
        def get(self, path):
            return client.get(f"/api/v1{path}", headers=headers)

    smtp.handler.delay = 0.1  # ten mails a second: the bounces come back while most are still owed
    digest_id = client.post("/api/v1/digests", headers=headers).json["id"]
    wait_for_digest(Api(), digest_id, done=lambda s: s["sent"] >= 20)
    bounced = sent_deliveries(digest_id, 2)
    with caplog.at_level(logging.WARNING, "mailer.posts.reputation"):
        for n, delivery in enumerate(bounced):
            raw = sample("postfix-hard-bounce.eml", "postmaster@mailer.test", delivery.subscriber.email,
                         **{"4XyZ1234AbCd@mx": f"4XyZ{n:08d}@mx"})
            answer = client.post("/webhooks/dsn", query_string={"recipient": verp.envelope_sender(delivery.id)}, data=raw,
                                 headers={**headers, "Content-Type": "message/rfc822"})
            assert answer.status_code == 200 and "is now bounced" in answer.json["result"], answer.json
    assert any(r.levelname == "WARNING" and f"digest {digest_id} paused" in r.message for r in caplog.records)

    state = Api().get(f"/digests/{digest_id}").json
    assert state["status"] == "paused" and state["hard_bounces"] == 2 and "hard bounces" in state["paused_reason"]
    assert state["hard_bounce_rate"] > 0.05
    wait_until(lambda: in_hand(digest_id) == 0, 30, "the mails in a worker's hands finishing")
    smtp.handler.delay = 0
    settled = statuses(digest_id)
    assert settled.get("held", 0) > 0 and settled.get("sent", 0) < 100, settled
    time.sleep(3)  # beat sweeps every second: a held row it claimed would be sent by now
    assert statuses(digest_id) == settled
    with smtp.handler.lock:
        received = sum(1 for r in smtp.handler.messages if "Career Q&A" in r.message["Subject"])
    assert received == settled["sent"]


@pytest.fixture
def refusing(guarded, smtp):
    """The guarded app's mail goes to a real SMTP server that tests can make refuse recipients (5xx)."""
    smtp.clear()
    guarded.config["SMTP_URL"] = smtp.url
    yield smtp
    smtp.clear()


def test_refusals_at_the_smtp_reply_are_hard_bounces_the_rates_and_the_guard_count(refusing, caplog):
    emails = factories.subscribers(30)
    factories.post()
    dead = emails[14:16]  # refused once more than DIGEST_RATE_MIN_SENT mails have gone
    for address in dead:
        refusing.handler.refuse[address] = f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
    digest = digests.create_digest(db.session)
    db.session.commit()

    with caplog.at_level(logging.WARNING, "mailer.posts.reputation"):
        sender.deliver_due(limit=20)

    db.session.expire_all()
    events = db.session.execute(select(MailEvent.provider, MailEvent.kind, MailEvent.email, MailEvent.detail)
                                .order_by(MailEvent.id)).all()
    assert [(p, k, e) for p, k, e, _ in events] == [("smtp", "hard_bounce", a) for a in dead]
    assert all("5.1.1" in detail and "User unknown" in detail for *_, detail in events)
    assert {db.session.scalar(select(Subscriber.status).where(Subscriber.email == a)) for a in dead} == {"bounced"}
    rates = reputation.digest_rates(db.session, [digest.id])[digest.id]
    assert (rates.sent, rates.hard_bounces) == (20, 2)  # 18 accepted and 2 refused: the servers answered 20
    digest = db.session.get(Digest, digest.id)
    assert digest.status == "paused" and "hard bounce" in digest.paused_reason and "DIGEST_MAX_HARD_BOUNCE_RATE" in digest.paused_reason
    assert any(f"digest {digest.id} paused" in r.message for r in caplog.records)
    assert statuses(digest.id) == {"sent": 18, "failed": 2, "held": 10}
    assert refusing.to(dead[0]) == [] and len(refusing.to(emails[5])) == 1


def test_a_refused_test_copy_records_no_bounce(refusing):
    factories.post()
    digests.send_test(db.session, "editor@example.com")
    db.session.commit()
    refusing.handler.refuse["editor@example.com"] = "550 5.1.1 <editor@example.com>: User unknown"

    sender.deliver_due()

    row = db.session.scalar(select(Delivery).where(Delivery.kind == "test"))
    assert row.status == "failed" and "5.1.1" in row.last_error
    assert db.session.scalar(select(func.count()).select_from(MailEvent)) == 0  # nobody's address to suppress

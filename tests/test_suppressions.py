"""Reviewing suppressions in the console: the page, lifting a bounce, and a complaint that only the reader lifts,
through the real routes on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta
from html import escape

import pytest
from flask import g
from sqlalchemy import func, select

from mailer.bounces import verp
from mailer.extensions import db
from mailer.models import Consent, MailEvent, Subscriber, SuppressionLift
from mailer.outbox import ledger, sender
from mailer.posts import digests
from tests import factories
from tests.admin_helpers import EMAIL, create_admin, csrf_from, log_in
from tests.bounce_formats import sample
from tests.test_confirm_download_unsubscribe import confirm, link_in, mailbox, sign_up


@pytest.fixture
def web(either_app):
    """The app of either database with a console admin; `g` fresh per request, as in production."""
    def forget() -> None:
        for name in ("_login_user", "csrf_token"):
            g.pop(name, None)

    either_app.before_request_funcs.setdefault(None, []).insert(0, forget)
    create_admin()
    return either_app


def reader(app, client, email: str) -> Subscriber:
    """A reader who signed up and confirmed through the routes; the welcome they were sent is their delivery."""
    assert confirm(client, sign_up(client, app, email)).status_code == 200
    sender.deliver_due()
    return factories.subscriber(email)


def report(app, name: str, sub: Subscriber, n: int = 0) -> str:
    """A DSN or ARF report about the reader's latest mail, through `mailer bounces process`."""
    [delivery] = factories.deliveries(sub)[-1:]
    raw = sample(name, verp.envelope_sender(delivery.id), sub.email,
                 **{"4XyZ1234AbCd@mx": f"4XyZ{n:08d}@mx", "1715792601.491337": f"1715792601.{n:06d}"})
    result = app.test_cli_runner().invoke(args=["bounces", "process"], input=raw)
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return result.output


def lift_buttons(html: str) -> int:
    """The rows with a lift button: each has one for the laptop's last column and one for the phone's first."""
    return html.count(">Lift bounce</button>") // 2


def console(app):
    client = app.test_client()
    assert log_in(client).status_code == 302
    return client


def test_the_page_lists_bounced_and_complained_readers_with_their_event(web):
    client = web.test_client()
    bounced, complained = reader(web, client, "gone@example.com"), reader(web, client, "angry@example.com")
    reader(web, client, "happy@example.com")
    assert "is now bounced" in report(web, "postfix-hard-bounce.eml", bounced)
    assert "is now complained" in report(web, "yahoo-complaint.eml", complained)

    admin = console(web)
    page = admin.get("/admin/suppressions")
    assert page.status_code == 200
    html = page.text
    assert "gone@example.com" in html and "angry@example.com" in html and "happy@example.com" not in html
    bounce = db.session.scalar(select(MailEvent).where(MailEvent.subscriber_id == bounced.id))
    assert "hard_bounce" in html and "complaint" in html and bounce.detail and escape(bounce.detail) in html
    assert lift_buttons(html) == 1  # the complaint has none
    assert "Only the reader can lift it" in html and "a complaint is lifted only by the reader" in html
    assert 'href="/admin/suppressions"' in admin.get("/admin/").text  # the console's navigation
    assert 'href="/admin/suppressions"' in admin.get(f"/admin/subscribers/{bounced.id}").text


def test_the_page_is_paginated_newest_first(web):
    factories.subscribers(55, "bounced", prefix="gone")
    admin = console(web)
    first = admin.get("/admin/suppressions").text
    assert lift_buttons(first) == 50 and "gone54@example.com" in first and "gone4@example.com" not in first
    older = csrf_from(first) and first.split('href="/admin/suppressions?before=')[1].split('"')[0]
    second = admin.get(f"/admin/suppressions?before={older}").text
    assert lift_buttons(second) == 5 and "gone4@example.com" in second and "gone54@example.com" not in second
    assert admin.get("/admin/suppressions?before=nonsense").status_code == 200


def test_an_admin_lifts_a_bounce_the_lift_is_recorded_and_the_reader_gets_mail_again(web):
    client = web.test_client()
    sub = reader(web, client, "back@example.com")
    report(web, "postfix-hard-bounce.eml", sub)
    event = db.session.scalar(select(MailEvent).where(MailEvent.subscriber_id == sub.id))
    admin = console(web)

    page = admin.get(f"/admin/subscribers/{sub.id}")
    lifted = admin.post(f"/admin/suppressions/{sub.id}/lift", data={"csrf_token": csrf_from(page.text),
                                                                     "back": "subscriber"})
    assert lifted.status_code == 302 and lifted.location.endswith(f"/admin/subscribers/{sub.id}")
    db.session.expire_all()
    assert db.session.get(Subscriber, sub.id).status == "confirmed"
    [lift] = db.session.scalars(select(SuppressionLift)).all()
    assert (lift.subscriber_id, lift.admin_email, lift.event_id) == (sub.id, EMAIL, event.id) and lift.lifted_at
    shown = admin.get(f"/admin/subscribers/{sub.id}").text
    assert "Bounce lifted" in shown and "lifted" in shown and f"by {EMAIL}" in shown

    factories.post()
    digest = digests.create_digest(db.session)
    db.session.commit()
    assert digest.recipients == 1
    sender.deliver_due()
    assert any("Career Q&A" in str(m["Subject"]) for m in mailbox(web, "back@example.com")
               if m["List-Id"])


def test_a_complaint_cannot_be_lifted_by_an_admin(web):
    client = web.test_client()
    sub = reader(web, client, "angry@example.com")
    report(web, "yahoo-complaint.eml", sub)
    admin = console(web)

    refused = admin.post(f"/admin/suppressions/{sub.id}/lift", data={"csrf_token": csrf_from(
        admin.get("/admin/suppressions").text)}, follow_redirects=True)
    assert refused.status_code == 200 and "Not lifted" in refused.text and "only by the reader" in refused.text
    db.session.expire_all()
    assert db.session.get(Subscriber, sub.id).status == "complained"
    assert db.session.scalar(select(func.count()).select_from(SuppressionLift)) == 0
    assert admin.post(f"/admin/suppressions/{sub.id}/lift", data={}).status_code == 400  # no CSRF token
    assert admin.post("/admin/suppressions/999999/lift", data={"csrf_token": csrf_from(
        admin.get("/admin/suppressions").text)}).status_code == 404


def test_a_complained_reader_who_signs_up_again_is_confirmed_only_by_the_new_link(web):
    client = web.test_client()
    old_link = sign_up(client, web, "angry@example.com")
    assert confirm(client, old_link).status_code == 200
    sender.deliver_due()
    sub = factories.subscriber("angry@example.com")
    report(web, "yahoo-complaint.eml", sub)
    assert db.session.get(Subscriber, sub.id).status == "complained"

    # The old link confirms nothing, before and after the new signup.
    shown = client.get(old_link)
    assert shown.status_code == 200 and "An old confirmation link cannot start our emails again" in shown.text
    for delivery in factories.deliveries(sub):  # the per-address throttle: the first confirmation was a day ago
        delivery.created_at = delivery.created_at - timedelta(days=1)
    db.session.commit()
    assert client.post("/subscribe", json={"email": "angry@example.com"}).status_code == 202
    ledger.wake()
    sender.deliver_due()
    confirmations = [m for m in mailbox(web, "angry@example.com") if "Confirm" in str(m["Subject"])]
    assert len(confirmations) == 2
    new_link = link_in(confirmations[-1], "/confirm/")
    assert new_link != old_link
    token = csrf_from(client.get(new_link).text)
    assert client.post(old_link, data={"csrf_token": token}).status_code == 409
    db.session.expire_all()
    assert db.session.get(Subscriber, sub.id).status == "complained"

    assert confirm(client, new_link).status_code == 200
    db.session.expire_all()
    person = db.session.get(Subscriber, sub.id)
    assert person.status == "confirmed" and person.suppressed_at is None
    old, new = db.session.scalars(select(Consent).where(Consent.subscriber_id == sub.id).order_by(Consent.id)).all()
    assert new.confirmed_at is not None and new.requested_at > old.confirmed_at


def test_a_bounced_reader_who_signs_up_again_gets_nothing(web):
    client = web.test_client()
    sub = reader(web, client, "gone@example.com")
    report(web, "postfix-hard-bounce.eml", sub)
    before = len(factories.deliveries(sub))
    assert client.post("/subscribe", json={"email": "gone@example.com"}).status_code == 202
    db.session.expire_all()
    assert len(factories.deliveries(sub)) == before and db.session.get(Subscriber, sub.id).status == "bounced"

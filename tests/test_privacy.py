"""A subscriber's data on request: everything exported as JSON, and erasure that imports respect."""
from __future__ import annotations

import hashlib
import hmac
import json

from sqlalchemy import func, select

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.models import Click, Consent, Delivery, Download, ErasedAddress, MailEvent, Open, Post, Subscriber
from mailer.outbox import sender as outbox
from mailer.people import subscriptions
from mailer.people.importing import import_subscribers
from mailer.people.privacy import email_hash
from mailer.people.subscriptions import SignupRequest


def signed_up_and_confirmed(email="Ann@Example.com", name="Ann") -> Subscriber:
    subscriptions.subscribe(db.session, SignupRequest(email=email, name=name, ip="203.0.113.9", user_agent="Firefox"))
    consent_id = db.session.scalar(select(Delivery.payload).where(Delivery.kind == "confirmation"))["consent_id"]
    consent = subscriptions.confirm_subscription(db.session, consent_id)
    db.session.add(Download(subscriber_id=consent.subscriber_id, magnet_id=consent.magnet_id))
    db.session.add(MailEvent(event_key="dsn:1", provider="dsn", kind="soft_bounce", email="ann@example.com",
                             subscriber_id=consent.subscriber_id, detail="4.2.2 mailbox full"))
    post = Post(guid="p1", url="https://blog.example.com/p1/", title="A post", summary_html="", summary_text="")
    db.session.add(post)
    db.session.flush()
    db.session.add(Click(delivery_id=1, subscriber_id=consent.subscriber_id, digest_id=1, post_id=post.id))
    db.session.add(Open(delivery_id=1, subscriber_id=consent.subscriber_id, digest_id=1))
    db.session.commit()
    outbox.deliver_due(10)
    return db.session.get(Subscriber, consent.subscriber_id)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_export_holds_everything_stored_about_them(app, runner):
    signed_up_and_confirmed()
    result = runner.invoke(args=["subscribers", "data", "ANN@example.com"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["subscriber"]["email"] == "ann@example.com" and data["subscriber"]["name"] == "Ann"
    # Every column of theirs, their choices included (how often digests come, a pause).
    assert set(data["subscriber"]) == {column.key for column in Subscriber.__table__.columns}
    assert data["subscriber"]["digest_frequency"] == "every" and "paused_until" in data["subscriber"]
    assert data["consents"][0]["ip"] == "203.0.113.9" and data["consents"][0]["consent_text"]
    assert {e["kind"] for e in data["emails"]} == {"confirmation", "magnet", "welcome"}
    assert data["downloads"][0]["magnet"] == "The Multigenerational Manager's Handbook"
    assert data["bounces_and_complaints"][0]["detail"] == "4.2.2 mailbox full"
    assert data["clicks"][0]["post"] == "https://blog.example.com/p1/" and data["clicks"][0]["at"]
    assert data["opens"][0]["digest_id"] == 1


def test_erasure_removes_personal_data_and_keeps_only_a_hash(app, client):
    signed_up_and_confirmed()
    token = create_token(db.session, "t")
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/subscribers/ann@example.com/data", headers=headers).json["subscriber"]["name"] == "Ann"
    assert client.delete("/api/v1/subscribers/ann@example.com", headers=headers).json == {"erased": True}
    assert count(Subscriber) == count(Consent) == count(Delivery) == count(Download) == 0
    event = db.session.scalar(select(MailEvent))
    assert event.email is None and event.subscriber_id is None and event.detail == ""
    assert db.session.scalar(select(ErasedAddress.email_hash)) == email_hash("ann@example.com")
    assert client.delete("/api/v1/subscribers/ann@example.com", headers=headers).status_code == 404


def test_an_import_does_not_bring_an_erased_address_back(app, runner):
    signed_up_and_confirmed()
    assert runner.invoke(args=["subscribers", "erase", "ann@example.com", "--yes"]).exit_code == 0
    report = import_subscribers(db.session, ["email,name\n", "ANN@example.com,Ann\n", "bob@example.com,Bob\n"],
                                True, "old-list.csv")
    assert (report.created, report.erased) == (1, 1)
    assert db.session.scalars(select(Subscriber.email)).all() == ["bob@example.com"]
    # Signing up again herself is a new, explicit consent, and works.
    subscriptions.subscribe(db.session, SignupRequest(email="ann@example.com"))
    assert db.session.scalar(select(func.count()).where(Subscriber.email == "ann@example.com")) == 1


def test_the_api_does_not_add_an_erased_address_back_as_confirmed(app, client, runner):
    signed_up_and_confirmed()
    assert runner.invoke(args=["subscribers", "erase", "ann@example.com", "--yes"]).exit_code == 0
    token = create_token(db.session, "t")
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}

    refused = client.post("/api/v1/subscribers", json={"email": "Ann@example.com", "confirmed": True}, headers=headers)
    assert refused.status_code == 409 and refused.json["field"] == "email" and "erased" in refused.json["error"]
    assert count(Subscriber) == 0
    # Asked to confirm, she decides for herself: that is a new consent, and it works.
    asked = client.post("/api/v1/subscribers", json={"email": "ann@example.com"}, headers=headers)
    assert asked.status_code == 201 and asked.json["status"] == "pending"


def test_the_erasure_record_is_a_keyed_hash_not_the_bare_sha256_of_the_address(either_app):
    from mailer.people.privacy import address_sha256, erase_subscriber, erasure_record

    erase_subscriber(db.session, signed_up_and_confirmed())
    db.session.commit()
    stored = db.session.scalar(select(ErasedAddress.email_hash))
    bare = hashlib.sha256(b"ann@example.com").hexdigest()
    assert stored != bare and bare == address_sha256(" Ann@Example.com ")
    assert stored == hmac.new(b"test-erasure-key", bare.encode(), hashlib.sha256).hexdigest()
    assert stored == erasure_record(bare, either_app.config["ERASURE_KEY"]) != erasure_record(bare, "another key")


def test_an_erased_address_is_refused_on_import_and_api_create_on_either_database(either_app):
    from mailer.people.privacy import erase_subscriber

    erase_subscriber(db.session, signed_up_and_confirmed())
    token = create_token(db.session, "t")
    db.session.commit()
    report = import_subscribers(db.session, ["email\n", "ANN@example.com\n"], True, "old-list.csv")
    db.session.commit()
    assert (report.created, report.erased) == (0, 1)
    refused = either_app.test_client().post("/api/v1/subscribers", json={"email": "ann@example.com", "confirmed": True},
                                            headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 409 and "erased" in refused.json["error"]
    assert count(Subscriber) == 0


def test_with_another_erasure_key_the_records_are_no_longer_recognised(app):
    from mailer.people.privacy import erase_subscriber, erased

    erase_subscriber(db.session, signed_up_and_confirmed())
    db.session.commit()
    assert erased(db.session, ["ann@example.com"]) == {"ann@example.com"}
    app.config["ERASURE_KEY"] = "a key changed without migrating"
    assert erased(db.session, ["ann@example.com"]) == set()


def test_erasing_an_unknown_address_says_so(app, runner):
    result = runner.invoke(args=["subscribers", "erase", "nobody@example.com", "--yes"])
    assert result.exit_code != 0 and "No subscriber has the address" in result.output

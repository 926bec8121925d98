"""The welcome sequence with a controllable clock: steps in order, none twice, none after unsubscribe."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Consent, Delivery, Subscriber, WelcomeStep, aware, utcnow, welcome_key
from mailer.outbox import sender
from mailer.people import subscriptions
from mailer.people.subscriptions import SignupRequest
from mailer.people.welcome import advance_welcome_sequences


def confirmed_subscriber(email: str = "new@example.com", at=None) -> Subscriber:
    subscriptions.subscribe(db.session, SignupRequest(email=email))
    consent_id = db.session.scalar(select(Delivery.payload).where(Delivery.kind == "confirmation"))["consent_id"]
    consent = subscriptions.confirm_subscription(db.session, consent_id)
    db.session.commit()
    return db.session.get(Subscriber, consent.subscriber_id)


def owed_steps(subscriber_id: int) -> list[str]:
    """The ids of the steps owed to a reader, in the order they were owed (the seeded steps' ids are 1, 2, 3)."""
    keys = db.session.scalars(select(Delivery.dedupe_key).where(
        Delivery.subscriber_id == subscriber_id, Delivery.kind == "welcome").order_by(Delivery.id))
    return [k.rsplit(":", 1)[1] for k in keys]


def test_steps_fall_due_in_order_and_never_twice(app):
    subscriber = confirmed_subscriber()
    start = aware(subscriber.confirmed_at)
    assert owed_steps(subscriber.id) == ["1"]  # the welcome, in the confirmation's own transaction

    for hours, expected in [(1, ["1"]), (47, ["1"]), (49, ["1", "2"]), (100, ["1", "2"]), (169, ["1", "2", "3"]),
                            (1000, ["1", "2", "3"])]:
        advance_welcome_sequences(db.session, now=start + timedelta(hours=hours))
        advance_welcome_sequences(db.session, now=start + timedelta(hours=hours))  # a repeated beat tick
        db.session.commit()
        assert owed_steps(subscriber.id) == expected, f"after {hours} h"
    assert db.session.get(Subscriber, subscriber.id).welcome_next_at is None


def test_steps_missed_while_workers_were_down_go_out_in_order(app):
    subscriber = confirmed_subscriber()
    much_later = aware(subscriber.confirmed_at) + timedelta(days=30)
    advance_welcome_sequences(db.session, now=much_later)
    advance_welcome_sequences(db.session, now=much_later)
    db.session.commit()
    assert owed_steps(subscriber.id) == ["1", "2", "3"]
    sender.deliver_due(50)
    sent = db.session.scalars(select(Delivery.dedupe_key).where(Delivery.status == "sent").order_by(Delivery.sent_at))
    assert [k for k in sent if k.startswith("welcome")] == [welcome_key(subscriber.id, n) for n in (1, 2, 3)]


def test_unsubscribing_stops_the_sequence(app):
    subscriber = confirmed_subscriber()
    start = aware(subscriber.confirmed_at)
    subscriptions.unsubscribe(db.session, subscriber.id)
    db.session.commit()
    advance_welcome_sequences(db.session, now=start + timedelta(days=30))
    db.session.commit()
    assert owed_steps(subscriber.id) == ["1"]
    assert db.session.scalar(select(Delivery.status).where(Delivery.dedupe_key == welcome_key(subscriber.id, 1))) == "skipped"


def test_a_disabled_step_is_skipped_and_reconfirming_does_not_replay(app):
    db.session.execute(WelcomeStep.__table__.update().where(WelcomeStep.position == 2).values(enabled=False))
    db.session.commit()
    subscriber = confirmed_subscriber()
    start = aware(subscriber.confirmed_at)
    advance_welcome_sequences(db.session, now=start + timedelta(days=3))
    db.session.commit()
    assert owed_steps(subscriber.id) == ["1"]
    advance_welcome_sequences(db.session, now=start + timedelta(days=8))
    db.session.commit()
    assert owed_steps(subscriber.id) == ["1", "3"]
    consent_id = db.session.scalar(select(Delivery.payload).where(Delivery.kind == "confirmation"))["consent_id"]
    subscriptions.confirm_subscription(db.session, consent_id)
    db.session.commit()
    assert owed_steps(subscriber.id) == ["1", "3"]


@pytest.mark.integration
def test_beat_sends_a_step_that_fell_due(pg_app, worker, smtp):
    subscriber = confirmed_subscriber("later@example.com")
    smtp.wait_for("later@example.com", "Welcome to Career Q&A")
    # Two days pass: move the subscriber's clock back instead of waiting.
    db.session.execute(Subscriber.__table__.update().where(Subscriber.id == subscriber.id).values(
        confirmed_at=utcnow() - timedelta(hours=49), welcome_next_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    [step2] = smtp.wait_for("later@example.com", "Three questions", timeout=20)
    assert re.search(r"/unsubscribe/", step2["List-Unsubscribe"])
    # Handbook, welcome, step 2; the confirmation was skipped: confirmed before a worker got to it.
    assert len(smtp.to("later@example.com")) == 3


def test_after_an_unsubscribe_a_new_confirmation_resumes_the_steps_not_sent(app):
    subscriber = confirmed_subscriber()
    assert owed_steps(subscriber.id) == ["1"]
    subscriptions.unsubscribe(db.session, subscriber.id)
    db.session.commit()

    subscriptions.subscribe(db.session, SignupRequest(email=subscriber.email))  # signs up again, and confirms
    db.session.commit()
    consent_id = max(db.session.scalars(select(Consent.id).where(Consent.subscriber_id == subscriber.id)))
    subscriptions.confirm_subscription(db.session, consent_id)
    db.session.commit()
    again = aware(db.session.get(Subscriber, subscriber.id).confirmed_at)
    advance_welcome_sequences(db.session, now=again + timedelta(hours=47))
    db.session.commit()
    assert owed_steps(subscriber.id) == ["1"]  # the first step is not replayed
    advance_welcome_sequences(db.session, now=again + timedelta(days=3))
    db.session.commit()
    assert owed_steps(subscriber.id) == ["1", "2"]
    advance_welcome_sequences(db.session, now=again + timedelta(days=8))
    db.session.commit()
    assert owed_steps(subscriber.id) == ["1", "2", "3"]


def test_confirming_an_old_link_while_confirmed_elsewhere_resumes_nothing(app):
    subscriber = confirmed_subscriber()
    db.session.execute(Subscriber.__table__.update().where(Subscriber.id == subscriber.id)
                       .values(welcome_next_at=None))  # as an import "confirmed elsewhere" leaves it: nothing due
    db.session.commit()
    consent_id = db.session.scalar(select(Consent.id).where(Consent.subscriber_id == subscriber.id))
    subscriptions.confirm_subscription(db.session, consent_id)
    db.session.commit()
    assert db.session.get(Subscriber, subscriber.id).welcome_next_at is None
    advance_welcome_sequences(db.session, now=utcnow() + timedelta(days=30))
    db.session.commit()
    assert owed_steps(subscriber.id) == ["1"]

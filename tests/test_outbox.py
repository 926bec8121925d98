"""The outbox: claiming due rows once, leases, dedupe keys, skipping, SMTP retries, bounces, reconnects."""
from __future__ import annotations

import socket
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import func, select, update

from mailer.extensions import db
from mailer.mail.transport import OutboxTransport, PermanentFailure, SMTPTransport, TemporaryFailure
from mailer.models import Delivery, DeliveryStatus, Status, Subscriber, aware, utcnow
from mailer.outbox import ledger, sender
from mailer.people import subscriptions
from tests.conftest import app_with
from tests.smtp_sink import SinkHandler, SmtpSink
from tests.waiting import wait_until

QUEUED, SENDING, SENT = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value, DeliveryStatus.SENT.value
FAILED, SKIPPED = DeliveryStatus.FAILED.value, DeliveryStatus.SKIPPED.value


# --- helpers ---------------------------------------------------------------------------------------

def add_subscriber(email: str, status: str = Status.CONFIRMED.value) -> Subscriber:
    sub = Subscriber(email=email, status=status)
    db.session.add(sub)
    db.session.commit()
    return sub


def owe_welcome(sub: Subscriber, key: str | None = None) -> Delivery:
    key = key or f"welcome:{sub.id}"
    assert ledger.queue(db.session, "welcome", sub.id, key)
    db.session.commit()
    return db.session.scalar(select(Delivery).where(Delivery.dedupe_key == key))


def reload(delivery: Delivery) -> Delivery:
    db.session.expire_all()
    return db.session.get(Delivery, delivery.id)


def files_in_outbox(app) -> list[Path]:
    directory = Path(app.config["OUTBOX_DIR"])
    return sorted(directory.glob("*.eml")) if directory.exists() else []


def smtp_app(tmp_path, sqlite_template, url: str):
    """A fresh app on a copy of the migrated database whose mail goes to the SMTP server at `url`."""
    return app_with(tmp_path, sqlite_template, SMTP_URL=url)


@pytest.fixture
def sink(smtp):
    smtp.clear()
    yield smtp
    smtp.clear()


def a_message(subject: str, to: str = "ann@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, "newsletter@mailer.test", to
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@mailer.test>"
    msg.set_content("hello")
    return msg


# --- claiming --------------------------------------------------------------------------------------

def test_claim_returns_each_due_row_once(either_app):
    sub = add_subscriber("ann@example.com")
    rows = [owe_welcome(sub, f"k{i}") for i in range(3)]

    first = sender.claim_due(db.session, limit=10)
    db.session.commit()
    second = sender.claim_due(db.session, limit=10)

    assert first == sorted(r.id for r in rows)
    assert second == []
    for row in rows:
        row = reload(row)
        assert row.status == SENDING
        assert aware(row.lease_until) > utcnow() + timedelta(seconds=250)


def test_claim_respects_the_limit_and_hands_out_the_rest_later(either_app):
    sub = add_subscriber("ann@example.com")
    ids = [owe_welcome(sub, f"k{i}").id for i in range(5)]

    batches = [sender.claim_due(db.session, limit=2) for _ in range(4)]

    assert [len(b) for b in batches] == [2, 2, 1, 0]
    assert sorted(i for b in batches for i in b) == ids


def test_rows_not_yet_due_are_not_claimed(either_app):
    row = owe_welcome(add_subscriber("ann@example.com"))
    row.next_attempt_at = utcnow() + timedelta(minutes=5)
    db.session.commit()

    assert sender.claim_due(db.session, limit=10) == []

    row.next_attempt_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert sender.claim_due(db.session, limit=10) == [row.id]


@pytest.mark.parametrize("status", [SENT, FAILED, SKIPPED])
def test_finished_rows_are_never_claimed(either_app, status):
    row = owe_welcome(add_subscriber("ann@example.com"))
    row.status = status
    db.session.commit()

    assert sender.claim_due(db.session, limit=10) == []


def test_a_row_whose_lease_expired_is_claimable_again(either_app):
    row = owe_welcome(add_subscriber("ann@example.com"))
    assert sender.claim_due(db.session, limit=10, lease_seconds=300) == [row.id]
    db.session.commit()
    assert sender.claim_due(db.session, limit=10) == []  # lease still running: the worker may be sending

    row = reload(row)
    row.lease_until = utcnow() - timedelta(seconds=1)  # the worker died mid-send
    db.session.commit()

    assert sender.claim_due(db.session, limit=10) == [row.id]
    assert aware(reload(row).lease_until) > utcnow()


def test_a_reclaimed_row_is_sent_once(either_app):
    row = owe_welcome(add_subscriber("ann@example.com"))
    sender.claim_due(db.session, limit=10, lease_seconds=0)
    db.session.commit()

    assert sender.deliver_due() == 1
    assert sender.deliver_due() == 0
    assert reload(row).status == SENT
    assert len(files_in_outbox(either_app)) == 1


def test_two_workers_claiming_at_once_take_different_rows_and_neither_waits(private_pg_app):
    """On PostgreSQL the second claim skips the rows the first holds locked (FOR UPDATE SKIP LOCKED)."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    sub = add_subscriber("ann@example.com")
    ids = [owe_welcome(sub, f"k{i}").id for i in range(4)]

    with Session(db.engine) as first, Session(db.engine) as second:
        mine = sender.claim_due(first, limit=2)  # not committed yet: its rows stay locked
        second.execute(text("SET LOCAL lock_timeout = '2s'"))  # a claim that waited for the first fails here
        theirs = sender.claim_due(second, limit=10)
        second.commit()
        first.commit()

    assert len(mine) == 2 and len(theirs) == 2 and sorted(mine + theirs) == ids
    assert {reload_status(i) for i in ids} == {SENDING}


def reload_status(delivery_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Delivery, delivery_id).status


def test_deliver_due_sends_and_records_the_result(app):
    row = owe_welcome(add_subscriber("ann@example.com"))

    assert sender.deliver_due() == 1

    row = reload(row)
    assert row.status == SENT and row.sent_at is not None and row.last_error is None
    assert row.message_id and row.message_id.startswith("<") and row.message_id.endswith(">")
    assert len(files_in_outbox(app)) == 1
    assert ledger.due_count(db.session) == 0


def test_a_row_claimed_before_an_unsubscribe_is_skipped_not_sent(app):
    sub = add_subscriber("ann@example.com")
    row = owe_welcome(sub)
    ids = sender.claim_due(db.session, limit=10)
    db.session.commit()

    subscriptions.unsubscribe(db.session, sub.id)  # lands while the worker holds the row
    db.session.commit()
    sender.send_claimed(ids)

    row = reload(row)
    assert row.status == SKIPPED
    assert "unsubscribed" in row.last_error
    assert files_in_outbox(app) == []


def test_an_unsubscribe_or_erasure_during_a_long_batch_stops_the_rest_of_it(app, monkeypatch):
    ann, bob, cy = (add_subscriber(f"{name}@example.com") for name in ("ann", "bob", "cy"))
    rows = [owe_welcome(sub).id for sub in (ann, bob, cy)]
    bob_id, cy_id = bob.id, cy.id

    class ChangesOfMindWhileAnnsMailIsSent(OutboxTransport):
        def send(self, msg, sender, recipient):
            if recipient == "ann@example.com":
                with db.engine.begin() as other:  # another request, on its own connection
                    other.execute(Subscriber.__table__.update().where(Subscriber.id == bob_id).values(status="unsubscribed"))
                    other.execute(Subscriber.__table__.delete().where(Subscriber.id == cy_id))
            return super().send(msg, sender, recipient)

    monkeypatch.setattr(sender, "open_transport", lambda config: ChangesOfMindWhileAnnsMailIsSent(config["OUTBOX_DIR"]))
    monkeypatch.setattr(sender, "STATUS_FRESHNESS", 0)  # the batch's reading of statuses is stale at once
    app.config["SEND_WINDOW"] = 1  # each mail made and sent before the next is made
    sender.deliver_due()

    db.session.expire_all()
    assert [getattr(db.session.get(Delivery, row), "status", "gone with its subscriber") for row in rows] == [
        SENT, SKIPPED, "gone with its subscriber"]
    assert len(files_in_outbox(app)) == 1


def test_a_mail_is_made_when_the_transport_takes_it_so_a_window_sees_an_unsubscribe_at_once(app, monkeypatch):
    ann, bob, cy, dan = (add_subscriber(f"{name}@example.com") for name in ("ann", "bob", "cy", "dan"))
    rows = [owe_welcome(sub).id for sub in (ann, bob, cy, dan)]
    everyone_but_ann = [bob.id, cy.id, dan.id]

    class EveryoneElseLeavesWhileAnnsMailIsSent(OutboxTransport):
        def send(self, msg, sender, recipient):
            if recipient == "ann@example.com":
                with db.engine.begin() as other:
                    other.execute(Subscriber.__table__.update().where(Subscriber.id.in_(everyone_but_ann))
                                  .values(status="unsubscribed"))
            return super().send(msg, sender, recipient)

    monkeypatch.setattr(sender, "open_transport", lambda config: EveryoneElseLeavesWhileAnnsMailIsSent(config["OUTBOX_DIR"]))
    monkeypatch.setattr(sender, "STATUS_FRESHNESS", 0)
    app.config["SEND_WINDOW"] = 4  # one window; the local outbox takes its mails one after another
    sender.deliver_due()

    db.session.expire_all()
    assert [db.session.get(Delivery, row).status for row in rows] == [SENT, SKIPPED, SKIPPED, SKIPPED]


def test_the_status_is_checked_after_the_wait_for_the_send_rate_not_before(app, monkeypatch):
    ann, bob = add_subscriber("ann@example.com"), add_subscriber("bob@example.com")
    rows = [owe_welcome(sub).id for sub in (ann, bob)]
    bob_id = bob.id

    class SlowRate:  # the shared SEND_RATE makes the worker wait; Bob unsubscribes during the second wait
        waits = 0
        limiter = "shared"  # with a shared rate, mails are made and sent one at a time

        def wait(self):
            self.waits += 1
            if self.waits == 2:
                with db.engine.begin() as other:
                    other.execute(Subscriber.__table__.update().where(Subscriber.id == bob_id).values(status="unsubscribed"))

        def accepted(self):
            pass

        def rest(self):
            pass

    monkeypatch.setattr(sender, "pacer_for", lambda app: SlowRate())
    monkeypatch.setattr(sender, "STATUS_FRESHNESS", 0)
    sender.deliver_due()

    db.session.expire_all()
    assert [db.session.get(Delivery, row).status for row in rows] == [SENT, SKIPPED]


class NoWait:  # a pacer with a shared rate that never has to wait
    limiter = "shared"

    def wait(self):
        pass

    def accepted(self):
        pass

    def rest(self):
        pass


def test_with_a_send_rate_a_batch_holds_a_few_seconds_of_mail_so_a_signup_does_not_wait_long(app, monkeypatch):
    sub = add_subscriber("ann@example.com")
    ids = [owe_welcome(sub, f"k{i}").id for i in range(15)]
    monkeypatch.setattr(sender, "pacer_for", lambda app: NoWait())
    app.config.update(SEND_RATE=2, SEND_BATCH=1000)  # 2 mails/s: a batch is 5 s of mail, 10 rows
    asked_for_more = []

    assert sender.deliver_due(more=lambda: asked_for_more.append(True)) == 10
    assert asked_for_more == [True]  # a full batch: another worker may take the next
    db.session.expire_all()
    assert [db.session.get(Delivery, row).status for row in ids] == [SENT] * 10 + [QUEUED] * 5


@pytest.mark.parametrize(("rate", "batch", "size"), [(0, 1000, 1000), (14, 1000, 70), (1000, 1000, 1000),
                                                     (14, 20, 20), (1, 1000, 5)])
def test_the_batch_size_is_send_batch_or_a_few_seconds_at_the_send_rate(rate, batch, size):
    assert sender.batch_size({"SEND_RATE": rate, "SEND_BATCH": batch}) == size


def test_a_result_is_not_recorded_over_a_row_another_worker_claimed_meanwhile(either_app, monkeypatch, caplog):
    row = owe_welcome(add_subscriber("ann@example.com")).id
    later = utcnow() + timedelta(minutes=30)

    class OverrunsItsLease(OutboxTransport):
        def send(self, msg, sender, recipient):
            with db.engine.begin() as other:  # our lease ran out mid-send; another worker claimed the row
                other.execute(Delivery.__table__.update().where(Delivery.id == row).values(lease_until=later))
            return super().send(msg, sender, recipient)

    monkeypatch.setattr(sender, "open_transport", lambda config: OverrunsItsLease(config["OUTBOX_DIR"]))
    sender.deliver_due()

    db.session.expire_all()
    assert db.session.get(Delivery, row).status == SENDING  # the other worker's claim stands
    assert "no longer ours to record as sent" in caplog.text


def sent_rows() -> int:
    with db.engine.connect() as other:
        return other.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == SENT))


def test_sent_mails_are_written_as_accepted_on_postgresql_and_a_window_at_a_time_elsewhere(either_app, monkeypatch):
    """On PostgreSQL each receipt is committed before the next mail starts (a killed worker then sends again
    only the mail whose reply was on its way); on SQLite the sent mails of a window are written together."""
    either_app.config["SEND_WINDOW"] = 2
    for n in range(5):
        owe_welcome(add_subscriber(f"reader{n}@example.com"))
    written_when_sending = []
    postgresql = db.engine.dialect.name == "postgresql"

    class Counts(OutboxTransport):
        def send(self, msg, sender, recipient):
            before = len(written_when_sending)
            if postgresql:  # the receipt is on its way, not waited for: it lands within moments
                wait_until(lambda: sent_rows() >= before, 5, f"the receipts of the {before} mails sent")
            written_when_sending.append(sent_rows())
            return super().send(msg, sender, recipient)

    monkeypatch.setattr(sender, "open_transport", lambda config: Counts(either_app.config["OUTBOX_DIR"]))
    assert sender.deliver_due() == 5

    assert written_when_sending == ([0, 1, 2, 3, 4] if postgresql else [0, 0, 2, 2, 4]) and sent_rows() == 5
    rows = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert all(r.sent_at is not None and r.message_id.startswith("<") and r.lease_until is not None for r in rows)


def test_other_results_write_the_waiting_sent_ones_first(app, monkeypatch):
    """SQLite's sent mails wait for the end of their window (PostgreSQL's are written as accepted)."""
    app.config["SEND_WINDOW"] = 10
    first, second = (owe_welcome(add_subscriber(f"{name}@example.com")).id for name in ("ann", "bob"))
    written_at_refusal = []

    class RefusesBob(OutboxTransport):
        def send(self, msg, sender, recipient):
            if recipient.startswith("bob"):
                written_at_refusal.append(sent_rows())
                raise PermanentFailure("550 no such user")
            return super().send(msg, sender, recipient)

    monkeypatch.setattr(sender, "open_transport", lambda config: RefusesBob(app.config["OUTBOX_DIR"]))
    sender.deliver_due()

    db.session.expire_all()
    assert written_at_refusal == [0]
    assert [db.session.get(Delivery, i).status for i in (first, second)] == [SENT, FAILED]


def test_a_result_is_not_written_over_a_row_another_worker_claimed_meanwhile(either_app, monkeypatch, caplog):
    either_app.config["SEND_WINDOW"] = 10
    rows = [owe_welcome(add_subscriber(f"reader{n}@example.com")).id for n in range(3)]
    later = utcnow() + timedelta(minutes=30)

    class FirstRowTakenOver(OutboxTransport):
        def send(self, msg, sender, recipient):
            if recipient.startswith("reader0"):  # while the first mail goes, its lease is lost
                with db.engine.begin() as other:
                    other.execute(Delivery.__table__.update().where(Delivery.id == rows[0]).values(lease_until=later))
            return super().send(msg, sender, recipient)

    monkeypatch.setattr(sender, "open_transport", lambda config: FirstRowTakenOver(either_app.config["OUTBOX_DIR"]))
    sender.deliver_due()

    db.session.expire_all()
    assert [db.session.get(Delivery, i).status for i in rows] == [SENDING, SENT, SENT]
    assert f"delivery {rows[0]} was no longer ours to record as sent" in caplog.text


def test_sent_mails_are_written_when_the_database_fails_later_in_the_window(app, monkeypatch):
    app.config["SEND_WINDOW"] = 10
    rows = [owe_welcome(add_subscriber(f"reader{n}@example.com")).id for n in range(3)]
    real_conclude = sender._conclude

    def database_gone_at_the_third(pacer, record, delivery, subscriber, msg, outcome):
        if delivery.id == rows[2]:
            raise sender.DBAPIError("UPDATE subscriber", {}, Exception("server closed the connection"))
        return real_conclude(pacer, record, delivery, subscriber, msg, outcome)

    monkeypatch.setattr(sender, "_conclude", database_gone_at_the_third)
    with pytest.raises(sender.DBAPIError):
        sender.deliver_due()

    db.session.expire_all()
    statuses = [db.session.get(Delivery, i) for i in rows]
    # The first two were sent and waited to be written; the third's outcome was never recorded: handed back
    # (it was sent too, so it goes twice: one of the mails in flight).
    assert [d.status for d in statuses] == [SENT, SENT, QUEUED]


def test_a_database_error_while_making_a_window_keeps_what_was_sent_and_hands_back_the_rest(app, monkeypatch):
    app.config["SEND_WINDOW"] = 10
    rows = [owe_welcome(add_subscriber(f"reader{n}@example.com")).id for n in range(3)]
    real_keep_fresh = sender._Batch.keep_fresh

    def database_gone_at_the_third(batch, start):
        if start == 2:
            raise sender.DBAPIError("SELECT subscriber", {}, Exception("server closed the connection"))
        return real_keep_fresh(batch, start)

    monkeypatch.setattr(sender._Batch, "keep_fresh", database_gone_at_the_third)
    with pytest.raises(sender.DBAPIError):
        sender.deliver_due()

    db.session.expire_all()
    assert [db.session.get(Delivery, i).status for i in rows] == [SENT, SENT, QUEUED]
    assert len(files_in_outbox(app)) == 2


def test_a_complaint_that_lands_during_a_hard_bounce_is_kept(app, monkeypatch):
    gone = add_subscriber("gone@example.com")
    owe_welcome(gone)
    gone_id = gone.id

    class ComplaintThenRefusal(OutboxTransport):
        def send(self, msg, sender, recipient):
            with db.engine.begin() as other:
                other.execute(Subscriber.__table__.update().where(Subscriber.id == gone_id).values(status="complained"))
            raise PermanentFailure("550 5.1.1 no such user")

    monkeypatch.setattr(sender, "open_transport", lambda config: ComplaintThenRefusal(config["OUTBOX_DIR"]))
    sender.deliver_due()

    db.session.expire_all()
    assert db.session.get(Subscriber, gone_id).status == Status.COMPLAINED.value


@pytest.mark.parametrize("status", [Status.PENDING.value, Status.BOUNCED.value, Status.COMPLAINED.value,
                                    Status.UNSUBSCRIBED.value])
def test_list_mail_is_skipped_for_anyone_not_confirmed(app, status):
    row = owe_welcome(add_subscriber("ann@example.com", status))

    sender.deliver_due()

    assert reload(row).status == SKIPPED
    assert files_in_outbox(app) == []


@pytest.mark.parametrize("status", [Status.BOUNCED.value, Status.CONFIRMED.value])  # a complained reader's own signup
def test_a_confirmation_is_skipped_for_suppressed_and_already_confirmed_addresses(app, status):  # is mailed
    sub = add_subscriber("ann@example.com", status)
    ledger.queue(db.session, "confirmation", sub.id, "confirmation:x", consent_id=1)
    db.session.commit()

    sender.deliver_due()

    assert db.session.scalar(select(Delivery.status)) == SKIPPED
    assert files_in_outbox(app) == []


# --- dedupe --------------------------------------------------------------------------------------------

def test_queue_with_the_same_key_twice_owes_one_mail(app):
    sub = add_subscriber("ann@example.com")

    first = ledger.queue(db.session, "welcome", sub.id, "welcome:once")
    second = ledger.queue(db.session, "welcome", sub.id, "welcome:once")
    db.session.commit()

    assert (first, second) == (True, False)
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 1


def test_a_sent_mail_is_not_owed_again_under_its_key(app):
    sub = add_subscriber("ann@example.com")
    owe_welcome(sub, "welcome:once")
    sender.deliver_due()

    assert ledger.queue(db.session, "welcome", sub.id, "welcome:once") is False
    db.session.commit()
    assert sender.deliver_due() == 0
    assert len(files_in_outbox(app)) == 1


def test_a_message_that_cannot_be_built_is_retried_and_does_not_stop_the_batch(app):
    sub = add_subscriber("ann@example.com")
    ledger.queue(db.session, "magnet", sub.id, "magnet:broken", magnet_id=424242)  # no such magnet
    good = owe_welcome(sub)

    sender.deliver_due()

    broken = db.session.scalar(select(Delivery).where(Delivery.dedupe_key == "magnet:broken"))
    assert broken.status == QUEUED and broken.attempts == 1 and broken.last_error
    assert aware(broken.next_attempt_at) > utcnow()
    assert reload(good).status == SENT


# --- SMTP replies ------------------------------------------------------------------------------------

def test_smtp_delivery_reaches_the_server(sink, tmp_path, sqlite_template):
    with smtp_app(tmp_path, sqlite_template, sink.url) as app:
        row = owe_welcome(add_subscriber("ann@example.com"))

        sender.deliver_due()

        (msg,) = sink.wait_for("ann@example.com", "Welcome", timeout=5)
        assert reload(row).status == SENT
        assert msg["Message-ID"] == reload(row).message_id
        assert sink.handler.messages[0].envelope_from.startswith(f"bounces+{row.id}-")  # VERP: names the delivery
        assert files_in_outbox(app) == []  # SMTP_URL set: nothing lands in the local outbox


def test_temporary_failure_puts_the_row_back_with_backoff(sink, tmp_path, sqlite_template):
    with smtp_app(tmp_path, sqlite_template, sink.url):
        row = owe_welcome(add_subscriber("ann@example.com"))
        sink.handler.temporary_failures = 1

        before = utcnow()
        sender.deliver_due()

        row = reload(row)
        assert row.status == QUEUED
        assert row.attempts == 1
        assert "451" in row.last_error
        assert row.lease_until is None
        wait = (aware(row.next_attempt_at) - before).total_seconds()
        assert 10 < wait < 50, wait  # 30 s base, jittered by ±50 %
        assert sender.deliver_due() == 0  # not due yet
        assert sink.to("ann@example.com") == []

        # Second failure: the wait doubles.
        row.next_attempt_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        sink.handler.temporary_failures = 1
        before = utcnow()
        sender.deliver_due()
        row = reload(row)
        assert row.status == QUEUED and row.attempts == 2
        assert 25 < (aware(row.next_attempt_at) - before).total_seconds() < 95

        # The server recovers: the row goes out, once.
        row.next_attempt_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        sender.deliver_due()
        assert reload(row).status == SENT
        assert len(sink.wait_for("ann@example.com", "Welcome", timeout=5)) == 1


def test_temporary_failures_past_the_retry_deadline_give_up(sink, tmp_path, sqlite_template):
    with smtp_app(tmp_path, sqlite_template, sink.url):
        sub = add_subscriber("ann@example.com")
        row = owe_welcome(sub)
        row.created_at = utcnow() - timedelta(days=3)
        db.session.commit()
        sink.handler.temporary_failures = 1

        sender.deliver_due()

        row = reload(row)
        assert row.status == FAILED and row.attempts == 1
        assert db.session.get(Subscriber, sub.id).status == Status.CONFIRMED.value  # not a bounce


def test_permanent_failure_fails_the_row_and_marks_the_subscriber_bounced(sink, tmp_path, sqlite_template):
    with smtp_app(tmp_path, sqlite_template, sink.url):
        gone = add_subscriber("gone@example.com")
        ann = add_subscriber("ann@example.com")
        refused = owe_welcome(gone)
        fine = owe_welcome(ann)
        sink.handler.refuse["gone@example.com"] = "550 5.1.1 no such user"

        sender.deliver_due()

        refused, fine = reload(refused), reload(fine)
        assert refused.status == FAILED and refused.attempts == 1
        assert "550" in refused.last_error
        assert db.session.get(Subscriber, gone.id).status == Status.BOUNCED.value
        assert fine.status == SENT  # the same connection carries on after the refusal
        assert len(sink.wait_for("ann@example.com", "Welcome", timeout=5)) == 1
        assert sink.to("gone@example.com") == []

        # A bounced address gets nothing more, not even when it signs up again.
        subscriptions.subscribe(db.session, subscriptions.SignupRequest(email="gone@example.com"))
        db.session.commit()
        assert ledger.due_count(db.session) == 0


class RefusingSender(SinkHandler):
    """A server that will not take mail from our envelope sender (a relay or SPF policy, say)."""

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        return "550 5.7.1 sender address not allowed"


def wrong_password(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=False, handled=False)


@contextmanager
def smtp_server(handler, **options):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_a_refused_sender_does_not_bounce_the_subscriber(tmp_path, sqlite_template):
    with smtp_server(RefusingSender()) as port, smtp_app(tmp_path, sqlite_template, f"smtp://127.0.0.1:{port}"):
        sub = add_subscriber("ann@example.com")
        row = owe_welcome(sub)

        sender.deliver_due()

        assert db.session.get(Subscriber, sub.id).status == Status.CONFIRMED.value
        assert reload(row).status == QUEUED  # retried once the sender is fixed


def test_a_wrong_smtp_password_does_not_bounce_the_subscriber(tmp_path, sqlite_template):
    with smtp_server(SinkHandler(), authenticator=wrong_password, auth_require_tls=False) as port, \
            smtp_app(tmp_path, sqlite_template, f"smtp://mailer:wrong@127.0.0.1:{port}"):
        sub = add_subscriber("ann@example.com")
        row = owe_welcome(sub)

        sender.deliver_due()

        assert db.session.get(Subscriber, sub.id).status == Status.CONFIRMED.value
        assert reload(row).status == QUEUED


# --- the SMTP transport itself ---------------------------------------------------------------------

def test_transport_reconnects_after_the_server_restarts(closing):
    first = SmtpSink().start()
    transport = closing(SMTPTransport(first.url, timeout=5))
    try:
        transport.send(a_message("before restart"), "newsletter@mailer.test", "ann@example.com")
        first.wait_for("ann@example.com", "before restart", timeout=5)
        old_connection = transport._smtp
        first.stop()

        second = SmtpSink(port=first.port).start()
        try:
            reply = transport.send(a_message("after restart"), "newsletter@mailer.test", "ann@example.com")
            assert reply.startswith("250")
            second.wait_for("ann@example.com", "after restart", timeout=5)
            assert transport._smtp is not old_connection  # the dropped connection was replaced
        finally:
            second.stop()
    finally:
        transport.close()


def test_transport_reuses_one_connection_for_a_batch(sink, closing):
    transport = closing(SMTPTransport(sink.url, timeout=5))
    try:
        transport.send(a_message("one"), "newsletter@mailer.test", "ann@example.com")
        connection = transport._smtp
        transport.send(a_message("two"), "newsletter@mailer.test", "ann@example.com")
        assert transport._smtp is connection
    finally:
        transport.close()
    assert len(sink.wait_for("ann@example.com", "", count=2, timeout=5)) == 2


def test_transport_classifies_replies(sink, closing):
    transport = closing(SMTPTransport(sink.url, timeout=5))
    try:
        sink.handler.refuse["gone@example.com"] = "550 5.1.1 no such user"
        with pytest.raises(PermanentFailure, match="550"):
            transport.send(a_message("x", "gone@example.com"), "newsletter@mailer.test", "gone@example.com")
        sink.handler.temporary_failures = 1
        with pytest.raises(TemporaryFailure, match="451"):
            transport.send(a_message("y"), "newsletter@mailer.test", "ann@example.com")
        assert transport.send(a_message("z"), "newsletter@mailer.test", "ann@example.com").startswith("250")
    finally:
        transport.close()


def test_transport_to_a_server_that_is_down_is_a_temporary_failure(closing):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = closing(SMTPTransport(f"smtp://127.0.0.1:{port}", timeout=2))
    with pytest.raises(TemporaryFailure):
        transport.send(a_message("x"), "newsletter@mailer.test", "ann@example.com")
    transport.close()


def test_outbox_transport_writes_whole_eml_files(tmp_path):
    transport = OutboxTransport(tmp_path / "outbox")

    transport.send(a_message("hello"), "newsletter@mailer.test", "ann@example.com")

    (path,) = (tmp_path / "outbox").iterdir()
    assert path.suffix == ".eml"
    assert b"Subject: hello" in path.read_bytes()


# --- waking a worker ---------------------------------------------------------------------------------

def test_a_burst_of_wake_ups_sends_two_messages_the_last_after_the_last_ring():
    import threading
    import time

    class Broker:
        def __init__(self):
            self.sent, self.event = [], threading.Event()

        def send_task(self, name, **options):
            self.sent.append((name, time.monotonic()))
            if len(self.sent) == 2:
                self.event.set()

    broker, bell = Broker(), ledger._Doorbell()
    for _ in range(20):
        bell.ring(broker)
    last_ring = time.monotonic()
    assert len(broker.sent) == 1  # at once, for the first
    assert broker.event.wait(2) and broker.sent[1][1] >= last_ring  # and once more after the burst
    time.sleep(ledger.WAKE_INTERVAL * 2)
    assert len(broker.sent) == 2 and broker.sent[0][0] == "worker.tasks.deliver_due"
    bell.ring(broker)  # after a quiet interval: at once again
    assert len(broker.sent) == 3


def test_a_broker_that_is_down_costs_the_wake_up_only(caplog):
    class DownBroker:
        def send_task(self, name, **options):
            raise ConnectionError("Connection refused")

    ledger._Doorbell().ring(DownBroker())
    assert "queued mail goes out at the next sweep" in caplog.text


def test_a_throttle_pause_is_taken_before_claiming_so_a_short_lease_still_sends(app, monkeypatch):
    import time

    from mailer.mail.pacing import Pacer

    pacer = Pacer(0, None)
    pacer.throttled(421)
    # As long as what is left of the lease below once the margin is taken off: a pause after the claim would
    # leave no time to send; before it, the whole second is there (room for a busy machine).
    pacer.backoff = 1.0
    monkeypatch.setattr(sender, "pacer_for", lambda app: pacer)
    monkeypatch.setitem(app.config, "LEASE_SECONDS", 3.0)  # LEASE_MARGIN is 2 s
    row = owe_welcome(add_subscriber("ann@example.com")).id

    started = time.monotonic()
    assert sender.deliver_due() == 1
    assert time.monotonic() - started >= 1.0  # paused, once, before the claim
    db.session.expire_all()
    assert db.session.get(Delivery, row).status == SENT and pacer.backoff < 1.0


def test_mail_a_person_waits_for_is_claimed_before_a_digest_due_earlier(either_app):
    for n in range(5):
        sub = add_subscriber(f"reader{n}@example.com")
        ledger.queue(db.session, "digest", sub.id, f"digest:1:{sub.id}", digest_id=1)
    db.session.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    welcome = owe_welcome(add_subscriber("new@example.com"))  # owed now, after the digest's rows

    first = sender.claim_due(db.session, limit=2)
    second = sender.claim_due(db.session, limit=10)

    assert welcome.id in first and len(first) == 2
    assert len(second) == 4 and welcome.id not in second

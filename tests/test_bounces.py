"""Bounces and complaints: VERP addresses, the policy, and real DSN / ARF messages through `mailer bounces process`."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mailer.bounces import verp
from mailer.bounces.events import COMPLAINT, HARD, SOFT, record_event
from mailer.extensions import db
from mailer.models import Delivery, MailEvent, Status, Subscriber, utcnow
from mailer.outbox import ledger
from tests.bounce_formats import sample
from tests.conftest import ROOT, SECRET, make_app


def add_subscriber(email: str = "reader@example.com", status: str = "confirmed") -> Subscriber:
    sub = Subscriber(email=email, status=status, confirmed_at=utcnow(), welcome_step=1,
                     welcome_next_at=utcnow() + timedelta(days=2))
    db.session.add(sub)
    db.session.commit()
    return sub


def owe(sub: Subscriber, key: str, status: str = "queued", due_in: timedelta = timedelta(0)) -> Delivery:
    ledger.queue(db.session, "welcome", sub.id, key)
    db.session.execute(update(Delivery).where(Delivery.dedupe_key == key)
                       .values(status=status, next_attempt_at=utcnow() + due_in))
    db.session.commit()
    return db.session.scalar(select(Delivery).where(Delivery.dedupe_key == key))


def fresh(sub: Subscriber) -> Subscriber:
    db.session.expire_all()
    return db.session.get(Subscriber, sub.id)


def statuses(sub: Subscriber) -> dict[str, str]:
    return dict(db.session.execute(select(Delivery.dedupe_key, Delivery.status)
                                   .where(Delivery.subscriber_id == sub.id)).all())


def events() -> int:
    return db.session.scalar(select(func.count()).select_from(MailEvent))


# --- VERP ----------------------------------------------------------------------------------------------

def test_verp_address_round_trip(app):
    address = verp.envelope_sender(42)
    local, _, domain = address.partition("@")
    assert local.startswith("bounces+42-") and len(local.split("-")[1]) == 10 and domain == "localhost"
    assert verp.delivery_from_address(address) == 42
    assert verp.delivery_from_address(address.upper()) == 42  # some MTAs change the case of the local part
    assert verp.delivery_from_address(f"<{address}>") == 42
    assert verp.delivery_from_address(f"Bounce handler <{address}>") == 42
    app.config["BOUNCE_DOMAIN"] = "bounces.mailer.test"
    assert verp.envelope_sender(42).endswith("@bounces.mailer.test")


def test_a_forged_verp_address_names_no_delivery(app):
    address = verp.envelope_sender(42)
    signature = address.split("-")[1].split("@")[0]
    flipped = signature[:-1] + ("a" if signature[-1] != "a" else "b")
    assert verp.delivery_from_address(address.replace(signature, flipped)) is None
    assert verp.delivery_from_address(address.replace("+42-", "+43-")) is None  # a valid signature, another mail
    other_key = verp.envelope_sender(42, {**app.config, "SECRET_KEY": "someone else's key"})
    assert verp.delivery_from_address(other_key) is None
    for junk in ("", "newsletter@localhost", "bounces+42@localhost", "bounces+x-abcdefghij@localhost", None):
        assert verp.delivery_from_address(junk) is None


def test_bounces_of_mail_sent_before_a_key_rotation_still_count(app):
    old = verp.envelope_sender(7)
    app.config.update(SECRET_KEY="the new key", SECRET_KEY_FALLBACKS=[SECRET])
    assert verp.envelope_sender(7) != old
    assert verp.delivery_from_address(old) == 7


# --- the policy ----------------------------------------------------------------------------------------

def test_a_hard_bounce_suppresses_at_once_and_skips_queued_mail(app):
    sub = add_subscriber()
    sent, queued = owe(sub, "welcome:1", "sent"), owe(sub, "welcome:2")
    assert record_event(db.session, "dsn", "e1", HARD, delivery_id=sent.id) is True
    db.session.commit()
    sub = fresh(sub)
    assert sub.status == Status.BOUNCED.value and sub.welcome_next_at is None
    assert statuses(sub) == {"welcome:1": "sent", "welcome:2": "skipped"}
    assert db.session.get(Delivery, queued.id).last_error == "subscriber is bounced"


def test_three_soft_bounces_within_seven_days_suppress_two_do_not(app):
    sub = add_subscriber()
    owe(sub, "welcome:2")
    for n in (1, 2):
        record_event(db.session, "postmark", f"soft-{n}", SOFT, email="Reader@Example.com")
    db.session.commit()
    assert fresh(sub).status == "confirmed" and statuses(sub) == {"welcome:2": "queued"}

    # The first soft bounce is eight days old: with a new one that makes two within the week, not three.
    db.session.execute(update(MailEvent).where(MailEvent.event_key == "postmark:soft-1")
                       .values(received_at=utcnow() - timedelta(days=8)))
    record_event(db.session, "postmark", "soft-3", SOFT, email="reader@example.com")
    db.session.commit()
    assert fresh(sub).status == "confirmed"

    record_event(db.session, "postmark", "soft-4", SOFT, email="reader@example.com")
    db.session.commit()
    sub = fresh(sub)
    assert sub.status == "bounced" and sub.welcome_next_at is None
    assert statuses(sub) == {"welcome:2": "skipped"}


def test_a_soft_bounce_six_days_old_still_counts_toward_three(app):
    sub = add_subscriber()
    record_event(db.session, "postmark", "soft-1", SOFT, email="reader@example.com")
    db.session.execute(update(MailEvent).where(MailEvent.event_key == "postmark:soft-1")
                       .values(received_at=utcnow() - timedelta(days=6)))
    for n in (2, 3):
        record_event(db.session, "postmark", f"soft-{n}", SOFT, email="reader@example.com")
    db.session.commit()
    assert fresh(sub).status == "bounced"


def test_a_complaint_suppresses_at_once_even_a_bounced_address(app):
    sub, other = add_subscriber(), add_subscriber("bounced@example.com", "bounced")
    owe(sub, "welcome:2")
    record_event(db.session, "ses", "c1", COMPLAINT, email="reader@example.com")
    record_event(db.session, "ses", "c2", COMPLAINT, email="bounced@example.com")
    record_event(db.session, "ses", "h1", HARD, email="reader@example.com")  # does not weaken the complaint
    db.session.commit()
    assert fresh(sub).status == "complained" and fresh(other).status == "complained"
    assert statuses(sub) == {"welcome:2": "skipped"}


def test_a_repeated_event_id_is_ignored(app):
    sub = add_subscriber()
    assert record_event(db.session, "sendgrid", "same", SOFT, email=sub.email) is True
    for _ in range(3):
        assert record_event(db.session, "sendgrid", "same", SOFT, email=sub.email) is False
    db.session.commit()
    assert events() == 1 and fresh(sub).status == "confirmed"
    assert record_event(db.session, "postmark", "same", SOFT, email=sub.email) is True  # ids are per provider


def test_events_about_strangers_are_kept_and_act_on_nobody(app):
    sub = add_subscriber()
    assert record_event(db.session, "postmark", "x1", HARD, email="stranger@example.com")
    # Without a delivery, an address in a report anyone could write suppresses nobody.
    assert record_event(db.session, "dsn", "x2", HARD, email=sub.email, match_email=False)
    db.session.commit()
    assert fresh(sub).status == "confirmed"
    rows = db.session.execute(select(MailEvent.email, MailEvent.subscriber_id).order_by(MailEvent.id)).all()
    assert rows == [("stranger@example.com", None), ("reader@example.com", None)]


# --- DSN and ARF messages through the command --------------------------------------------------------

def process(runner, message: bytes, *args: str):
    result = runner.invoke(args=["bounces", "process", *args], input=message)
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("name", ["postfix-hard-bounce.eml", "gmail-hard-bounce.eml"])
def test_a_hard_bounce_dsn_bounces_the_subscriber_of_that_delivery(app, runner, name):
    sub = add_subscriber()
    delivery = owe(sub, "welcome:1", "sent")
    dsn = sample(name, verp.envelope_sender(delivery.id))

    result = process(runner, dsn)
    assert result.exit_code == 0, result.output
    assert f"subscriber {sub.id} is now bounced" in result.output
    event = db.session.scalar(select(MailEvent))
    assert (event.kind, event.provider, event.delivery_id, event.email) == ("hard_bounce", "dsn", delivery.id, sub.email)
    assert "5.1.1" in event.detail

    again = process(runner, dsn)
    assert again.exit_code == 0 and "Already recorded" in again.output
    assert events() == 1


def test_delayed_mail_is_a_soft_bounce_and_three_in_a_week_suppress(app, runner):
    sub = add_subscriber()
    address = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    for n in range(3):
        result = process(runner, sample("postfix-delayed.eml", address, **{"9HkL5678MnOp@": f"9HkL5678MnO{n}@"}))
        assert result.exit_code == 0 and "soft bounce" in result.output
        assert fresh(sub).status == ("bounced" if n == 2 else "confirmed")


def test_a_dsn_that_gave_up_on_a_temporary_failure_is_a_soft_bounce(app, runner):
    # RFC 3463: "failed" with a 4.x.x status means the server stopped retrying, not that the mailbox is gone.
    sub = add_subscriber()
    address = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    result = process(runner, sample("postfix-hard-bounce.eml", address, **{"Status: 5.1.1": "Status: 4.4.7"}))
    assert result.exit_code == 0 and "soft bounce" in result.output, result.output
    assert fresh(sub).status == "confirmed"
    assert db.session.scalar(select(MailEvent.kind)) == "soft_bounce"


def test_a_yahoo_feedback_report_is_a_complaint_found_through_the_returned_headers(app, runner):
    sub = add_subscriber()
    delivery = owe(sub, "welcome:1", "sent")
    result = process(runner, sample("yahoo-complaint.eml", verp.envelope_sender(delivery.id)))
    assert result.exit_code == 0, result.output
    assert fresh(sub).status == "complained"
    assert db.session.scalar(select(MailEvent.kind)) == "complaint"


def test_the_verp_address_can_come_from_the_command_line(app, runner):
    sub = add_subscriber()
    address = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    # An MTA that passes the envelope recipient as an argument and keeps no header naming it.
    bare = sample("postfix-hard-bounce.eml", "postmaster@mailer.test")
    assert process(runner, bare, "--recipient", address).exit_code == 0
    assert fresh(sub).status == "bounced"


def test_a_forged_bounce_is_recorded_but_suppresses_nobody(app, runner):
    sub = add_subscriber()
    delivery = owe(sub, "welcome:1", "sent")
    forged = verp.envelope_sender(delivery.id).replace(f"+{delivery.id}-", f"+{delivery.id + 1}-")
    result = process(runner, sample("postfix-hard-bounce.eml", forged))
    assert result.exit_code == 0 and "nobody was suppressed" in result.output
    assert fresh(sub).status == "confirmed" and events() == 1


@pytest.mark.parametrize("message, says", [
    (None, "an auto-reply"),
    (b"", "Nothing on standard input"),
    (b"\x00\xff garbage \r\n\r\n\r\n", "not sent to one of our VERP addresses"),
    (b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\n\n--x--\n", "disposition"),
    (b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
     b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b.example\n"
     b"Action: delivered\nStatus: 2.0.0\n\n--x--\n", "reports no failure"),
])
def test_a_message_that_is_not_a_bounce_exits_1_and_changes_nothing(app, runner, message, says):
    sub = add_subscriber()
    if message is None:
        message = sample("out-of-office.eml", verp.envelope_sender(owe(sub, "welcome:1", "sent").id))
    result = process(runner, message)
    assert result.exit_code == 1
    assert says in result.output
    assert events() == 0 and fresh(sub).status == "confirmed"


def test_a_database_outage_asks_the_mta_to_try_again(tmp_path):
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/no/such/dir/mailer.db")
    with app.app_context():
        sub_verp = verp.envelope_sender(1)
        result = app.test_cli_runner().invoke(args=["bounces", "process"], input=sample("postfix-hard-bounce.eml", sub_verp))
        db.engine.dispose()
    assert result.exit_code == 75 and "database is unavailable" in result.output
    assert "Traceback" not in result.output


# --- the whole path on PostgreSQL, a real worker and SMTP server -----------------------------------

@pytest.mark.integration
def test_a_bounced_welcome_stops_all_further_mail(pg_app, worker, smtp, stack_env):
    from mailer.posts import digests
    from tests import factories

    reader, other = add_subscriber("reader@example.com"), add_subscriber("other@example.com")
    welcome = owe(reader, f"welcome:{reader.id}")
    ledger.wake()
    smtp.wait_for("reader@example.com", "Welcome")
    [received] = [r for r in smtp.handler.messages if r.recipients == ["reader@example.com"]]
    address = verp.envelope_sender(welcome.id)
    assert received.envelope_from == address

    # The next welcome step is owed for later; the bounce must cancel it.
    later = owe(reader, f"welcome:{reader.id}:2", due_in=timedelta(hours=1))

    # As Postfix's pipe transport runs it: a separate process, the DSN on standard input.
    piped = subprocess.run([sys.executable, "-m", "mailer", "bounces", "process"], cwd=ROOT, env=stack_env,
                           input=sample("postfix-hard-bounce.eml", address), capture_output=True, timeout=60)
    assert piped.returncode == 0, piped.stderr.decode()
    assert b"is now bounced" in piped.stdout

    reader = fresh(reader)
    assert reader.status == "bounced"
    assert db.session.get(Delivery, later.id).status == "skipped"

    factories.post()
    digest = digests.create_digest(db.session)
    db.session.commit()
    ledger.wake()
    assert digest.recipients == 1
    smtp.wait_for("other@example.com", "Career Q&A")
    # Every mail is a row first: with none owed to the bounced address, none is on its way to it.
    db.session.rollback()
    owed = db.session.execute(select(Delivery.kind, Delivery.status).where(Delivery.subscriber_id == reader.id)).all()
    assert "digest" not in {kind for kind, _ in owed} and not {status for _, status in owed} & {"queued", "sending"}
    assert [m["Subject"] for m in smtp.to("reader@example.com")] == [received.message["Subject"]]

"""The exact counters (people/tallies, migration 0027): whatever changes the rows, every counter stays equal to a
fresh count over them, on both databases, under concurrent load, and from any web process at the next request."""
from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta

from sqlalchemy import insert, select, update

from mailer.api_tokens import create_token
from mailer.bounces.events import HARD, record_event
from mailer.extensions import db
from mailer.models import Consent, Delivery, Subscriber, tally_delta, utcnow
from mailer.people import tallies
from mailer.people.housekeeping import purge_unconfirmed
from mailer.people.importing import import_subscribers
from mailer.people.privacy import erase_subscriber
from mailer.people.subscriptions import SignupRequest, confirm_subscription, sign_up, unsubscribe
from mailer.posts.digests import cancel, create_digest
from tests import factories
from tests.admin_helpers import EMAIL, PASSWORD, csrf_from
from tests.conftest import make_app


def exact() -> None:
    """Every counter equals a fresh count of the rows (check() mends and reports what does not)."""
    assert tallies.check(db.session) == {}


def today(prefix: str) -> str:
    return tallies.day_counter(prefix, utcnow().date())


def signup(email: str) -> Subscriber:
    sign_up(db.session, SignupRequest(email=email, ip="192.0.2.1"))
    return factories.subscriber(email)


def confirm(sub: Subscriber) -> None:
    consent = db.session.scalar(select(Consent.id).where(Consent.subscriber_id == sub.id).order_by(Consent.id))
    confirm_subscription(db.session, consent)
    db.session.commit()


def test_every_change_to_subscribers_and_deliveries_is_counted(either_app, monkeypatch):
    monkeypatch.setattr("mailer.outbox.ledger.wake", lambda: None)
    people = [signup(f"reader{n}@example.com") for n in range(5)]
    counted = tallies.read(db.session, ["status:pending", today("signups"), "delivery_kind:confirmation"])
    assert counted == {"status:pending": 5, today("signups"): 5, "delivery_kind:confirmation": 5}
    exact()

    for sub in people[:3]:
        confirm(sub)
    unsubscribe(db.session, people[2].id)
    db.session.commit()
    assert tallies.read(db.session, [today("signups_confirmed"), today("confirmations"), "status:confirmed"]) == {
        today("signups_confirmed"): 3, today("confirmations"): 3, "status:confirmed": 2}
    tallies.fold(db.session)
    db.session.commit()
    assert db.session.scalar(select(tally_delta.c.n).limit(1)) is None  # all moved into the tallies
    exact()

    import_subscribers(db.session, ["email\n", "imp1@example.com\n", "imp2@example.com\n", "reader4@example.com\n"],
                       True, "list.csv")
    record_event(db.session, "dsn", "e1", HARD, email="reader0@example.com")
    db.session.commit()
    assert tallies.read(db.session, ["imported", today("imports"), "status:bounced"]) == {
        "imported": 2, today("imports"): 2, "status:bounced": 1}
    exact()

    factories.post()
    digest = create_digest(db.session)
    db.session.commit()
    first = db.session.scalar(select(Delivery.id).where(Delivery.digest_id == digest.id).order_by(Delivery.id))
    db.session.execute(update(Delivery).where(Delivery.id == first).values(status="sent", sent_at=utcnow()))
    cancel(db.session, digest)
    db.session.commit()
    assert tallies.read(db.session, [today("answered"), f"digest_answered:{digest.id}"]) == {
        today("answered"): 1, f"digest_answered:{digest.id}": 1}
    assert tallies.read(db.session, ["delivery_status:skipped"])["delivery_status:skipped"] >= 2  # the cancelled
    exact()

    erase_subscriber(db.session, people[1])
    stale = signup("stale@example.com")
    db.session.execute(update(Subscriber).where(Subscriber.id == stale.id)  # a signup ten days old: moves its day
                       .values(created_at=utcnow() - timedelta(days=10)))
    db.session.execute(update(Consent).where(Consent.subscriber_id == stale.id)
                       .values(requested_at=utcnow() - timedelta(days=10)))
    db.session.execute(update(Delivery).where(Delivery.subscriber_id == stale.id).values(status="sent"))
    db.session.commit()
    exact()
    assert purge_unconfirmed(db.session, utcnow(), days=7) == 1
    exact()
    assert tallies.read(db.session, ["status:pending", today("signups")]) == {"status:pending": 1, today("signups"): 4}


def test_the_check_logs_and_mends_a_counter_that_drifted(either_app, caplog):
    factories.subscribers(3)
    db.session.execute(insert(tally_delta), [{"counter": "status:confirmed", "n": 2},
                                             {"counter": "delivery_status:sent", "n": 1}])
    db.session.commit()
    with caplog.at_level(logging.WARNING, logger="mailer.people.tallies"):
        assert tallies.check(db.session) == {"status:confirmed": (5, 3), "delivery_status:sent": (1, 0)}
    db.session.commit()
    assert "status:confirmed 5 != 3" in caplog.text
    exact()
    assert tallies.read(db.session, ["status:confirmed"]) == {"status:confirmed": 3}


def test_a_receipt_counts_its_own_mail(private_pg_app):
    """The sender's receipt statement leaves the trigger out and adds to the counters itself (PostgreSQL only)."""
    from mailer.outbox.receipts import Receipts

    factories.subscribers(3)
    factories.post()
    digest = create_digest(db.session)
    db.session.execute(update(Delivery).where(Delivery.digest_id == digest.id).values(status="sending"))
    db.session.commit()
    ids = db.session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    receipts = Receipts(db.engine, None)
    for delivery_id in ids[:2]:
        receipts.accepted(delivery_id, utcnow(), f"<{delivery_id}@mailer.test>")
    receipts.accepted(ids[0], utcnow(), "<again@mailer.test>")  # no longer 'sending': changes nothing
    assert receipts.settle() == [ids[0]]
    receipts.close()
    assert tallies.read(db.session, ["delivery_status:sent", "delivery_status:sending", today("answered"),
                                     f"digest_answered:{digest.id}"]) == {
        "delivery_status:sent": 2, "delivery_status:sending": 1, today("answered"): 2, f"digest_answered:{digest.id}": 2}
    exact()


def test_a_mixed_concurrent_load_leaves_every_counter_exact(private_pg_app, monkeypatch):
    """Signups, confirmations, unsubscribes, imports, erasures, purges, receipts and folds at once, each on a
    connection of its own: at the end every counter equals a fresh count over the rows that remain."""
    from mailer.outbox.receipts import Receipts

    app = private_pg_app
    monkeypatch.setattr("mailer.outbox.ledger.wake", lambda: None)
    rounds = 25
    for n in range(rounds):
        signup(f"confirm{n}@example.com")
        signup(f"erase{n}@example.com")
        signup(f"stale{n}@example.com")
    factories.subscribers(rounds, prefix="leaving")
    stale = select(Subscriber.id).where(Subscriber.email.like("stale%")).scalar_subquery()
    db.session.execute(update(Subscriber).where(Subscriber.id.in_(stale)).values(created_at=utcnow() - timedelta(days=10)))
    db.session.execute(update(Consent).where(Consent.subscriber_id.in_(stale))
                       .values(requested_at=utcnow() - timedelta(days=10)))
    db.session.execute(update(Delivery).where(Delivery.subscriber_id.in_(stale)).values(status="sent"))
    db.session.execute(update(Delivery).where(Delivery.status == "queued").values(status="sending"))
    db.session.commit()
    sending = db.session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    errors: list[BaseException] = []

    def each(work):
        def run():
            try:
                with app.app_context():
                    for n in range(rounds):
                        work(n)
                    db.session.remove()
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)
        return threading.Thread(target=run)

    def receipts(n):
        written = Receipts(db.engine, None)
        for delivery_id in sending[n::rounds]:
            written.accepted(delivery_id, utcnow(), None)
        written.close()

    def fold(_n):
        tallies.fold(db.session)
        db.session.commit()

    work = [
        lambda n: signup(f"new{n}@example.com"),
        lambda n: confirm(factories.subscriber(f"confirm{n}@example.com")),
        lambda n: (unsubscribe(db.session, factories.subscriber(f"leaving{n}@example.com").id), db.session.commit()),
        lambda n: import_subscribers(db.session, ["email\n", f"imp{n}a@example.com\n", f"imp{n}b@example.com\n",
                                                  f"leaving{n}@example.com\n"], n % 2 == 0, "list.csv"),
        lambda n: (erase_subscriber(db.session, factories.subscriber(f"erase{n}@example.com")), db.session.commit()),
        lambda n: purge_unconfirmed(db.session, utcnow(), days=7, batch=2),
        receipts,
        fold,
    ]
    threads = [each(w) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    counted = tallies.read(db.session, ["status:pending", "status:confirmed", "status:unsubscribed", "imported"])
    assert counted["imported"] == 2 * rounds and counted["status:unsubscribed"] > 0, counted
    for gone in ("erase%", "stale%"):
        assert db.session.scalar(select(Subscriber.id).where(Subscriber.email.like(gone)).limit(1)) is None
    assert db.session.scalar(select(Delivery.id).where(Delivery.status == "sending").limit(1)) is None
    exact()


def tile(page: str, status: str) -> int:
    found = re.search(rf'class="tile {status}"[^>]*>.*?<span class="tile-value">([\d,]+)</span>', page, re.S)
    return int(found.group(1).replace(",", ""))


def test_a_signup_shows_on_the_very_next_request_to_another_web_process(either_app, tmp_path, monkeypatch):
    """Two app instances (two web workers, each with its engine and memory) on one database: the one that did
    not take the signup shows it on the dashboard and in the stats API at once."""
    from mailer.admin.auth import set_admin

    monkeypatch.setattr("mailer.outbox.ledger.wake", lambda: None)
    set_admin(db.session, EMAIL, PASSWORD)
    headers = {"Authorization": f"Bearer {create_token(db.session, 'crm')}"}
    db.session.commit()
    other = make_app(tmp_path / "other", SQLALCHEMY_DATABASE_URI=either_app.config["SQLALCHEMY_DATABASE_URI"])
    console, api = other.test_client(), other.test_client()
    page = console.get("/admin/login")
    console.post("/admin/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_from(page.data)})
    try:
        for n in range(1, 4):
            assert either_app.test_client().post("/subscribe", json={"email": f"r{n}@example.com"}).status_code == 202
            assert tile(console.get("/admin/").text, "pending") == n
            stats = api.get("/api/v1/stats", headers=headers).json
            assert stats["subscribers"]["by_status"]["pending"] == n
            assert stats["subscribers"]["signups_last_30_days"] == n
    finally:
        with other.app_context():
            db.engine.dispose()


def test_beat_folds_the_deltas_every_sweep_and_checks_hourly(app, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MAILER_INSTANCE", str(tmp_path / "worker"))  # importing `worker` builds its own app
    from mailer.tasks import beat_schedule
    from worker.tasks import check_tallies, fold_tallies

    schedule = beat_schedule(app.config)
    assert schedule["fold-tallies"]["task"] == "worker.tasks.fold_tallies"
    assert schedule["fold-tallies"]["schedule"] == timedelta(seconds=app.config["SWEEP_SECONDS"])
    assert schedule["check-tallies"]["task"] == "worker.tasks.check_tallies"
    assert schedule["check-tallies"]["schedule"] == timedelta(hours=1)
    factories.subscribers(2)
    fold_tallies.run()  # the task's body, in this test's app
    assert db.session.scalar(select(tally_delta.c.n).limit(1)) is None
    db.session.execute(insert(tally_delta).values(counter="status:confirmed", n=-1))
    db.session.commit()
    with caplog.at_level(logging.WARNING, logger="mailer.people.tallies"):
        check_tallies.run()
    assert "status:confirmed 1 != 2" in caplog.text
    assert tallies.read(db.session, ["status:confirmed"]) == {"status:confirmed": 2}

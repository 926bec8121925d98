"""The sunset rule: quiet readers are asked once, a person's "keep me" keeps them, no answer stops their digests."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from mailer import links
from mailer.extensions import db
from mailer.models import Click, Consent, Delivery, Open, Subscriber
from mailer.outbox import compose
from mailer.people.sunset import Rule, apply_sunset_rule, months_before, stopped_reason
from mailer.posts import digests
from mailer.tasks import beat_schedule
from tests import factories
from tests.conftest import csrf_from

UTC = timezone.utc
RULE = Rule(months=6, answer_days=14)
LONG_AGO = datetime.now(UTC) - timedelta(days=400)


def _reader(prefix: str, confirmed_at: datetime = LONG_AGO, **values) -> Subscriber:
    factories.subscribers(1, prefix=prefix, created_at=confirmed_at)
    if values:
        db.session.execute(update(Subscriber).where(Subscriber.email == f"{prefix}0@example.com").values(**values))
        db.session.commit()
    return factories.subscriber(f"{prefix}0@example.com")


def _questions() -> dict[str, int]:
    db.session.rollback()
    return dict(db.session.execute(
        select(Subscriber.email, func.count()).select_from(Delivery).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.kind == "sunset").group_by(Subscriber.email)).all())


def _sent(now: datetime) -> None:
    """Every question owed so far was sent at `now` (the sender's part, which other tests cover)."""
    db.session.execute(update(Delivery).where(Delivery.kind == "sunset").values(status="sent", sent_at=now))
    db.session.commit()


def _engage(sub: Subscriber, table, at: datetime, human: bool = True) -> None:
    row = {"delivery_id": 1, "subscriber_id": sub.id, "digest_id": 1, "at": at, "human": human}
    if table is Click:
        row["post_id"] = factories.post(n=sub.id + 100).id
    db.session.execute(table.__table__.insert(), [row])
    db.session.commit()


def test_months_before_keeps_the_day_where_it_can():
    assert months_before(datetime(2026, 8, 31, 9, tzinfo=UTC), 6) == datetime(2026, 2, 28, 9, tzinfo=UTC)
    assert months_before(datetime(2026, 3, 15, tzinfo=UTC), 14) == datetime(2025, 1, 15, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 10, tzinfo=UTC), 1) == datetime(2025, 12, 10, tzinfo=UTC)


def test_the_rule_is_off_unless_configured(app):
    assert Rule.from_config(app.config) is None and "sunset-rule" not in beat_schedule(app.config)
    config = {**app.config, "SUNSET_MONTHS": 6}
    assert Rule.from_config(config) == RULE
    entry = beat_schedule(config)["sunset-rule"]
    assert entry["task"] == "worker.tasks.apply_sunset_rule" and entry["schedule"] == timedelta(days=1)


def test_only_quiet_readers_confirmed_long_enough_are_asked_and_only_once(either_app):
    now = datetime.now(UTC)
    quiet = _reader("quiet")
    _reader("newcomer", confirmed_at=now - timedelta(days=60))  # not confirmed six months ago
    clicker = _reader("clicker")
    _engage(clicker, Click, now - timedelta(days=20))
    opener = _reader("opener")
    _engage(opener, Open, now - timedelta(days=20))
    scanned = _reader("scanned")  # only a link scanner and an image proxy "read" their mail: still quiet
    _engage(scanned, Click, now - timedelta(days=2), human=False)
    _engage(scanned, Open, now - timedelta(days=2), human=False)
    stale = _reader("stale")  # a person's click, but long ago
    _engage(stale, Click, now - timedelta(days=300))
    _reader("nodigests", digest_frequency="none")
    _reader("left", status="unsubscribed")
    _reader("pending", status="pending")

    assert apply_sunset_rule(db.session, RULE, now).asked == 3
    db.session.commit()
    assert _questions() == {"quiet0@example.com": 1, "scanned0@example.com": 1, "stale0@example.com": 1}
    # The next day, and a second beat the same day: nobody is asked twice.
    assert apply_sunset_rule(db.session, RULE, now).asked == 0
    assert apply_sunset_rule(db.session, RULE, now + timedelta(days=1)).asked == 0
    db.session.commit()
    assert set(_questions().values()) == {1}
    db.session.refresh(quiet)
    assert quiet.sunset_asked_at is not None and quiet.sunset_at is None


def test_no_answer_stops_digests_a_person_keeps_them_a_scanner_does_not(either_app, monkeypatch):
    from mailer.outbox import ledger

    monkeypatch.setattr(ledger, "wake", lambda: None)
    now = datetime.now(UTC) - timedelta(days=30)  # the rule ran a month ago
    silent, keeper, scanned, reader = (_reader(p) for p in ("silent", "keeper", "scanned", "reader"))
    apply_sunset_rule(db.session, RULE, now)
    db.session.commit()
    _sent(now)
    client = either_app.test_client()
    # A link scanner fetches every link in the mail: the page answers, nothing is kept, and its click is no answer.
    keep = links.keep_url(scanned.id).removeprefix("http://mailer.test")
    page = client.get(keep)
    assert page.status_code == 200 and "Yes, keep me on the list" in page.get_data(as_text=True)
    _engage(scanned, Click, now + timedelta(days=1), human=False)
    # A person presses the button (the page's form, with its token).
    keep_page = links.keep_url(keeper.id).removeprefix("http://mailer.test")
    answer = client.post(keep_page, data={"csrf_token": csrf_from(client.get(keep_page).data)})
    assert answer.status_code == 200 and "you stay on the list" in answer.get_data(as_text=True)
    assert client.post(keep).status_code == 400  # no form token: no keeping by a bare POST either
    # A person's click on a digest in the meantime is an answer too.
    _engage(reader, Click, now + timedelta(days=3))

    assert apply_sunset_rule(db.session, RULE, now + timedelta(days=13)).stopped == 0  # not two weeks yet
    applied = apply_sunset_rule(db.session, RULE, now + timedelta(days=15))
    db.session.commit()
    assert applied.stopped == 2
    stopped = set(db.session.scalars(select(Subscriber.email).where(Subscriber.sunset_at.is_not(None))))
    assert stopped == {"silent0@example.com", "scanned0@example.com"}
    # Their status says why, wherever it is read; the digests leave them out, and mail owed before skips them.
    db.session.refresh(silent)
    assert silent.status == "confirmed" and "no answer to our email" in stopped_reason(silent)
    assert not compose.wants_digests(silent)
    factories.post(n=1)
    digest = digests.create_digest(db.session)
    db.session.commit()
    assert digest.recipients == 2


def _ask_and_stop(prefix: str) -> Subscriber:
    now = datetime.now(UTC) - timedelta(days=30)
    sub = _reader(prefix)
    apply_sunset_rule(db.session, RULE, now)
    db.session.commit()
    _sent(now)
    apply_sunset_rule(db.session, RULE, now + timedelta(days=15))
    db.session.commit()
    db.session.refresh(sub)
    assert sub.sunset_at is not None
    return sub


def test_a_stopped_reader_comes_back_from_the_preference_page_with_a_new_consent(either_app):
    sub = _ask_and_stop("back")
    client = either_app.test_client()
    url = links.preferences_url(sub.id).removeprefix("http://mailer.test")
    page = client.get(url).get_data(as_text=True)
    assert "Your digests have stopped" in page and "Send me the digests again" in page
    answer = client.post(url, data={"csrf_token": csrf_from(page), "action": "come-back"})
    assert answer.status_code == 200 and "Welcome back" in answer.get_data(as_text=True)
    db.session.refresh(sub)
    assert sub.sunset_at is None and sub.sunset_kept_at is not None and stopped_reason(sub) is None
    consent = db.session.scalars(select(Consent).where(Consent.subscriber_id == sub.id, Consent.form == "sunset")).one()
    assert consent.confirmed_at is not None and "Keep sending me the Career Q&A digests" in consent.consent_text
    assert "Your digests have stopped" not in client.get(url).get_data(as_text=True)
    # Kept now: the clock starts again, so the next run does not ask them.
    assert apply_sunset_rule(db.session, RULE).asked == 0


def test_the_api_and_the_console_say_why_digests_stopped(either_app):
    from mailer.api_tokens import create_token
    from tests.admin_helpers import create_admin, log_in

    sub = _ask_and_stop("why")
    token = create_token(db.session, "tests")
    db.session.commit()
    client = either_app.test_client()
    record = client.get(f"/api/v1/subscribers/{sub.email}", headers={"Authorization": f"Bearer {token}"}).json
    assert record["status"] == "confirmed" and record["sunset_at"].endswith("Z")
    assert "Digests stopped on" in record["status_reason"]
    create_admin()
    log_in(client)
    page = client.get(f"/admin/subscribers/{sub.id}").get_data(as_text=True)
    assert 'id="status-reason"' in page and "no answer to our email" in page


def test_the_question_is_a_branded_list_mail_with_a_keep_link_and_no_tracking(app):
    now = datetime.now(UTC)
    app.config["SUNSET_MONTHS"] = 6
    sub = _reader("asked", name="Ada")
    apply_sunset_rule(db.session, RULE, now)
    db.session.commit()
    delivery = db.session.scalars(select(Delivery).where(Delivery.kind == "sunset")).one()
    assert delivery.dedupe_key == f"sunset:{sub.id}:{now:%Y-%m-%d}"
    assert compose.may_send(delivery, sub)
    message = compose.compose(delivery, sub).parsed()
    assert message["Subject"] == "Do you still want the Career Q&A digests?"
    assert message["List-Unsubscribe"].startswith("<http://mailer.test/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hi Ada," in text and "6 months" in text and "14 days" in text
    assert "/keep/" in text and "/keep/" in html and "/o/" not in html and "/c/" not in html
    # Unsubscribed before it went: it is not sent.
    sub.status = "unsubscribed"
    assert not compose.may_send(delivery, sub)


@pytest.mark.integration
def test_the_question_is_claimed_after_the_mail_people_wait_for(private_pg_app):
    from sqlalchemy import text

    from mailer.outbox import ledger, sender

    [email] = factories.subscribers(1)
    sub = factories.subscriber(email)
    ledger.queue(db.session, "sunset", sub.id, "sunset:x")
    ledger.queue(db.session, "welcome", sub.id, "welcome:x")
    db.session.commit()
    first = sender.claim_due(db.session, limit=1)
    db.session.commit()
    assert db.session.get(Delivery, first[0]).kind == "welcome"
    db.session.execute(text("SET enable_seqscan = off"))  # a tiny table: ask whether the index can serve
    plan = "\n".join(db.session.execute(text(
        "EXPLAIN SELECT id FROM delivery WHERE status = 'queued' AND next_attempt_at <= now() "
        "AND kind NOT IN ('digest', 'sunset') ORDER BY next_attempt_at, id LIMIT 5")).scalars())
    assert "ix_delivery_due_for_people" in plan

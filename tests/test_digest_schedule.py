"""A digest scheduled for a time: nothing owed before, started once by beat when due, called off by a cancel."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.extensions import db
from mailer.models import Delivery, Digest, Post
from mailer.posts import digests
from mailer.posts.digest_schedule import read_send_at, schedule_digest, start_due_digests
from tests import factories
from tests.test_digests import copies, wait_for_digest
from tests.waiting import wait_until

SOON = timedelta(minutes=30)


def owed(digest_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.digest_id == digest_id))


def later(delta: timedelta = SOON) -> datetime:
    return datetime.now(timezone.utc) + delta


def test_the_default_subject_names_the_newest_post_and_counts_the_rest(app):
    one = [Post(title="Keep in Touch?")]
    assert digests.default_subject(one) == "Keep in Touch?"
    three = [Post(title="Older"), Post(title="Old"), Post(title="Why Do You Want to Work Here?")]
    assert digests.default_subject(three) == "Why Do You Want to Work Here?, and 2 more"


@pytest.mark.parametrize("value", ["", "tomorrow", "2026-13-01T09:00+00:00", 1767258000, None])
def test_a_send_at_that_is_no_date_names_the_field(value):
    with pytest.raises(digests.DigestError) as caught:
        read_send_at(value)
    assert caught.value.field == "send_at" and "ISO 8601" in str(caught.value)


def test_send_at_needs_an_offset_but_the_console_says_its_naive_times_are_utc():
    with pytest.raises(digests.DigestError, match="no offset"):
        read_send_at("2026-12-24T09:00")
    assert read_send_at("2026-12-24T09:00", naive_is_utc=True) == datetime(2026, 12, 24, 9, tzinfo=timezone.utc)
    assert read_send_at("2026-12-24T10:00+01:00") == datetime(2026, 12, 24, 9, tzinfo=timezone.utc)
    assert read_send_at("2026-12-24T09:00Z") == datetime(2026, 12, 24, 9, tzinfo=timezone.utc)


def test_nothing_is_owed_before_it_falls_due_and_it_starts_once(either_app):
    factories.subscribers(4)
    factories.post(n=1)
    digest = schedule_digest(db.session, later())
    db.session.commit()
    assert (digest.status, digest.recipients, owed(digest.id)) == ("scheduled", 0, 0)
    assert digests.unsent_posts(db.session) == []  # its posts wait for it, not for another digest
    assert start_due_digests(db.session) == [] and owed(digest.id) == 0

    factories.subscribers(2, prefix="newcomer")  # confirmed before it falls due: they get it too
    started = start_due_digests(db.session, now=later(SOON + timedelta(seconds=1)))
    db.session.commit()
    assert [d.id for d in started] == [digest.id] and owed(digest.id) == 6
    assert start_due_digests(db.session, now=later(SOON * 2)) == []  # a second beat: nothing more
    assert digests.start_digest(db.session, db.session.get(Digest, digest.id)) is False  # nor a late click
    db.session.commit()
    assert owed(digest.id) == 6 and db.session.get(Digest, digest.id).recipients == 6


def test_a_schedule_cancelled_before_it_is_due_never_sends(either_app):
    factories.subscribers(3)
    factories.post(n=1)
    digest = schedule_digest(db.session, later())
    db.session.commit()
    assert digests.cancel(db.session, digest) is True
    db.session.commit()
    assert start_due_digests(db.session, now=later(SOON * 2)) == []
    db.session.commit()
    assert db.session.get(Digest, digest.id).status == "cancelled" and owed(digest.id) == 0
    assert [p.id for p in digests.unsent_posts(db.session)] == [p.id for p in digest.posts]  # offered again


def test_a_time_in_the_past_is_refused(app):
    factories.post(n=1)
    with pytest.raises(digests.DigestError, match="not in the future") as caught:
        schedule_digest(db.session, datetime.now(timezone.utc) - timedelta(minutes=1))
    assert caught.value.field == "send_at"


@pytest.mark.integration
def test_two_beats_racing_start_a_due_digest_once(pg_app):
    factories.subscribers(50)
    factories.post(n=1)
    digest = schedule_digest(db.session, later(timedelta(seconds=1)))
    db.session.commit()
    due = later(timedelta(seconds=2))
    barrier, started = threading.Barrier(2), []

    def beat() -> None:
        with pg_app.app_context(), Session(db.engine) as session:
            barrier.wait()
            started.extend(d.id for d in start_due_digests(session, now=due))
            session.commit()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert started == [digest.id] and owed(digest.id) == 50


@pytest.mark.integration
def test_the_api_schedules_and_beat_starts_it_for_the_worker(pg_app, worker, smtp, api):
    from worker.tasks import start_due_digests as beat_task

    readers = factories.subscribers(5)
    factories.post("Scheduled Answers", n=1)
    for bad, reason in (("2020-01-01T09:00:00+00:00", "not in the future"), ("soon", "ISO 8601"),
                        ("2030-01-01T09:00:00", "no offset")):
        refused = api.post("/digests", {"send_at": bad})
        assert refused.status_code == 400 and refused.json["field"] == "send_at" and reason in refused.json["error"]

    send_at = later(timedelta(seconds=2))
    created = api.post("/digests", {"send_at": send_at.isoformat()})
    assert created.status_code == 202, created.json
    state = created.json
    assert (state["status"], state["recipients"], state["send_at"]) == ("scheduled", 0, send_at.isoformat())
    assert api.post("/digests", {}).status_code == 409  # its post is taken
    beat_task.apply()  # not due yet
    assert owed(state["id"]) == 0 and api.get(f"/digests/{state['id']}").json["status"] == "scheduled"

    wait_until(lambda: datetime.now(timezone.utc) > send_at, timeout=10)
    beat_task.apply()
    beat_task.apply()  # a second beat tick finds nothing left to start
    done = wait_for_digest(api, state["id"], done=lambda s: s["status"] == "sent")
    assert (done["recipients"], done["sent"]) == (5, 5) and done["finished_at"]
    received = copies(smtp, "Scheduled Answers")
    assert set(received) == set(readers) and set(received.values()) == {1}


@pytest.mark.integration
def test_beat_runs_the_start_of_due_digests(pg_app):
    from mailer.tasks import beat_schedule

    entry = beat_schedule(pg_app.config)["digests-due"]
    assert entry["task"] == "worker.tasks.start_due_digests"
    assert entry["schedule"] == timedelta(seconds=pg_app.config["SWEEP_SECONDS"])

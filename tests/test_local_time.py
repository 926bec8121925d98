"""Readers' time zones from the signup, and digests that reach each reader at a time on their own clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.models import Delivery, Digest, Subscriber, aware
from mailer.outbox import ledger, sender
from mailer.people.exporting import export_csv
from mailer.posts import digests
from mailer.posts.digest_schedule import schedule_digest, start_due_digests
from mailer.posts.local_time import known_zone, next_local, read_local_time, waiting
from tests import factories
from tests.conftest import csrf_from

UTC = timezone.utc
NEW_YORK, TOKYO, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo"), ZoneInfo("Europe/London")


@pytest.fixture
def quiet(monkeypatch):
    """No broker in these tests: the rows are what they check."""
    monkeypatch.setattr(ledger, "wake", lambda: None)


def api_client(app):
    token = create_token(db.session, "tests")
    db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    return (lambda path, body: client.post(f"/api/v1{path}", json=body, headers=headers),
            lambda path: client.get(f"/api/v1{path}", headers=headers))


# --- the rule ------------------------------------------------------------------------------------------------

def test_the_next_local_time_is_today_or_tomorrow_on_the_readers_clock():
    morning = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # 08:00 in London, 17:00 in Tokyo, 03:00 in New York
    assert next_local("09:00", LONDON, morning) == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert next_local("09:00", TOKYO, morning) == datetime(2026, 12, 4, 0, 0, tzinfo=UTC)  # tomorrow 09:00 JST
    assert next_local("09:00", NEW_YORK, morning) == datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
    # At 09:00 sharp it is due now; a second later, tomorrow.
    nine = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert next_local("09:00", LONDON, nine) == nine
    assert next_local("09:00", LONDON, nine + timedelta(seconds=1)) == nine + timedelta(days=1)


def test_a_time_the_clocks_skip_is_read_before_the_jump_and_one_they_repeat_is_the_first():
    # New York, 8 March 2026: 02:00 EST jumps to 03:00 EDT, so 02:30 is read as EST: 07:30 UTC, 03:30 EDT.
    before_spring = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert next_local("02:30", NEW_YORK, before_spring) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    # 1 November 2026: 01:30 comes twice (EDT, then EST); the first is 05:30 UTC.
    before_autumn = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    assert next_local("01:30", NEW_YORK, before_autumn) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    # 09:00 is 09:00 on both sides of a change: 13:00 UTC after spring, 14:00 after autumn.
    assert next_local("09:00", NEW_YORK, before_spring) == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)
    assert next_local("09:00", NEW_YORK, before_autumn) == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", ["9:00", "24:00", "09:60", "09:00:00", "nine", "", 900, None, ["09:00"]])
def test_a_local_time_that_is_no_time_of_day_names_the_field(value):
    with pytest.raises(digests.DigestError) as caught:
        read_local_time(value)
    assert caught.value.field == "local_time" and "24-hour" in str(caught.value)
    assert read_local_time(" 23:59 ") == "23:59"


def test_only_zone_names_zoneinfo_knows_are_kept():
    assert known_zone("Europe/Berlin") == "Europe/Berlin" and known_zone("UTC") == "UTC"
    for odd in ("Mars/Olympus", "europe/berlin", "", None, 5, "Europe/Berlin\n", "../../etc/passwd", "A" * 65):
        assert known_zone(odd) is None


# --- the signup ----------------------------------------------------------------------------------------------

def _zone_of(email: str) -> str | None:
    db.session.rollback()
    return db.session.scalar(select(Subscriber.time_zone).where(Subscriber.email == email))


def test_a_signup_keeps_the_browsers_zone_and_never_fails_for_one(either_app):
    client = either_app.test_client()
    for email, zone, kept in (("berlin@example.com", "Europe/Berlin", "Europe/Berlin"),
                              ("mars@example.com", "Mars/Olympus", None), ("none@example.com", None, None),
                              ("number@example.com", 5, None), ("broken@example.com", "Europe/Berlin\r\nX: y", None),
                              ("long@example.com", "x" * 5000, None)):
        answer = client.post("/subscribe", json={"email": email, "time_zone": zone, "form": "script"})
        assert answer.status_code == 202, (zone, answer.json)
        assert _zone_of(email) == kept
    # Again while pending: the zone follows the browser; a zone nobody knows leaves it as it was.
    client.post("/subscribe", json={"email": "berlin@example.com", "time_zone": "Asia/Tokyo"})
    assert _zone_of("berlin@example.com") == "Asia/Tokyo"
    client.post("/subscribe", json={"email": "berlin@example.com", "time_zone": "Nowhere/Else"})
    assert _zone_of("berlin@example.com") == "Asia/Tokyo"


def test_a_confirmed_readers_zone_is_not_moved_by_a_signup_with_their_address(either_app):
    [email] = factories.subscribers(1)
    db.session.execute(update(Subscriber).values(time_zone="Europe/Paris"))
    db.session.commit()
    either_app.test_client().post("/subscribe", json={"email": email, "time_zone": "Pacific/Auckland"})
    assert _zone_of(email) == "Europe/Paris"


def test_the_iframe_form_carries_a_hidden_zone_filled_by_a_static_script(app):
    client = app.test_client()
    page = client.get("/embed").get_data(as_text=True)
    assert 'name="time_zone"' in page and "/static/time_zone.js" in page
    assert "<script>" not in page  # CSP: no inline script
    with client.get("/static/time_zone.js") as served:
        script = served.get_data(as_text=True)
    assert "resolvedOptions().timeZone" in script and "data-time-zone" in script
    assert "time_zone: timeZone()" in client.get("/embed.js").get_data(as_text=True)
    form = {"email": "framed@example.com", "form": "iframe", "time_zone": "America/Chicago", "magnet": "handbook"}
    assert client.post("/subscribe", data=form).status_code == 200
    assert _zone_of("framed@example.com") == "America/Chicago"


def test_the_export_and_the_api_give_the_zone(either_app):
    [email] = factories.subscribers(1)
    db.session.execute(update(Subscriber).values(time_zone="Asia/Kolkata"))
    db.session.commit()
    header, row = "".join(export_csv(db.session)).splitlines()
    assert header.split(",")[6] == "time_zone" and row.split(",")[6] == "Asia/Kolkata"
    _, get = api_client(either_app)
    assert get(f"/subscribers/{email}").json["time_zone"] == "Asia/Kolkata"


# --- the digest ----------------------------------------------------------------------------------------------

def _readers_in_zones() -> dict[str, str | None]:
    zones = {"tokyo@example.com": "Asia/Tokyo", "newyork@example.com": "America/New_York",
             "nowhere@example.com": None, "gone@example.com": "Atlantis/Capital"}  # a name tzdata no longer has
    for email in zones:
        factories.subscribers(1, prefix=email.split("@")[0])
    for email, zone in zones.items():
        address = email.replace("@", "0@")
        db.session.execute(update(Subscriber).where(Subscriber.email == address).values(time_zone=zone))
    db.session.commit()
    return {email.replace("@", "0@"): zone for email, zone in zones.items()}


def _due_by_reader(digest_id: int) -> dict[str, datetime]:
    db.session.rollback()
    return {email: aware(due) for email, due in db.session.execute(
        select(Subscriber.email, Delivery.next_attempt_at).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.digest_id == digest_id))}


def _expected(zones: dict[str, str | None], at: str, after: datetime) -> dict[str, datetime]:
    return {email: next_local(at, ZoneInfo(zone) if zone and zone != "Atlantis/Capital" else LONDON, after)
            for email, zone in zones.items()}


def test_each_readers_mail_falls_due_at_their_own_nine_oclock(either_app):
    either_app.config["AUTHOR_TIME_ZONE"] = "Europe/London"  # readers without a zone, or with a lost one
    zones = _readers_in_zones()
    factories.post(n=1)
    before = datetime.now(UTC)
    digest = digests.create_digest(db.session, local_time="09:00")
    db.session.commit()
    after = datetime.now(UTC)
    due = _due_by_reader(digest.id)
    assert digest.recipients == 4 and digest.local_time == "09:00"
    assert due in (_expected(zones, "09:00", before), _expected(zones, "09:00", after))
    assert all(before <= moment <= after + timedelta(days=1) for moment in due.values())
    # Nothing is claimed before its time (unless it is 09:00 somewhere right now).
    claimed = sender.claim_due(db.session, limit=10)
    db.session.commit()
    assert len(claimed) == sum(moment <= datetime.now(UTC) for moment in due.values())
    rows = db.session.scalars(select(Delivery.subscriber_id).where(Delivery.digest_id == digest.id)).all()
    assert len(rows) == len(set(rows)) == 4  # one row per reader


def test_a_digest_without_a_local_time_is_due_at_once(either_app):
    _readers_in_zones()
    factories.post(n=1)
    before = datetime.now(UTC)
    digest = digests.create_digest(db.session)
    db.session.commit()
    assert all(moment <= datetime.now(UTC) and moment >= before - timedelta(seconds=1)
               for moment in _due_by_reader(digest.id).values())


def test_a_scheduled_local_time_digest_counts_from_its_send_at(either_app):
    zones = _readers_in_zones()
    factories.post(n=1)
    send_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    digest = schedule_digest(db.session, send_at, local_time="07:15")
    db.session.commit()
    # Beat starts it a little after send_at: its readers' 07:15 is counted from send_at all the same.
    [started] = start_due_digests(db.session, now=send_at + timedelta(seconds=3))
    db.session.commit()
    assert started.id == digest.id and _due_by_reader(digest.id) == _expected(zones, "07:15", send_at)


def test_the_progress_counts_what_waits_by_the_hour_it_falls_due(either_app):
    zones = _readers_in_zones()
    factories.post(n=1)
    digest = digests.create_digest(db.session, local_time="09:00")
    db.session.commit()
    now = datetime.now(UTC)
    expected: dict[datetime, int] = {}
    for moment in _due_by_reader(digest.id).values():
        if moment > now:
            hour = moment.replace(minute=0, second=0, microsecond=0)
            expected[hour] = expected.get(hour, 0) + 1
    found = waiting(db.session, digest.id, now)
    assert found.hours == sorted(expected.items()) and found.total == sum(expected.values()) <= len(zones)
    hours = found.every_hour()
    assert [h for h, _ in hours] == [found.hours[0][0] + timedelta(hours=n) for n in range(len(hours))]
    # A retried mail is not waiting for its reader's time: it is retrying.
    db.session.execute(update(Delivery).where(Delivery.digest_id == digest.id).values(attempts=1))
    assert waiting(db.session, digest.id, now).total == 0


def test_the_api_sends_and_schedules_at_a_local_time_and_shows_what_waits(either_app, quiet):
    _readers_in_zones()
    factories.post(n=1)
    factories.post("Second", n=2)
    post, get = api_client(either_app)
    for bad in ("9am", "25:00", 9, ["09:00"]):
        refused = post("/digests", {"local_time": bad})
        assert refused.status_code == 400 and refused.json["field"] == "local_time", refused.json
    tested = post("/digests", {"local_time": "09:00", "subjects": ["One", "Two"]})
    assert tested.status_code == 400 and tested.json["field"] == "local_time" and "subject test" in tested.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Digest)) == 0
    first, second = (p.id for p in digests.unsent_posts(db.session))
    created = post("/digests", {"local_time": "09:00", "post_ids": [first]})
    assert created.status_code == 202 and created.json["local_time"] == "09:00" and created.json["recipients"] == 4
    state = get(f"/digests/{created.json['id']}").json
    assert state["waiting"] == sum(h["mails"] for h in state["waiting_by_hour"]) and state["pending"] == 4
    assert 1 <= state["waiting"] <= 4  # the readers whose 09:00 is not this very moment
    assert all(datetime.fromisoformat(h["hour"]).minute == 0 for h in state["waiting_by_hour"])
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = post("/digests", {"local_time": "18:30", "send_at": send_at, "post_ids": [second]})
    assert scheduled.status_code == 202 and scheduled.json["status"] == "scheduled"
    assert db.session.get(Digest, scheduled.json["id"]).local_time == "18:30"


def test_the_console_sends_at_a_local_time_and_draws_what_waits(either_app, quiet):
    from tests.admin_helpers import create_admin, log_in

    client = either_app.test_client()
    create_admin()
    log_in(client)
    either_app.config["AUTHOR_TIME_ZONE"] = "Pacific/Kiritimati"  # UTC+14: 09:00 there is rarely now
    factories.subscribers(3)
    post = factories.post(n=1)
    preview = client.get(f"/admin/digests/preview?post_ids={post.id}&confirm=1").get_data(as_text=True)
    assert 'type="time" name="local_time"' in preview and "Pacific/Kiritimati" in preview
    token = csrf_from(preview)
    refused = client.post("/admin/digests", data={"csrf_token": token, "post_ids": post.id, "local_time": "9 o'clock"})
    assert refused.status_code == 302 and "/admin/digests/preview" in refused.location
    assert db.session.scalars(select(Digest)).all() == []
    sent = client.post("/admin/digests", data={"csrf_token": token, "post_ids": post.id, "local_time": "09:00"})
    digest = db.session.scalars(select(Digest)).one()
    assert sent.status_code == 302 and digest.local_time == "09:00"
    page = client.get(f"/admin/digests/{digest.id}").get_data(as_text=True)
    assert 'id="waiting"' in page and "At 09:00 on each reader" in page
    assert page.count('<rect x="') >= 1 and 'class="chart waiting"' in page


def test_the_command_line_sends_at_a_local_time_and_lists_what_waits(app, quiet):
    app.config["AUTHOR_TIME_ZONE"] = "Pacific/Kiritimati"
    factories.subscribers(2)
    factories.post(n=1)
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["digest", "send", "--local-time", "nine"])
    assert refused.exit_code == 2 and "24-hour" in refused.output
    result = runner.invoke(args=["digest", "send", "--local-time", "09:00"])
    assert result.exit_code == 0, result.output
    digest = db.session.scalars(select(Digest)).one()
    assert digest.local_time == "09:00" and digest.recipients == 2
    assert "2 mail(s) wait for their reader's 09:00" in result.output  # 19:00 UTC; not this very moment

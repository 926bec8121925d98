"""The preference page, and digests that honour what readers chose there."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from mailer import links
from mailer.extensions import db
from mailer.models import Delivery, Subscriber, aware
from mailer.outbox import compose, ledger
from tests import factories
from tests.conftest import csrf_from
from tests.test_digests import copies, wait_for_digest


def _reader(email: str = "reader0@example.com") -> Subscriber:
    factories.subscribers(1, prefix=email.split("0@")[0])
    return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def _post(client, subscriber_id: int, **form):
    url = links.preferences_url(subscriber_id).removeprefix("http://mailer.test")
    page = client.get(url)
    assert page.status_code == 200
    return client.post(url, data={"csrf_token": csrf_from(page.data), **form})


def test_the_page_changes_frequency_pause_and_name(app, client):
    person = _reader()
    page = client.get(links.preferences_url(person.id).removeprefix("http://mailer.test")).get_data(as_text=True)
    assert "reader0@example.com" in page and 'value="every" checked' in page and "<script" not in page

    assert "monthly summary" in _post(client, person.id, action="frequency", frequency="monthly").get_data(as_text=True)
    db.session.refresh(person)
    assert person.digest_frequency == "monthly"
    assert _post(client, person.id, action="frequency", frequency="daily").status_code == 422
    _post(client, person.id, action="frequency", frequency="none")
    db.session.refresh(person)
    assert person.digest_frequency == "none"

    answer = _post(client, person.id, action="pause")
    assert "Resume now" in answer.get_data(as_text=True)
    db.session.refresh(person)
    paused = aware(person.paused_until) - datetime.now(timezone.utc)
    assert timedelta(days=29) < paused <= timedelta(days=30)
    _post(client, person.id, action="resume")
    db.session.refresh(person)
    assert person.paused_until is None

    assert "Ada Lovelace" in _post(client, person.id, action="name", name="  Ada   Lovelace ").get_data(as_text=True)
    db.session.refresh(person)
    assert person.name == "Ada Lovelace"
    assert _post(client, person.id, action="name", name="x" * 101).status_code == 422
    assert "greet you without a name" in _post(client, person.id, action="name", name="  ").get_data(as_text=True)
    db.session.refresh(person)
    assert person.name is None


def test_the_page_mails_a_fresh_handbook_link_and_unsubscribes(app, client):
    person = _reader()
    first = _post(client, person.id, action="download").get_data(as_text=True)
    assert "a copy is on its way by email" in first
    link = re.search(r'<a class="button" href="([^"]+)">Download the handbook</a>', first).group(1)
    download = client.get(link.removeprefix("http://mailer.test"))
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    download.close()
    owed = db.session.scalars(select(Delivery).where(Delivery.subscriber_id == person.id)).all()
    assert [d.kind for d in owed] == ["magnet"]

    again = _post(client, person.id, action="download").get_data(as_text=True)  # minutes later: no second mail
    assert "no new email this time" in again and "Download the handbook</a>" in again
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.subscriber_id == person.id)) == 1

    unticked = _post(client, person.id, action="unsubscribe")  # the box that confirms it is left unticked
    assert unticked.status_code == 422 and "nothing was changed" in unticked.get_data(as_text=True)
    db.session.refresh(person)
    assert person.status == "confirmed"
    answer = _post(client, person.id, action="unsubscribe", confirm="yes")
    assert "You are unsubscribed" in answer.get_data(as_text=True)
    db.session.refresh(person)
    assert person.status == "unsubscribed"
    again = client.get(links.preferences_url(person.id).removeprefix("http://mailer.test")).get_data(as_text=True)
    assert "not subscribed any more" in again


def test_a_bad_token_or_a_missing_csrf_token_changes_nothing(app, client):
    person = _reader()
    assert client.get("/preferences/forged").status_code == 400
    unsubscribe_token = links.unsubscribe_url(person.id).rsplit("/", 1)[1]
    assert client.get(f"/preferences/{unsubscribe_token}").status_code == 400  # its own salt
    url = links.preferences_url(person.id).removeprefix("http://mailer.test")
    assert client.post(url, data={"action": "unsubscribe"}).status_code == 400
    db.session.refresh(person)
    assert person.status == "confirmed"


def test_welcome_mails_link_to_the_page(app):
    person = _reader()
    ledger.queue(db.session, "welcome", person.id, f"welcome:{person.id}", template="welcome")
    db.session.commit()
    delivery = db.session.scalar(select(Delivery).where(Delivery.kind == "welcome"))
    msg = compose.compose(delivery, person).parsed()
    for part in ("plain", "html"):
        assert "http://mailer.test/preferences/" in msg.get_body((part,)).get_content()


@pytest.mark.integration
def test_the_next_digests_go_where_readers_chose(pg_app, worker, smtp, api):  # noqa: F811
    every = factories.subscribers(3, prefix="every")
    monthly = factories.subscribers(2, prefix="monthly")
    none = factories.subscribers(1, prefix="none")
    paused = factories.subscribers(1, prefix="paused")
    back = factories.subscribers(1, prefix="back")  # paused, but the month is over
    now = datetime.now(timezone.utc)
    for emails, values in ((monthly, {"digest_frequency": "monthly"}), (none, {"digest_frequency": "none"}),
                           (paused, {"paused_until": now + timedelta(days=20)}),
                           (back, {"paused_until": now - timedelta(minutes=1)})):
        db.session.execute(update(Subscriber).where(Subscriber.email.in_(emails)).values(**values))
    db.session.commit()
    # A reader changes their mind on the page just before the digest.
    switcher = db.session.scalar(select(Subscriber).where(Subscriber.email == every[2]))
    client = pg_app.test_client()
    assert _post(client, switcher.id, action="frequency", frequency="monthly").status_code == 200

    old = factories.post("An answer from last season", n=24 * 40)  # outside the last month
    recent = factories.post("How do I ask for a raise?", n=2)
    weekly = api.post("/digests", {"subject": "This week on Career Q&A"})
    assert weekly.status_code == 202
    wait_for_digest(api, weekly.json["id"])
    assert set(copies(smtp, "This week on Career Q&A")) == set(every[:2] + back)

    newest = factories.post("Career Q&A: a second job on the side?", n=1)
    summary = api.post("/digests", {"subject": "Your month on Career Q&A", "audience": "monthly"})
    assert summary.status_code == 202 and summary.json["recipients"] == 3
    wait_for_digest(api, summary.json["id"])
    received = copies(smtp, "Your month on Career Q&A")
    assert set(received) == set(monthly + [every[2]]) and set(received.values()) == {1}
    text = smtp.to(monthly[0])[0].get_body(("plain",)).get_content()
    assert recent.title in text and newest.title in text and old.title not in text
    assert api.get(f"/digests/{summary.json['id']}").json["audience"] == "monthly"

    # The monthly summary took nothing from readers of every digest, and carries a post only once.
    assert api.post("/digests", {"audience": "monthly"}).status_code == 409
    assert [p["title"] for p in api.post("/digests", {"subject": "Next"}).json["posts"]] == [newest.title]
    assert api.post("/digests", {"audience": "weekly"}).status_code == 400
    assert not any(address in copies(smtp, "Career Q&A") for address in none + paused)


def test_beat_sends_the_monthly_summary_on_the_first_and_the_cli_can_too(app, runner):
    from mailer.tasks import beat_schedule

    schedule = beat_schedule({"SWEEP_SECONDS": 5, "DIGEST_SCHEDULE": "30 9 * * mon"})
    monthly = schedule["monthly-digest"]
    assert monthly["kwargs"] == {"audience": "monthly"} and monthly["schedule"].day_of_month == {1}
    assert monthly["schedule"].hour == {9} and monthly["schedule"].minute == {30}
    assert "monthly-digest" not in beat_schedule({"SWEEP_SECONDS": 5})

    factories.subscribers(2)
    db.session.execute(update(Subscriber).where(Subscriber.email == "reader1@example.com").values(digest_frequency="monthly"))
    db.session.commit()
    factories.post()
    result = runner.invoke(args=["digest", "send", "--monthly", "--dry-run"])
    assert result.exit_code == 0 and "to 1 confirmed subscriber" in result.output
    result = runner.invoke(args=["digest", "send", "--monthly"])
    assert result.exit_code == 0 and "owed to 1 subscriber" in result.output
    assert runner.invoke(args=["digest", "send", "--monthly"]).exit_code == 1

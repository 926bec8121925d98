"""The console's compose and digest pages as an author uses them: order, subject, test address, schedule, results."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import Click, Delivery, Digest, Open
from tests import factories
from tests.admin_helpers import EMAIL, create_admin, fresh_g_per_request, log_in, token  # noqa: F401


def posts() -> dict:
    older, newer = factories.post("Older answer", n=2), factories.post("Newer answer", n=1)
    return {"post_ids": [older.id, newer.id], "subject": "", "intro": ""}


def test_compose_lists_newest_first_and_proposes_a_subject_that_reads_well(admin):
    choice = posts()
    page = admin.get("/admin/digests").text
    assert page.index("Newer answer") < page.index("Older answer")
    preview = admin.get("/admin/digests/preview", query_string=choice).text
    assert "<h1 class=\"break\">Newer answer, and 1 more</h1>" in preview


def test_the_test_address_is_the_signed_in_admins(admin):
    preview = admin.get("/admin/digests/preview", query_string=posts()).text
    assert re.search(rf'name="to"[^>]*value="{re.escape(EMAIL)}"', preview)


def test_schedule_from_the_console_then_cancel_it(admin):
    factories.subscribers(2)
    choice = posts()
    preview = admin.get("/admin/digests/preview", query_string=choice).text
    assert 'type="datetime-local" name="send_at"' in preview and "UTC" in preview

    past = admin.post("/admin/digests", data={**choice, "send_at": "2020-01-01T09:00", "csrf_token": token(admin)},
                      follow_redirects=True).text
    assert "Nothing was scheduled" in past and "not in the future" in past and db.session.scalar(select(Digest)) is None

    when = (datetime.now(timezone.utc) + timedelta(days=1)).replace(second=0, microsecond=0)
    sent = admin.post("/admin/digests", data={**choice, "send_at": when.strftime("%Y-%m-%dT%H:%M"),
                                              "csrf_token": token(admin)})
    digest = db.session.scalar(select(Digest))
    assert sent.headers["Location"] == f"/admin/digests/{digest.id}"
    assert digest.status == "scheduled" and digest.send_at.replace(tzinfo=timezone.utc) == when
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0
    page = admin.get(f"/admin/digests/{digest.id}").text
    assert when.strftime("%d %b %Y, %H:%M UTC") in page and "Cancel the schedule" in page and "data-progress" not in page
    assert "to send " + when.strftime("%d %b %Y, %H:%M UTC") in admin.get("/admin/digests").text

    cancelled = admin.post(f"/admin/digests/{digest.id}/cancel", data={"csrf_token": token(admin)},
                           follow_redirects=True).text
    assert "Schedule cancelled: nothing was or will be sent" in cancelled
    db.session.expire_all()
    assert db.session.get(Digest, digest.id).status == "cancelled"
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_send_now_starts_a_scheduled_digest_once(admin):
    factories.subscribers(3)
    choice = posts()
    when = (datetime.now(timezone.utc) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    admin.post("/admin/digests", data={**choice, "send_at": when, "csrf_token": token(admin)})
    digest_id = db.session.scalar(select(Digest.id))
    assert "Started" in admin.post(f"/admin/digests/{digest_id}/start", data={"csrf_token": token(admin)},
                                   follow_redirects=True).text
    again = admin.post(f"/admin/digests/{digest_id}/start", data={"csrf_token": token(admin)}, follow_redirects=True)
    assert "only a scheduled digest can be started" in again.text
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 3


def test_fetch_the_feed_appears_only_with_a_feed(admin, app):
    page = admin.get("/admin/digests").text
    assert "Fetch the feed now" not in page and "set <code>FEED_URL</code>" in page
    assert "Fetch the feed now" not in admin.get("/admin/posts").text
    app.config["FEED_URL"] = "https://blog.example.com/feed/"
    assert "Fetch the feed now" in admin.get("/admin/digests").text
    assert "Fetch the feed now" in admin.get("/admin/posts").text


def test_a_finished_digest_shows_when_and_the_list_counts_opens_and_clicks(admin):
    factories.subscribers(3)
    choice = posts()
    admin.post("/admin/digests", data={**choice, "csrf_token": token(admin)})
    digest = db.session.scalar(select(Digest))
    rows = list(db.session.scalars(select(Delivery)))
    db.session.execute(Delivery.__table__.update().values(status="sent"))
    for n, row in enumerate(rows):
        db.session.add(Open(delivery_id=row.id, subscriber_id=row.subscriber_id, digest_id=digest.id))
        if n < 2:
            db.session.add(Click(delivery_id=row.id, subscriber_id=row.subscriber_id, digest_id=digest.id,
                                 post_id=choice["post_ids"][1]))
    db.session.commit()

    page = admin.get(f"/admin/digests/{digest.id}").text
    db.session.expire_all()
    finished = db.session.get(Digest, digest.id).finished_at.replace(tzinfo=timezone.utc)
    assert f"finished {finished.strftime('%d %b %Y, %H:%M UTC')}" in page
    # The click chart says which post each bar is and how many clicks it stands for.
    chart = page.split('<ol class="hbars clicks"', 1)[1].split("</ol>", 1)[0]
    assert re.search(r'hbar-label[^>]*>Newer answer</span><span class="hbar-value">2</span>', chart)
    assert re.search(r'hbar-label[^>]*>Older answer</span><span class="hbar-value">0</span>', chart)

    listing = admin.get("/admin/digests").text
    assert "<th class=\"num\"" in listing and ">Opened</th>" in listing and ">Clicks</th>" in listing
    assert '<td class="num" data-col="opens">3</td>' in listing and '<td class="num" data-col="clicks">2</td>' in listing

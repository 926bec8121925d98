"""The console's segments: defined with a live count, saved, and chosen on the compose page with their count."""
from __future__ import annotations

from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Delivery, Digest, LeadMagnet, Segment
from tests import factories
from tests.admin_helpers import fresh_g_per_request, token  # noqa: F401
from tests.test_segments import reader


def course() -> None:
    db.session.add(LeadMagnet(slug="course", title="A five-part course", file="x.pdf", filename="x.pdf"))
    db.session.commit()


def test_the_rules_are_counted_as_they_are_set_and_saved_as_a_segment(admin):
    course()
    reader("ann@example.com")
    reader("bob@example.com", magnet="course", form="snippet")
    page = admin.get("/admin/segments", query_string={"magnet": "course", "form": "embed"}).text
    assert 'data-field="count">1</strong>' in page and "took course, signed up by embed" in page
    assert 'name="magnet" value="course" checked' in page

    live = admin.get("/admin/segments/count", query_string={"magnet": ["course", "handbook"]})
    assert live.status_code == 200 and live.json["count"] == 2
    wrong = admin.get("/admin/segments/count", query_string={"engaged_within_days": "soon"})
    assert wrong.status_code == 400 and wrong.json["field"] == "engaged_within_days"
    assert "must be a whole number" in admin.get("/admin/segments?engaged_within_days=soon").text

    saved = admin.post("/admin/segments", data={"name": "Course", "magnet": "course", "csrf_token": token(admin)},
                       follow_redirects=True).text
    assert "Saved the segment “Course”: took course." in saved
    segment = db.session.scalar(select(Segment))
    assert segment.rules == {"magnets": ["course"]}
    again = admin.post("/admin/segments", data={"name": "Course", "csrf_token": token(admin)}, follow_redirects=True)
    assert "Nothing was saved: there is a segment called" in again.text
    admin.post("/admin/segments", data={"name": "No token"})
    assert db.session.scalar(select(Segment.id).where(Segment.name == "No token")) is None


def test_compose_sends_to_the_segment_chosen_with_its_count(admin):
    course()
    reader("ann@example.com")
    bob = reader("bob@example.com", magnet="course")
    segment = Segment(name="Course takers", rules={"magnets": ["course"]})
    db.session.add(segment)
    db.session.commit()
    post = factories.post(n=1)
    compose = admin.get("/admin/digests").text
    assert f'<option value="segment:{segment.id}">Segment: Course takers</option>' in compose
    assert '<option value="magnet:course">Took A five-part course</option>' in compose

    choice = {"post_ids": [post.id], "subject": "", "intro": "", "readers": f"segment:{segment.id}"}
    preview = admin.get("/admin/digests/preview", query_string=choice).text
    assert "goes to 1 confirmed subscriber (Course takers)" in preview
    assert f'name="readers" value="segment:{segment.id}"' in preview
    sent = admin.post("/admin/digests", data={**choice, "csrf_token": token(admin)})
    digest = db.session.scalar(select(Digest))
    assert sent.headers["Location"] == f"/admin/digests/{digest.id}"
    assert (digest.segment_id, digest.rules, digest.recipients) == (segment.id, {"magnets": ["course"]}, 1)
    assert db.session.scalars(select(Delivery.subscriber_id)).all() == [bob.id]

    everyone = admin.get("/admin/digests/preview", query_string={**choice, "readers": ""}).text
    assert "goes to 2 confirmed subscribers" in everyone  # the post is still new to ann
    gone = admin.get("/admin/digests/preview", query_string={**choice, "readers": "segment:999"},
                     follow_redirects=True).text
    assert "there is no segment" in gone

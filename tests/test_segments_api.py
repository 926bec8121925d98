"""/api/v1/segments, the subscriber list's rule filters and digests to a segment or a magnet, on both databases."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.models import Delivery, Digest, LeadMagnet
from tests import factories
from tests.test_segments import reader


@pytest.fixture
def api(either_app, monkeypatch):
    """/api/v1 with a token of every scope; mail owed is not announced (no broker here)."""
    from mailer.outbox import ledger

    monkeypatch.setattr(ledger, "wake", lambda: None)
    db.session.add(LeadMagnet(slug="course", title="A five-part course", file="x.pdf", filename="x.pdf"))
    token = create_token(db.session, "tests", ["read", "write", "send"])
    db.session.commit()
    client, headers = either_app.test_client(), {"Authorization": f"Bearer {token}"}

    class Api:
        def get(self, path):
            return client.get(f"/api/v1{path}", headers=headers)

        def post(self, path, body=None):
            return client.post(f"/api/v1{path}", json=body, headers=headers)

    return Api()


def test_a_segment_is_saved_listed_and_counted(api):
    reader("ann@example.com")
    reader("bob@example.com", magnet="course", form="snippet")
    reader("cy@example.com", magnet="course", form="api")
    made = api.post("/segments", {"name": "Course from the blog", "rules": {"magnets": ["course"], "forms": ["embed"]}})
    assert made.status_code == 201, made.json
    assert made.json["count"] == 1 and made.json["rules"] == {"magnets": ["course"], "forms": ["embed"]}
    one = api.get(f"/segments/{made.json['id']}")
    assert one.status_code == 200 and one.json["count"] == 1 and one.json["name"] == "Course from the blog"
    assert [s["name"] for s in api.get("/segments").json["segments"]] == ["Course from the blog"]
    assert api.get("/segments/999").status_code == 404
    assert api.get(f"/segments/{2**63}").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"rules": {}}, "name"), ({"name": "x" * 101}, "name"), ({"name": "A", "rules": []}, "rules"),
    ({"name": "A", "rules": {"magnets": ["nope"]}}, "rules.magnets"),
    ({"name": "A", "rules": {"engaged_within_days": "30"}}, "rules.engaged_within_days"),
    ({"name": "A", "rules": {"signed_up": {"from": "2026-02-30"}}}, "rules.signed_up"),
])
def test_a_segment_that_cannot_be_read_gets_422_naming_the_field(api, body, field):
    refused = api.post("/segments", body)
    assert refused.status_code == 422 and refused.json["field"] == field, refused.json


def test_the_subscriber_list_takes_the_rules_as_query_parameters(api):
    reader("ann@example.com")
    reader("bob@example.com", magnet="course", imported=True)
    reader("cy@example.com", magnet="course", status="pending", confirmed_consent=False)

    def listed(query: str) -> list[str]:
        answer = api.get(f"/subscribers?{query}")
        assert answer.status_code == 200, answer.json
        return [s["email"] for s in answer.json["subscribers"]]

    assert listed("magnet=course") == ["bob@example.com"]
    assert listed("magnet=course&magnet=handbook") == ["ann@example.com", "bob@example.com"]
    assert listed("form=embed&imported=false") == ["ann@example.com", "cy@example.com"]
    assert listed("status=pending&form=iframe") == ["cy@example.com"]
    assert listed("engaged_within_days=30&engaged=false&magnet=handbook") == ["ann@example.com"]
    for query, field in (("magnet=nope", "magnet"), ("imported=maybe", "imported"),
                         ("engaged_within_days=-1", "engaged_within_days"), ("signed_up_from=soon", "signed_up"),
                         ("preference=weekly", "preference")):
        refused = api.get(f"/subscribers?{query}")
        assert refused.status_code == 400 and refused.json["field"] == field, (query, refused.json)


def test_a_digest_goes_to_a_segment_or_to_the_readers_of_a_magnet(api):
    reader("ann@example.com")
    reader("bob@example.com", magnet="course")
    reader("cy@example.com", magnet="course", frequency="monthly")
    factories.post(n=1)
    segment = api.post("/segments", {"name": "Course", "rules": {"magnets": ["course"]}}).json
    dry = api.post("/digests", {"segment": segment["id"], "dry_run": True})
    assert dry.status_code == 200 and dry.json["recipients"] == 1 and dry.json["segment"] == segment["id"]

    sent = api.post("/digests", {"segment": segment["id"]})
    assert sent.status_code == 202 and sent.json["recipients"] == 1
    state = api.get(f"/digests/{sent.json['id']}").json
    assert state["segment"] == segment["id"] and state["rules"] == {"magnets": ["course"]}
    # The post is still new to the handbook's readers; for the course's, nothing is.
    assert api.post("/digests", {"magnet": "course"}).status_code == 409
    to_handbook = api.post("/digests", {"magnet": "handbook"})
    assert to_handbook.status_code == 202 and to_handbook.json["recipients"] == 1
    owed = db.session.scalars(select(Delivery.subscriber_id).where(Delivery.kind == "digest")).all()
    assert len(owed) == 2 and db.session.get(Digest, to_handbook.json["id"]).rules == {"magnets": ["handbook"]}


@pytest.mark.parametrize("body, status, field", [
    ({"segment": 999}, 422, "segment"), ({"segment": "1"}, 422, "segment"), ({"segment": True}, 422, "segment"),
    ({"magnet": "nope"}, 422, "magnet"), ({"magnet": ["course"]}, 422, "magnet"),
    ({"segment": 1, "magnet": "course"}, 422, "segment"), ({"audience": "weekly"}, 400, None),
])
def test_a_digest_to_no_such_audience_names_the_field_and_owes_nothing(api, body, status, field):
    factories.post(n=1)
    refused = api.post("/digests", body)
    assert refused.status_code == status and refused.json.get("field") == field, refused.json
    assert db.session.scalar(select(Digest.id)) is None


def test_a_segment_of_monthly_readers_sends_the_monthly_summary(api):
    reader("bob@example.com", magnet="course", frequency="monthly")
    factories.post(n=1)
    segment = api.post("/segments", {"name": "Monthly", "rules": {"preference": "monthly"}}).json
    refused = api.post("/digests", {"segment": segment["id"], "audience": "every"})
    assert refused.status_code == 422 and refused.json["field"] == "audience"
    sent = api.post("/digests", {"segment": segment["id"]})
    assert sent.status_code == 202 and sent.json["recipients"] == 1
    assert db.session.get(Digest, sent.json["id"]).audience == "monthly"

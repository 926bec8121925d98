"""/api/v1/subscribers (list, add, one by address) and /api/v1/stats."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.models import Consent, Delivery, Subscriber, utcnow
from mailer.outbox import ledger
from mailer.people.importing import import_subscribers
from tests import factories


@pytest.fixture
def auth(app) -> dict[str, str]:
    token = create_token(db.session, "crm")
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def add(email: str, status: str, name: str | None = None) -> Subscriber:
    sub = Subscriber(email=email, status=status, name=name)
    db.session.add(sub)
    db.session.commit()
    return sub


@pytest.mark.parametrize("method, path", [("get", "/api/v1/subscribers"), ("post", "/api/v1/subscribers"),
                                          ("get", "/api/v1/subscribers/ann@example.com"), ("get", "/api/v1/stats")])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer mlr_not-a-token"}])
def test_a_token_is_required(client, method, path, headers):
    response = getattr(client, method)(path, json={"email": "ann@example.com"}, headers=headers)
    assert response.status_code == 401 and "api-token create" in response.json["error"]
    assert count(Subscriber) == 0


# --- the list ------------------------------------------------------------------------------------------

def test_keyset_pages_cover_every_row_once(client, auth):
    factories.subscribers(25)
    seen, after, pages = [], None, 0
    while True:
        query = f"?limit=10&after={after}" if after else "?limit=10"
        body = client.get(f"/api/v1/subscribers{query}", headers=auth).json
        seen += [s["email"] for s in body["subscribers"]]
        pages, after = pages + 1, body["next"]
        if after is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 25
    record = client.get("/api/v1/subscribers?limit=1", headers=auth).json["subscribers"][0]
    assert set(record) == {"id", "email", "name", "status", "created_at", "confirmed_at", "unsubscribed_at",
                           "time_zone", "sunset_at", "status_reason"}
    assert record["created_at"].endswith("Z") and record["unsubscribed_at"] is None


def test_filters_by_status_and_email_prefix(client, auth):
    factories.subscribers(3, "confirmed", prefix="reader")
    factories.subscribers(2, "unsubscribed", prefix="gone")
    factories.subscribers(1, "confirmed", prefix="read_")

    def emails(query: str) -> list[str]:
        return [s["email"] for s in client.get(f"/api/v1/subscribers{query}", headers=auth).json["subscribers"]]

    assert emails("?status=unsubscribed") == ["gone0@example.com", "gone1@example.com"]
    assert emails("?q=READER") == ["reader0@example.com", "reader1@example.com", "reader2@example.com"]
    assert emails("?q=read_") == ["read_0@example.com"]  # `_` is a character here, not a LIKE wildcard
    assert emails("?q=reader&status=unsubscribed") == []


@pytest.mark.parametrize("query, field", [("?status=happy", "status"), ("?limit=0", "limit"), ("?limit=x", "limit"),
                                          ("?after=-1", "after"), ("?after=" + "9" * 30, "after")])
def test_bad_list_parameters_are_400(client, auth, query, field):
    response = client.get(f"/api/v1/subscribers{query}", headers=auth)
    assert response.status_code == 400 and response.json["field"] == field


def test_limit_is_capped_at_500(client, auth):
    factories.subscribers(501)
    body = client.get("/api/v1/subscribers?limit=1000", headers=auth).json
    assert len(body["subscribers"]) == 500 and body["next"] is not None


# --- adding --------------------------------------------------------------------------------------------

def test_add_confirmed_records_consent_given_elsewhere_and_sends_nothing(client, auth):
    response = client.post("/api/v1/subscribers", headers=auth,
                           json={"email": "Ann@Example.com", "name": "Ann", "confirmed": True})
    assert response.status_code == 201
    assert response.json["email"] == "ann@example.com" and response.json["status"] == "confirmed"
    consent = db.session.scalar(select(Consent))
    assert consent.form == "api" and consent.confirmed_at is not None and "'crm'" in consent.consent_text
    assert count(Delivery) == 0


def test_add_unconfirmed_is_the_normal_double_opt_in(client, auth, monkeypatch):
    woken = []
    monkeypatch.setattr(ledger, "wake", lambda: woken.append(True))
    response = client.post("/api/v1/subscribers", headers=auth, json={"email": "bob@example.com"})
    assert response.status_code == 201 and response.json["status"] == "pending"
    consent = db.session.scalar(select(Consent))
    assert consent.form == "api" and consent.magnet_id is not None
    [delivery] = db.session.scalars(select(Delivery)).all()
    assert delivery.kind == "confirmation" and delivery.payload == {"consent_id": consent.id} and woken


@pytest.mark.parametrize("status, confirmed, after", [
    ("pending", True, "confirmed"), ("confirmed", False, "confirmed"),
    ("unsubscribed", True, "unsubscribed"), ("unsubscribed", False, "unsubscribed"),
    ("bounced", True, "bounced"), ("complained", False, "complained"),
])
def test_an_existing_address_is_200_and_never_resubscribed(client, auth, status, confirmed, after):
    add("cy@example.com", status)
    response = client.post("/api/v1/subscribers", headers=auth,
                           json={"email": "CY@example.com", "name": "Cy", "confirmed": confirmed})
    assert response.status_code == 200 and response.json["status"] == after
    assert count(Subscriber) == 1 and count(Delivery) == 0
    assert count(Consent) == (1 if status == "pending" else 0)


@pytest.mark.parametrize("body, field", [
    ({}, "email"), ({"email": "nope"}, "email"), ({"email": 7}, "email"),
    ({"email": "ann@example.com", "name": "A\nB"}, "name"), ({"email": "ann@example.com", "name": 5}, "name"),
    ({"email": "ann@example.com", "confirmed": "yes"}, "confirmed"),
])
def test_bad_input_is_422_naming_the_field(client, auth, body, field):
    response = client.post("/api/v1/subscribers", headers=auth, json=body)
    assert response.status_code == 422 and response.json["field"] == field and response.json["error"]
    assert count(Subscriber) == 0


def test_a_body_that_is_not_an_object_is_400(client, auth):
    response = client.post("/api/v1/subscribers", headers=auth, json=["ann@example.com"])
    assert response.status_code == 400 and response.json["field"] == "body"


# --- one by address, stats -----------------------------------------------------------------------------

def test_one_subscriber_by_address_in_any_case(client, auth):
    add("dee@example.com", "unsubscribed", "Dee")
    body = client.get("/api/v1/subscribers/DEE@Example.COM", headers=auth).json
    assert (body["email"], body["name"], body["status"]) == ("dee@example.com", "Dee", "unsubscribed")
    missing = client.get("/api/v1/subscribers/nobody@example.com", headers=auth)
    assert missing.status_code == 404 and "nobody@example.com" in missing.json["error"]
    assert client.get("/api/v1/subscribers/not-an-address", headers=auth).status_code == 404


def test_stats(client, auth):
    factories.subscribers(3, "confirmed")
    factories.subscribers(1, "unsubscribed", prefix="gone")
    old = add("old@example.com", "confirmed")
    old.confirmed_at = utcnow() - timedelta(days=31)
    db.session.commit()
    client.post("/api/v1/subscribers", headers=auth, json={"email": "new@example.com"})
    import_subscribers(db.session, ["email\n", "imp1@example.com\n", "imp2@example.com\n"], True, "list.csv")
    body = client.get("/api/v1/stats", headers=auth).json
    assert body["subscribers"] == {
        "by_status": {"pending": 1, "confirmed": 6, "unsubscribed": 1, "bounced": 0, "complained": 0},
        "total": 8, "confirmations_last_30_days": 6,  # factories' rows count (their confirmed_at is now)
        "signups_last_30_days": 6, "imported": 2}  # the file's two people are not signups
    assert body["deliveries"] == {"by_status": {"queued": 1}, "by_kind": {"confirmation": 1}}


@pytest.mark.parametrize("path", ["/api/v1/subscribers", "/api/v1/posts", "/api/v1/digests"])
def test_a_json_body_nested_too_deeply_is_a_400(client, auth, path):
    # 20,000 deep: past the parser's recursion limit, within the API's 64 KB body limit.
    response = client.post(path, data="[" * 20_000 + "]" * 20_000, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["error"]

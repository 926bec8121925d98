"""Fuzzing: the public endpoints and the bounce webhooks with Hypothesis, /api/v1 with Schemathesis from its own
OpenAPI document.

The properties: no answer is a 5xx, and a 4xx changes no row count.
"""
from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)
from sqlalchemy import func, select

from cryptography.hazmat.primitives import serialization

from mailer import links
from mailer.api import create_token
from mailer.api.openapi import DOCUMENT
from mailer.extensions import db
from tests import factories
from tests.conftest import csrf_from
from tests.test_bounces import sample
from tests.test_webhooks import TOPIC, basic, fetched, post_sendgrid, post_sns, sendgrid_key, signer, sns_message  # noqa: F401

# Bounded: the whole file must stay well under a minute. No example database: CI starts from a clean tree.
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SIGNUP_FIELDS = ["email", "name", "magnet", "source", "next", "form", "website", "form_token", "captcha",
                 "cf-turnstile-response", "h-captcha-response"]


def row_counts() -> dict[str, int]:
    """Rows in every table, read on a fresh connection (the requests commit on their own)."""
    with db.engine.connect() as conn:
        return {t.name: conn.scalar(select(func.count()).select_from(t)) for t in db.metadata.sorted_tables}


def unchanged_unless_accepted(before: dict[str, int], status: int) -> None:
    assert status < 500, f"server error {status}"
    if 400 <= status < 500:
        assert row_counts() == before, f"a {status} changed the database"


text = st.text(max_size=300)
emails = st.one_of(st.emails(), text, st.just(""), st.just("ann@example.com"))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=8)
signup_forms = st.fixed_dictionaries({"email": emails}, optional={n: text for n in SIGNUP_FIELDS[1:]})


# --- the public site, with Hypothesis --------------------------------------------------------------------

@FUZZ
@given(body=st.one_of(signup_forms, st.dictionaries(st.sampled_from(SIGNUP_FIELDS) | text, text, max_size=6)))
def test_subscribe_form_posts(client, body):
    before = row_counts()
    response = client.post("/subscribe", data=body)
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(body=st.one_of(st.fixed_dictionaries({"email": emails}, optional={n: json_values for n in SIGNUP_FIELDS[1:]}),
                      json_values))
def test_subscribe_json_bodies(client, body):
    before = row_counts()
    response = client.post("/subscribe", json=body)
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(raw=st.binary(max_size=500), content_type=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain", ""]))
def test_subscribe_raw_bodies(client, raw, content_type):
    before = row_counts()
    response = client.post("/subscribe", data=raw, content_type=content_type)
    unchanged_unless_accepted(before, response.status_code)


link_tokens = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#%"), min_size=1, max_size=200)


@FUZZ
@given(token=link_tokens, action=st.sampled_from([("get", "/confirm/{}"), ("post", "/confirm/{}"), ("get", "/download/{}"),
                                                  ("post", "/download/{}/renew"), ("get", "/unsubscribe/{}"),
                                                  ("post", "/unsubscribe/{}"), ("get", "/preferences/{}"),
                                                  ("post", "/preferences/{}"), ("get", "/c/{}"), ("get", "/o/{}.gif")]))
def test_links_from_mail_with_any_token(client, token, action):
    method, path = action
    before = row_counts()
    response = getattr(client, method)(path.format(token))
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["magnet", "source", "email", "name", "form_token"]) | text, text, max_size=4))
def test_embed_with_any_query(client, query):
    before = row_counts()
    response = client.get("/embed", query_string=query)
    assert response.status_code in (200, 404)
    assert row_counts() == before


@pytest.fixture
def preferences_path(app) -> str:
    """The preferences page of one reader, who may unsubscribe during the run (then the page says so)."""
    reader = factories.subscriber(factories.subscribers(1)[0])
    return urlsplit(links.preferences_url(reader.id)).path


@FUZZ
@given(form=st.fixed_dictionaries({}, optional={
    "action": st.sampled_from(["frequency", "pause", "resume", "name", "download", "unsubscribe"]) | text,
    "frequency": st.sampled_from(["every", "weekly", "monthly"]) | text, "name": text}))
def test_preferences_with_a_good_link_and_any_form(client, preferences_path, form):
    form = {**form, "csrf_token": csrf_from(client.get(preferences_path).text)}
    before = row_counts()
    response = client.post(preferences_path, data=form)
    unchanged_unless_accepted(before, response.status_code)


# --- the bounce webhooks, with good credentials: an event we cannot read is a 4xx that changes nothing -------

WEBHOOK_USER, WEBHOOK_PASSWORD = "postmark", "fuzz-webhook-pass"
postmark_events = st.fixed_dictionaries(
    {"RecordType": st.sampled_from(["Bounce", "SpamComplaint"]) | text},
    optional={"ID": st.integers() | text, "Type": st.sampled_from(["HardBounce", "SoftBounce", "SpamComplaint"]) | text,
              "Email": emails, "MessageID": text, "BouncedAt": text, "Details": text})
sendgrid_events = st.fixed_dictionaries(
    {"event": st.sampled_from(["bounce", "dropped", "spamreport", "deferred"]) | text},
    optional={"email": emails, "sg_event_id": text, "type": st.sampled_from(["bounce", "blocked"]) | text,
              "status": text, "reason": text, "timestamp": st.integers() | text})
ses_messages = st.fixed_dictionaries(
    {"notificationType": st.sampled_from(["Bounce", "Complaint", "Delivery"]) | text},
    optional={"bounce": json_values | st.fixed_dictionaries({"bounceType": st.sampled_from(["Permanent", "Transient"])
                                                            | text, "bouncedRecipients": json_values}),
              "complaint": json_values, "mail": json_values})


@FUZZ
@given(body=st.one_of(postmark_events, json_values))
def test_postmark_events_of_any_shape(client, body):
    client.application.config.update(POSTMARK_WEBHOOK_USER=WEBHOOK_USER, POSTMARK_WEBHOOK_PASSWORD=WEBHOOK_PASSWORD)
    before = row_counts()
    response = client.post("/webhooks/postmark", json=body, headers=basic(WEBHOOK_USER, WEBHOOK_PASSWORD))
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(body=st.one_of(st.lists(sendgrid_events, max_size=4), json_values, st.binary(max_size=200)))
def test_signed_sendgrid_batches_of_any_shape(client, sendgrid_key, body):
    der = sendgrid_key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    client.application.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = base64.b64encode(der).decode()
    before = row_counts()
    response = post_sendgrid(client, sendgrid_key, body if isinstance(body, bytes) else json.dumps(body).encode())
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(message=st.one_of(ses_messages, json_values, text))
def test_signed_ses_notifications_of_any_shape(client, signer, fetched, message):
    client.application.config["SES_TOPIC_ARNS"] = [TOPIC]
    before = row_counts()
    response = post_sns(client, sns_message(signer, message if isinstance(message, str) else json.dumps(message)))
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=2000), st.builds(lambda head, tail: head + tail, st.sampled_from(
    [sample(name, "bounces+1-x@mailer.test") for name in ("postfix-hard-bounce.eml", "postfix-delayed.eml",
                                                          "yahoo-complaint.eml")]), st.binary(max_size=200))))
def test_dsn_messages_of_any_shape(client, raw):
    token = getattr(client.application, "_fuzz_token", None) or create_token(db.session, "mta")
    db.session.commit()
    client.application._fuzz_token = token
    before = row_counts()
    response = client.post("/webhooks/dsn", data=raw, headers={"Authorization": f"Bearer {token}",
                                                                "Content-Type": "message/rfc822"})
    unchanged_unless_accepted(before, response.status_code)


# --- /api/v1, with Schemathesis ----------------------------------------------------------------------------

@pytest.fixture
def bearer(app) -> dict[str, str]:
    factories.post()  # something for digests to be made of
    token = create_token(db.session, "fuzz")
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


# One test per operation, named from the static document. (Schemathesis's own pytest loader does not run on
# pytest 9 yet, so its strategies are driven by Hypothesis directly.)
OPERATIONS = [(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item]


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_operation(app, bearer, method, path):
    operation = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)[path][method]

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=operation.as_strategy())
    def holds(case):
        before = row_counts()
        response = case.call(headers=bearer)
        case.validate_response(response, checks=CHECKS)
        unchanged_unless_accepted(before, response.status_code)

    holds()


def test_the_description_is_public_and_covers_every_route(client):
    response = client.get("/api/v1/openapi.json")
    routes = {rule.rule.removeprefix("/api/v1") for rule in client.application.url_map.iter_rules()
              if rule.endpoint.startswith("api.")}
    documented = {p.replace("{", "<").replace("}", ">") for p in response.json["paths"]}

    assert response.status_code == 200 and response.json["openapi"].startswith("3.1")
    normalise = lambda r: r.replace("<int:", "<").replace("<path:", "<").replace("<any(pause, resume, cancel):", "<")  # noqa: E731
    assert {normalise(r) for r in routes} == documented
    assert client.get("/api/v1/stats").status_code == 401  # the operations still need a token

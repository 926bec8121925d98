"""Fuzzing: the public endpoints with Hypothesis, /api/v1 with Schemathesis from its own OpenAPI document.
(The bounce webhooks are fuzzed in test_webhooks.py, beside the stand-ins for the providers' signatures.)

The properties: no answer is a 5xx, a 4xx changes no row count, and what a 2xx stored reads back as it was sent.
Each example starts from the rows the fixtures made (`Slate`), not from what the examples before it left.
"""
from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from mailer import links
from mailer.api.openapi import DOCUMENT
from mailer.api_tokens import create_token
from mailer.extensions import db
from tests import factories
from tests.admin_helpers import csrf_from as console_csrf
from tests.conftest import csrf_from

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


class Slate:
    """Every row as the fixtures left them; `restore()` puts exactly those back before an example."""

    def __init__(self):
        with db.engine.connect() as conn:
            self.rows = {t: [dict(r._mapping) for r in conn.execute(select(t))] for t in db.metadata.sorted_tables}

    def restore(self) -> None:
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
            for table, rows in self.rows.items():
                if rows:
                    conn.execute(table.insert(), rows)


@pytest.fixture
def slate(app) -> Slate:
    return Slate()


def signups_read_back_as_sent(before: dict[str, int], status: int, body) -> None:
    """A 2xx that stored a subscriber stored the address and name sent, as the signup rules clean them."""
    from mailer.addresses import clean_name, normalise_email
    from mailer.models import Subscriber

    if not 200 <= status < 300 or row_counts()["subscriber"] == before["subscriber"]:
        return  # refused, or taken for a bot: nothing to read back
    with db.engine.connect() as conn:
        [(email, name)] = conn.execute(select(Subscriber.email, Subscriber.name)).all()
    assert email == normalise_email(body["email"])
    assert name == clean_name(body.get("name"))


# What has broken the parsers under us (urllib, psycopg, the UTF-8 codec): NUL, URLs urlsplit refuses, full-width
# @, very long values; lone surrogates only where they can be sent at all (JSON escapes them: "\\ud800").
BROKEN_URLS = ["http://[", "https://[blog.example.com", "http://[::1", "https://blog.example.com\uff20evil.example/",
               "https://evil.example\\@blog.example.com/", "https://blog.example.com:port/", "https://blog.example.com/"
               + "x" * 5000, "http://" + "a" * 300 + ".example/"]
HOSTILE = [*BROKEN_URLS, "\0", "ann\0@example.com", "\0" * 50, "x" * 3000, "\uff20", "ann\uff20example.com"]
SURROGATES = ["\ud800", "Ann \udfff", "\udc80@example.com", "https://blog.example.com/\ud83d"]
text = st.text(max_size=300)
hostile_text = st.sampled_from(HOSTILE) | st.builds(lambda a, h, b: a + h + b, text, st.sampled_from(HOSTILE), text)
any_text = text | hostile_text  # what a form, a query or a header can carry
json_text = any_text | st.sampled_from(SURROGATES) | st.builds(lambda a, s: a + s, text, st.sampled_from(SURROGATES))
emails = st.one_of(st.emails(), text, st.just(""), st.just("ann@example.com"), hostile_text)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | json_text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=8)
# A field's value where hostile input must come up often: as often as anything else JSON can hold.
json_fields = st.one_of(st.sampled_from(HOSTILE + SURROGATES), json_values)
signup_forms = st.fixed_dictionaries({"email": emails}, optional={n: any_text for n in SIGNUP_FIELDS[1:]})
# Signups most of which are taken, so that what is stored is read back often: a name is any printable text.
names = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=100)
good_signups = st.fixed_dictionaries({"email": st.emails() | st.just("Ann@Example.com"), "name": names})


# --- the public site, with Hypothesis --------------------------------------------------------------------

@FUZZ
@given(body=st.one_of(good_signups, signup_forms,
                      st.dictionaries(st.sampled_from(SIGNUP_FIELDS) | any_text, any_text, max_size=6)),
       referer=st.none() | st.sampled_from(BROKEN_URLS) | text.filter(lambda t: t.isprintable()))
def test_subscribe_form_posts(client, slate, body, referer):
    slate.restore()
    before = row_counts()
    response = client.post("/subscribe", data=body, headers={"Referer": referer} if referer else {})
    unchanged_unless_accepted(before, response.status_code)
    signups_read_back_as_sent(before, response.status_code, body)


@FUZZ
@given(body=st.one_of(good_signups,
                      st.fixed_dictionaries({"email": emails}, optional={n: json_fields for n in SIGNUP_FIELDS[1:]}),
                      json_values))
def test_subscribe_json_bodies(client, slate, body):
    slate.restore()
    before = row_counts()
    response = client.post("/subscribe", json=body)
    unchanged_unless_accepted(before, response.status_code)
    signups_read_back_as_sent(before, response.status_code, body)


@FUZZ
@given(raw=st.binary(max_size=500), content_type=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain", ""]))
def test_subscribe_raw_bodies(client, slate, raw, content_type):
    slate.restore()
    before = row_counts()
    response = client.post("/subscribe", data=raw, content_type=content_type)
    unchanged_unless_accepted(before, response.status_code)


link_tokens = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#%"), min_size=1, max_size=200)


@FUZZ
@given(token=link_tokens, action=st.sampled_from([("get", "/confirm/{}"), ("post", "/confirm/{}"), ("get", "/download/{}"),
                                                  ("post", "/download/{}/renew"), ("get", "/unsubscribe/{}"),
                                                  ("post", "/unsubscribe/{}"), ("get", "/preferences/{}"),
                                                  ("post", "/preferences/{}"), ("get", "/c/{}"),
                                                  ("get", "/o/{}.gif")]))
def test_links_from_mail_with_any_token(client, slate, token, action):
    method, path = action
    slate.restore()
    before = row_counts()
    response = getattr(client, method)(path.format(token))
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["magnet", "source", "email", "name", "form_token"]) | any_text,
                             st.sampled_from(HOSTILE) | any_text, max_size=4))
def test_embed_with_any_query(client, slate, query):
    slate.restore()
    before = row_counts()
    response = client.get("/embed", query_string=query)
    assert response.status_code in (200, 400, 404)
    assert response.status_code != 400 or "NUL" in response.text
    assert row_counts() == before


@FUZZ
@given(form=st.fixed_dictionaries({}, optional={"email": emails, "password": any_text, "next": any_text}),
       next_in_query=st.none() | any_text)
def test_console_login_with_any_form(client, slate, form, next_in_query):
    slate.restore()
    page = client.get("/admin/login")
    before = row_counts()
    query = {"next": next_in_query} if next_in_query is not None else {}
    response = client.post("/admin/login", query_string=query, data={**form, "csrf_token": console_csrf(page.text)})
    assert response.status_code < 500
    location = response.headers.get("Location", "")
    assert not location or location.startswith("/admin/"), location  # never off the console
    if response.status_code == 400:
        assert row_counts() == before


@pytest.fixture
def preferences_path(app) -> str:
    """The preferences page of one reader, confirmed again at the start of each example (`Slate`)."""
    reader = factories.subscriber(factories.subscribers(1)[0])
    return urlsplit(links.preferences_url(reader.id)).path


@pytest.fixture
def csrf_token(client, preferences_path) -> str:
    """The client's CSRF token, read while the page still has its form (it has none once the reader has gone)."""
    return csrf_from(client.get(preferences_path).text)


@pytest.fixture
def preferences_slate(csrf_token) -> Slate:
    """The rows with the reader in them (made after the CSRF token, which the page shows only to a subscriber)."""
    return Slate()


@FUZZ
@given(form=st.fixed_dictionaries({}, optional={
    "action": st.sampled_from(["frequency", "pause", "resume", "name", "download", "unsubscribe"]) | text,
    "frequency": st.sampled_from(["every", "weekly", "monthly"]) | any_text, "name": any_text}))
def test_preferences_with_a_good_link_and_any_form(client, preferences_path, preferences_slate, csrf_token, form):
    form = {**form, "csrf_token": csrf_token}
    preferences_slate.restore()
    before = row_counts()
    response = client.post(preferences_path, data=form)
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
    slate = Slate()  # with the token and the post the fixture made

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=operation.as_strategy())
    def holds(case):
        slate.restore()
        before = row_counts()
        response = case.call(headers=bearer)
        case.validate_response(response, checks=CHECKS)
        unchanged_unless_accepted(before, response.status_code)
        if 200 <= response.status_code < 300 and (method, path) in READ_BACK:
            READ_BACK[method, path](app.test_client(), bearer, case.body, response.json())

    holds()


@FUZZ
@given(body=st.one_of(good_signups, st.builds(lambda b, c: {**b, "confirmed": c}, good_signups, st.booleans())))
def test_api_subscribers_read_back_as_added(app, bearer, slate_with_bearer, body):
    slate_with_bearer.restore()
    client = app.test_client()
    response = client.post("/api/v1/subscribers", json=body, headers=bearer)
    if response.status_code != 422:  # an address email-validator refuses
        assert response.status_code == 201, response.json
        subscriber_reads_back(client, bearer, body, response.json)


@pytest.fixture
def slate_with_bearer(bearer) -> Slate:
    return Slate()


def _json_operations() -> list[tuple[str, list[str]]]:
    """Each operation taking a JSON body, with the fields its schema names."""
    schemas = DOCUMENT.get("components", {}).get("schemas", {})
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
                found.append((f"{method.upper()} {path}", sorted(schema.get("properties", {}))))
    return found


JSON_OPERATIONS = _json_operations()


@pytest.mark.parametrize("operation, fields", JSON_OPERATIONS, ids=[op for op, _ in JSON_OPERATIONS])
def test_api_json_fields_of_any_type_and_hostile_text(app, bearer, operation, fields):
    """Beyond the schema Schemathesis keeps to: every field of every JSON body gets any JSON type, NUL, lone
    surrogates and broken URLs."""
    method, path = operation.split(" ", 1)
    slate = Slate()
    client = app.test_client()

    @FUZZ
    @given(body=st.fixed_dictionaries({}, optional={f: json_fields for f in fields}))
    def holds(body):
        slate.restore()
        before = row_counts()
        raw = json.dumps(body)  # a lone surrogate goes out as its escape, as a client's JSON would send it
        response = client.open(f"/api/v1{path}", method=method, data=raw, content_type="application/json",
                               headers=bearer)
        unchanged_unless_accepted(before, response.status_code)

    holds()


QUERY_OPERATIONS = [(path, [p["name"] for p in op.get("parameters", []) if p["in"] == "query"])
                    for path, item in DOCUMENT["paths"].items() for method, op in item.items()
                    if method == "get" and any(p["in"] == "query" for p in op.get("parameters", []))]


@pytest.mark.parametrize("path, names", QUERY_OPERATIONS, ids=[p for p, _ in QUERY_OPERATIONS])
def test_api_queries_with_hostile_text(app, bearer, path, names):
    slate = Slate()
    client = app.test_client()

    @FUZZ
    @given(query=st.fixed_dictionaries({}, optional={n: any_text for n in names}))
    def holds(query):
        slate.restore()
        before = row_counts()
        response = client.get(f"/api/v1{path}", query_string=query, headers=bearer)
        unchanged_unless_accepted(before, response.status_code)

    holds()


@FUZZ
@given(email=any_text.filter(lambda t: "/" not in t and "?" not in t and "#" not in t and t.strip()))
def test_api_records_by_any_address(app, bearer, slate_with_bearer, email):
    slate_with_bearer.restore()
    client = app.test_client()
    before = row_counts()
    for method, suffix in (("GET", ""), ("GET", "/data"), ("DELETE", "")):
        response = client.open(f"/api/v1/subscribers/{quote(email, safe='@')}{suffix}", method=method, headers=bearer)
        assert response.status_code < 500
    assert row_counts() == before


def subscriber_reads_back(client, bearer, sent: dict, answer: dict) -> None:
    from mailer.addresses import clean_name, normalise_email

    email = normalise_email(sent["email"])
    stored = client.get(f"/api/v1/subscribers/{quote(email, safe='@')}", headers=bearer)
    assert stored.status_code == 200 and stored.json == answer
    assert stored.json["email"] == email and stored.json["name"] == clean_name(sent.get("name"))
    assert stored.json["status"] == ("confirmed" if sent.get("confirmed") else "pending")


def post_reads_back(client, bearer, sent: dict, answer: dict) -> None:
    from mailer.posts.store import clean_title

    listed = client.get("/api/v1/posts", headers=bearer).json["posts"]
    assert [p for p in listed if p["id"] == answer["id"]] == [answer]
    assert answer["title"] == clean_title(sent["title"]) and answer["url"] == sent["url"].strip()


READ_BACK = {("POST", "/subscribers"): subscriber_reads_back, ("POST", "/posts"): post_reads_back}


def test_the_description_is_public_and_covers_every_route(client):
    response = client.get("/api/v1/openapi.json")
    routes = {rule.rule.removeprefix("/api/v1") for rule in client.application.url_map.iter_rules()
              if rule.endpoint.startswith("api.")}
    documented = {p.replace("{", "<").replace("}", ">") for p in response.json["paths"]}

    assert response.status_code == 200 and response.json["openapi"].startswith("3.1")
    normalise = lambda r: r.replace("<int:", "<").replace("<path:", "<").replace("<any(pause, resume, cancel):", "<")  # noqa: E731
    assert {normalise(r) for r in routes} == documented
    assert client.get("/api/v1/stats").status_code == 401  # the operations still need a token

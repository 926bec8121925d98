"""API token scopes: each endpoint needs one (read, write, send, bounces), a token without it gets 403; tokens are
listed and revoked from the CLI and the console, and the tokens made before scopes existed keep every scope."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, text

from mailer.api.openapi import DOCUMENT
from mailer.api.scopes import PUBLIC, openapi_path, scope_for
from mailer.api_tokens import SCOPES, create_token
from mailer.bounces import verp
from mailer.extensions import db
from mailer.models import ApiToken, Subscriber
from mailer.outbox import ledger
from tests.admin_helpers import create_admin, csrf_from, fresh_g_per_request, log_in  # noqa: F401
from tests.conftest import fresh_database, make_app
from tests.test_bounces import add_subscriber, fresh, owe, sample

# Every operation of /api/v1 as (method, a concrete path, the scope it needs).
EXAMPLE = {"{email}": "reader@example.com", "{digest_id}": "1", "{action}": "pause", "{segment_id}": "1"}
OPERATIONS = [(method.upper(), path, scope_for(method.upper(), path))
              for path, item in DOCUMENT["paths"].items() for method in item if (method.upper(), path) not in PUBLIC]


def concrete(path: str) -> str:
    for name, value in EXAMPLE.items():
        path = path.replace(name, value)
    return f"/api/v1{path}"


def bearer(*scopes: str, name: str = "t") -> dict[str, str]:
    token = create_token(db.session, name, scopes)
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def call(client, method: str, path: str, headers: dict):
    body = {} if method == "POST" else None
    return client.open(concrete(path), method=method, json=body, headers=headers)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(ledger, "wake", lambda: None)


# --- the API ---------------------------------------------------------------------------------------------

def test_the_scopes_of_the_endpoint_classes():
    needs = {(m, p): s for m, p, s in OPERATIONS}
    assert {p for (m, p), s in needs.items() if m == "GET"} and all(s == "read" for (m, _), s in needs.items() if m == "GET")
    assert needs[("POST", "/subscribers")] == needs[("POST", "/posts")] == needs[("DELETE", "/subscribers/{email}")] == "write"
    assert needs[("POST", "/digests")] == needs[("POST", "/digests/{digest_id}/{action}")] == needs[("POST", "/feed/fetch")] == "send"
    assert "bounces" not in needs.values()  # only /webhooks/dsn takes it


def test_every_route_of_the_api_names_a_scope(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi":
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert scope_for(method, openapi_path(rule.rule)) in SCOPES, f"{method} {rule.rule} names no scope"


@pytest.mark.parametrize("method, path, scope", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_a_token_with_the_scope_gets_through_and_one_without_it_gets_403(client, method, path, scope):
    allowed = call(client, method, path, bearer(scope))
    assert allowed.status_code not in (401, 403), allowed.get_data(as_text=True)

    rows = db.session.scalar(select(func.count()).select_from(Subscriber))
    refused = call(client, method, path, bearer(*(s for s in SCOPES if s != scope)))
    assert refused.status_code == 403 and refused.json["scope"] == scope
    assert f"lacks the '{scope}' scope" in refused.json["error"]
    assert f"mailer api-token create NAME --scope {scope}" in refused.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == rows


def test_a_read_token_cannot_post_and_a_bounces_token_cannot_read(client):
    reader, bouncer = bearer("read"), bearer("bounces")
    refused = client.post("/api/v1/subscribers", json={"email": "new@example.com", "confirmed": True}, headers=reader)
    assert refused.status_code == 403 and "'write'" in refused.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert client.post("/api/v1/digests", json={}, headers=reader).status_code == 403
    assert client.get("/api/v1/subscribers", headers=reader).status_code == 200

    add_subscriber("reader@example.com")
    for path in ("/api/v1/subscribers", "/api/v1/subscribers/reader@example.com", "/api/v1/stats"):
        response = client.get(path, headers=bouncer)
        assert response.status_code == 403 and "reader@example.com" not in response.get_data(as_text=True)


def test_a_revoked_token_is_refused_as_unknown(client):
    headers = bearer("read", name="old")
    assert client.get("/api/v1/stats", headers=headers).status_code == 200
    db.session.scalar(select(ApiToken)).revoked_at = db.func.now()
    db.session.commit()
    response = client.get("/api/v1/stats", headers=headers)
    assert response.status_code == 401 and "not valid" in response.json["error"]


def test_the_description_names_each_operations_scope_and_its_403(client):
    document = client.get("/api/v1/openapi.json").json
    for method, path, scope in OPERATIONS:
        operation = document["paths"][path][method.lower()]
        assert operation["description"].startswith(f"Scope: {scope} ("), (method, path)
        assert "403" in operation["responses"]
    assert "403" not in document["paths"]["/openapi.json"]["get"]["responses"]
    assert all(f"`{s}`" in document["info"]["description"] for s in SCOPES)


# --- the DSN webhook ---------------------------------------------------------------------------------------

def test_the_dsn_webhook_needs_the_bounces_scope(client):
    sub = add_subscriber()
    dsn = sample("postfix-hard-bounce.eml", verp.envelope_sender(owe(sub, "welcome:1", "sent").id))
    raw = {"Content-Type": "message/rfc822"}

    refused = client.post("/webhooks/dsn", data=dsn, headers={**raw, **bearer("read", "write", "send")})
    assert refused.status_code == 403 and "'bounces'" in refused.json["error"]
    assert "--scope bounces" in refused.json["error"]
    assert fresh(sub).status == "confirmed"

    accepted = client.post("/webhooks/dsn", data=dsn, headers={**raw, **bearer("bounces")})
    assert accepted.status_code == 200 and fresh(sub).status == "bounced"


def test_a_revoked_token_reports_no_bounce(client, runner):
    sub = add_subscriber()
    headers = {"Content-Type": "message/rfc822", **bearer("bounces", name="postfix")}
    assert runner.invoke(args=["api-token", "revoke", "postfix"]).exit_code == 0
    dsn = sample("postfix-hard-bounce.eml", verp.envelope_sender(owe(sub, "welcome:1", "sent").id))
    assert client.post("/webhooks/dsn", data=dsn, headers=headers).status_code == 401
    assert fresh(sub).status == "confirmed"


# --- the command line --------------------------------------------------------------------------------------

def test_create_prints_only_the_token_and_says_its_scopes(runner, client):
    result = runner.invoke(args=["api-token", "create", "crm", "--scope", "read", "--scope", "write"])
    assert result.exit_code == 0
    assert re.fullmatch(r"mlr_\S+\n", result.stdout)  # TOKEN=$(mailer api-token create …) still works
    assert "Scopes: read, write." in result.stderr
    headers = {"Authorization": f"Bearer {result.stdout.strip()}"}
    assert client.get("/api/v1/stats", headers=headers).status_code == 200
    assert client.post("/api/v1/feed/fetch", headers=headers).status_code == 403


def test_create_without_a_scope_gives_every_scope_as_before(runner):
    result = runner.invoke(args=["api-token", "create", "deploy"])
    assert result.exit_code == 0 and "Scopes: read, write, send, bounces." in result.stderr
    assert db.session.scalar(select(ApiToken.scopes)) == "read write send bounces"
    assert "Without it, every scope" in runner.invoke(args=["api-token", "create", "--help"]).output


def test_create_refuses_an_unknown_scope(runner):
    result = runner.invoke(args=["api-token", "create", "crm", "--scope", "admin"])
    assert result.exit_code == 2 and "'admin' is not one of 'read', 'write', 'send', 'bounces'" in result.output
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_list_shows_scopes_use_and_revocations(runner, client):
    assert "No API token yet" in runner.invoke(args=["api-token", "list"]).stderr
    headers = bearer("bounces", name="postfix")
    bearer("read", name="dashboard")
    client.get("/api/v1/stats", headers=headers)  # refused, but used
    runner.invoke(args=["api-token", "revoke", "dashboard"])

    lines = runner.invoke(args=["api-token", "list"]).stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "SCOPES", "CREATED", "LAST", "USED", "REVOKED"]
    # Dates are "YYYY-MM-DD HH:MM", two words each; "-" is never.
    postfix, dashboard = (line.split() for line in lines[1:])
    assert postfix[:3] == ["1", "postfix", "bounces"] and postfix[5] != "-" and postfix[7:] == ["-"]  # used, live
    assert dashboard[:3] == ["2", "dashboard", "read"] and dashboard[5] == "-" and len(dashboard[6:]) == 2  # revoked


def test_revoke_by_name_or_id_and_what_it_says(runner, client):
    first, second = bearer("read", name="crm"), bearer("read", name="crm")
    bearer("read", name="7")

    ambiguous = runner.invoke(args=["api-token", "revoke", "crm"])
    assert ambiguous.exit_code == 1 and "2 tokens are called 'crm' (ids 1, 2)" in ambiguous.output
    unknown = runner.invoke(args=["api-token", "revoke", "nobody"])
    assert unknown.exit_code == 1 and "mailer api-token list" in unknown.output

    by_id = runner.invoke(args=["api-token", "revoke", "1"])
    assert by_id.exit_code == 0 and "Revoked token 1 ('crm')" in by_id.stdout
    assert client.get("/api/v1/stats", headers=first).status_code == 401
    assert client.get("/api/v1/stats", headers=second).status_code == 200
    assert "Revoked token 2" in runner.invoke(args=["api-token", "revoke", "crm"]).stdout  # the one still live
    assert "already revoked" in runner.invoke(args=["api-token", "revoke", "2"]).stdout
    assert "Revoked token 3 ('7')" in runner.invoke(args=["api-token", "revoke", "7"]).stdout  # no token 7: the name


# --- the console -------------------------------------------------------------------------------------------

@pytest.fixture
def admin(client):
    create_admin()
    log_in(client)
    return client


def test_the_console_lists_tokens_with_scopes_and_last_use(admin):
    bearer("bounces", name="postfix")
    page = admin.get("/admin/tokens")
    assert page.status_code == 200
    assert "postfix" in page.text and ">bounces<" in page.text and "Revoke" in page.text
    assert 'href="/admin/tokens"' in admin.get("/admin/").text  # in the menu


def test_the_console_creates_a_token_shown_once_with_the_scopes_ticked(admin):
    form = {"csrf_token": csrf_from(admin.get("/admin/tokens").data), "name": "dashboard", "scopes": ["read", "send"]}
    created = admin.post("/admin/tokens", data=form)
    assert created.status_code == 201
    token = re.search(r"(mlr_[\w-]+)", created.text).group(1)
    assert "shown only this once" in created.text and "Scopes: read, send" in created.text
    assert db.session.scalar(select(ApiToken.scopes)) == "read send"

    headers = {"Authorization": f"Bearer {token}"}
    assert admin.get("/api/v1/digests", headers=headers).status_code == 200
    assert admin.post("/api/v1/posts", json={}, headers=headers).status_code == 403
    assert token not in admin.get("/admin/tokens").text  # never again


@pytest.mark.parametrize("form, says", [({"name": "x"}, "Tick at least one scope."),
                                        ({"name": "", "scopes": ["read"]}, "This field is required."),
                                        ({"name": "x", "scopes": ["root"]}, "not a valid choice"),
                                        ({"name": "a\x07b", "scopes": ["read"]}, "control characters"),
                                        ({"name": "a\x00b", "scopes": ["read"]}, "NUL character")])
def test_the_console_refuses_a_token_without_scope_or_name(admin, form, says):
    response = admin.post("/admin/tokens", data={"csrf_token": csrf_from(admin.get("/admin/tokens").data), **form})
    assert response.status_code == 400 and says in response.text
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_the_console_revokes_a_token(admin):
    headers = bearer("read", name="crm")
    csrf = csrf_from(admin.get("/admin/tokens").data)
    response = admin.post("/admin/tokens/1/revoke", data={"csrf_token": csrf}, follow_redirects=True)
    assert response.status_code == 200 and "Revoked “crm”" in response.text and ">revoked<" in response.text
    assert admin.get("/api/v1/stats", headers=headers).status_code == 401
    assert admin.post("/admin/tokens/99/revoke", data={"csrf_token": csrf}).status_code == 404


def test_the_console_forms_need_the_csrf_token(admin):
    headers = bearer("read", name="crm")
    assert admin.post("/admin/tokens/1/revoke").status_code == 400
    assert admin.get("/api/v1/stats", headers=headers).status_code == 200
    assert admin.post("/admin/tokens", data={"name": "forged", "scopes": ["send"]}).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 1


def test_the_console_page_is_behind_the_login(client):
    assert client.get("/admin/tokens").status_code == 302
    form = {"csrf_token": csrf_from(client.get("/admin/login").data), "name": "x", "scopes": ["read"]}
    assert client.post("/admin/tokens", data=form).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


# --- the migration -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_the_upgrade_gives_the_tokens_made_before_every_scope(database, tmp_path):
    from flask_migrate import upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}" if database == "sqlite" else fresh_database("mailer_token_scopes")
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade(revision="0012")
        db.session.execute(text("INSERT INTO api_token (name, token_hash, created_at) VALUES "
                                "('mta', :h, '2026-11-01 09:00:00+00:00')"), {"h": "a" * 64})
        db.session.commit()
        upgrade()
        assert db.session.execute(text("SELECT name, scopes, revoked_at FROM api_token")).all() == [
            ("mta", "read write send bounces", None)]
        # The default was only for the rows already there: a new row must name its scopes.
        with pytest.raises(Exception, match="(?i)not null|NotNull"):
            db.session.execute(text("INSERT INTO api_token (name, token_hash, created_at) VALUES "
                                    "('new', :h, '2026-11-02 09:00:00+00:00')"), {"h": "b" * 64})
        db.session.rollback()

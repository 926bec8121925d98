"""GET /api/v1/openapi.json: the API described as OpenAPI 3.1, readable without a token."""
from __future__ import annotations

from flask import jsonify

from ..api_tokens import SCOPES
from . import bp
from .scopes import PUBLIC, scope_for

JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*codes: int) -> dict:
    said = {400: "Malformed request: the message says what to fix", 401: "No valid API token",
            404: "Not found", 409: "Conflict: the message says why", 422: "A field is invalid (`field` names it)",
            502: "The blog's feed could not be read"}
    # Every operation may get a 400 (a NUL in its address or query, web/nul_bytes) and a 401.
    return {str(code): _json(_ref("Error"), said[code]) for code in sorted({*codes, 400, 401})}


def _int_query(name: str, least: int, text: str) -> dict:
    return {"name": name, "in": "query", "description": text, "schema": {"type": "integer", "minimum": least}}


NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
EMAIL_PATH = {"name": "email", "in": "path", "required": True, "schema": {"type": "string"}}
DIGEST_PATH = {"name": "digest_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
STATUSES = ["pending", "confirmed", "unsubscribed", "bounced", "complained"]

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string"}, "field": {"type": "string"},
                             "scope": {"enum": list(SCOPES), "description": "the scope a 403 lacked"}}},
    "Subscriber": {"type": "object", "required": ["id", "email", "status"], "properties": {
        "id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": ["string", "null"]},
        "status": {"enum": STATUSES}, "created_at": NULLABLE_TIME, "confirmed_at": NULLABLE_TIME,
        "unsubscribed_at": NULLABLE_TIME}},
    "NewSubscriber": {"type": "object", "required": ["email"], "properties": {
        "email": {"type": "string"}, "name": {"type": ["string", "null"]},
        "confirmed": {"type": "boolean", "description": "true: consent was given elsewhere, send nothing; "
                                                        "false (default): ask by email (double opt-in)"}}},
    "Post": {"type": "object", "required": ["id", "title", "url"], "properties": {
        "id": {"type": "integer"}, "title": {"type": "string"}, "url": {"type": "string"},
        "summary": {"type": ["string", "null"]}, "published_at": NULLABLE_TIME, "source": {"enum": ["feed", "manual"]}}},
    "NewPost": {"type": "object", "required": ["title", "url"], "additionalProperties": False, "properties": {
        "title": {"type": "string"}, "url": {"type": "string", "format": "uri"},
        "summary": {"type": ["string", "null"], "description": "Markdown (HTML among it allowed), sanitised"}, "published_at": {"type": ["string", "null"], "format": "date-time"}}},
    "Digest": {"type": "object", "required": ["id", "subject", "status", "recipients", "sent", "failed", "pending"],
               "properties": {"id": {"type": "integer"}, "subject": {"type": "string"},
                              "status": {"enum": ["scheduled", "sending", "paused", "cancelled", "sent"]},
                              **{n: {"type": "integer"} for n in ("recipients", "sent", "failed", "skipped", "pending")},
                              "created_at": {"type": "string"}, "posts": {"type": "array"},
                              "send_at": {**NULLABLE_TIME, "description": "when a scheduled digest starts (UTC)"},
                              "finished_at": {**NULLABLE_TIME, "description": "when its last mail was sent, failed "
                                                                             "or skipped"},
                              "audience": {"enum": ["every", "monthly"]},
                              "clicks": {"type": "array", "description": "per post (GET /digests/{id} only)", "items": {
                                  "type": "object", "properties": {
                                      "url": {"type": "string"}, "title": {"type": "string"},
                                      "clicks": {"type": "integer"}, "unique_clickers": {"type": "integer"}}}},
                              "unique_clickers": {"type": "integer"}, "opens": {"type": "integer"},
                              "unique_openers": {"type": "integer"},
                              **{n: {"type": "integer", "description": "mails of it reported back so (GET /digests/"
                                                                        "{id} only)"}
                                 for n in ("hard_bounces", "complaints")},
                              **{n: {"type": ["number", "null"], "description": "a share of the mails sent, 0 to 1; "
                                                                                "null before any is sent (GET "
                                                                                "/digests/{id} only)"}
                                 for n in ("hard_bounce_rate", "complaint_rate")},
                              "paused_reason": {"type": ["string", "null"], "description":
                                                "why the reputation guard paused it, with the figures; null when "
                                                "it did not (GET /digests/{id} only)"}}},
    "NewDigest": {"type": "object", "properties": {
        "subject": {"type": "string"}, "intro": {"type": "string"},
        "post_ids": {"type": "array", "items": {"type": "integer"}},
        "audience": {"enum": ["every", "monthly"], "description": "monthly: the summary of the last month's posts for monthly readers"},
        "dry_run": {"type": "boolean", "description": "render the digest, send nothing"},
        "test_to": {"type": "string", "description": "send one test copy to this address, nothing else"},
        "send_at": {"type": "string", "format": "date-time",
                    "description": "ISO 8601 with an offset (2026-12-24T09:00:00+01:00): keep the digest, owing "
                                   "nothing, until then; beat starts it for the readers confirmed at that time. "
                                   "Cancel it before with POST /digests/{id}/cancel. A time without an offset, "
                                   "unreadable or not in the future gets 400 naming the field"}}},
}

PATHS = {
    "/openapi.json": {"get": {"summary": "This description", "security": [],
                              "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")}}},
    "/subscribers": {
        "get": {"summary": "Subscribers, oldest first, a page at a time", "parameters": [
            {"name": "status", "in": "query", "schema": {"enum": STATUSES}},
            {"name": "q", "in": "query", "description": "email prefix", "schema": {"type": "string"}},
            _int_query("limit", 1, "page size (at most 500)"), _int_query("after", 0, "`next` of the previous page")],
            "responses": {"200": _json({"type": "object", "required": ["subscribers", "next"], "properties": {
                "subscribers": {"type": "array", "items": _ref("Subscriber")}, "next": {"type": ["integer", "null"]}}},
                "A page"), **_errors(400)}},
        "post": {"summary": "Add a subscriber (confirmed, or asked to confirm by email)",
                 "requestBody": {"required": True, "content": {JSON: {"schema": _ref("NewSubscriber")}}},
                 "responses": {"200": _json(_ref("Subscriber"), "Already known"),
                               "201": _json(_ref("Subscriber"), "Added"), **_errors(400, 409, 422)}}},
    "/subscribers/{email}": {
        "get": {"summary": "One subscriber by address", "parameters": [EMAIL_PATH],
                "responses": {"200": _json(_ref("Subscriber"), "The subscriber"), **_errors(404)}},
        "delete": {"summary": "Erase a subscriber's personal data (a hash stays, so imports skip them)",
                   "parameters": [EMAIL_PATH], "responses": {
                       "200": _json({"type": "object", "properties": {"erased": {"const": True}}}, "Erased"),
                       **_errors(404)}}},
    "/subscribers/{email}/data": {"get": {"summary": "Everything stored about one subscriber", "parameters": [EMAIL_PATH],
                                          "responses": {"200": _json({"type": "object"}, "The data"), **_errors(404)}}},
    "/stats": {"get": {"summary": "Subscribers by status, signups (imports apart) and confirmations of the last 30 "
                                  "days (UTC, today included), deliveries by status and kind: exact at every request",
                       "responses": {"200": _json({"type": "object", "required": ["subscribers", "deliveries"]},
                                                  "Counts")}}},
    "/posts": {
        "get": {"summary": "Posts, newest first", "parameters": [
            _int_query("limit", 1, "page size (at most 200)"), _int_query("before", 1, "`next` of the previous page")],
            "responses": {"200": _json({"type": "object", "required": ["posts", "next"], "properties": {
                "posts": {"type": "array", "items": _ref("Post")}, "next": {"type": ["integer", "null"]}}}, "A page"),
                **_errors(400)}},
        "post": {"summary": "Add a post by hand (or update the one with this url)",
                 "requestBody": {"required": True, "content": {JSON: {"schema": _ref("NewPost")}}},
                 "responses": {"201": _json(_ref("Post"), "Stored"), **_errors(400, 422)}}},
    "/feed/fetch": {"post": {"summary": "Read FEED_URL now", "responses": {
        "200": _json({"type": "object", "properties": {n: {"type": "integer"} for n in ("new", "updated", "unchanged")}},
                     "What the fetch found"), **_errors(409, 502)}}},
    "/digests": {
        "get": {"summary": "The 50 latest digests", "responses": {"200": _json({"type": "object", "properties": {
            "digests": {"type": "array", "items": _ref("Digest")}}}, "Digests")}},
        "post": {"summary": "Send a digest of the posts not yet sent, or schedule it (send_at), or a dry run, "
                            "or one test copy",
                 "requestBody": {"content": {JSON: {"schema": _ref("NewDigest")}}},
                 "responses": {"200": _json({"type": "object"}, "Dry run: the rendered digest"),
                               "202": _json({"type": "object"}, "Sending or scheduled (the digest's progress), or a test "
                                                                "copy owed"),
                               **_errors(400, 409, 422)}}},
    "/digests/{digest_id}": {"get": {"summary": "A digest's status and counts", "parameters": [DIGEST_PATH],
                                     "responses": {"200": _json(_ref("Digest"), "Progress"), **_errors(404)}}},
    "/digests/{digest_id}/{action}": {"post": {
        "summary": "Pause, resume or cancel a digest",
        "parameters": [DIGEST_PATH, {"name": "action", "in": "path", "required": True,
                                     "schema": {"enum": ["pause", "resume", "cancel"]}}],
        "responses": {"200": _json(_ref("Digest"), "Progress"), **_errors(404, 409)}}},
    "/digests/preview": {"get": {
        "summary": "The next digest as a subscriber (or anyone) would see it",
        "parameters": [{"name": "email", "in": "query", "schema": {"type": "string"}},
                       {"name": "intro", "in": "query", "schema": {"type": "string"}},
                       {"name": "format", "in": "query", "schema": {"enum": ["html", "text"]}}],
        "responses": {"200": {"description": "The digest", "content": {"text/html": {"schema": {"type": "string"}},
                                                                       "text/plain": {"schema": {"type": "string"}}}},
                      **_errors(404, 409)}}},
}



def _scoped(paths: dict) -> dict:
    """Each operation says the scope its token needs, and the 403 a token without it gets."""
    for path, item in paths.items():
        for method, operation in item.items():
            if (method.upper(), path) in PUBLIC:
                continue
            scope = scope_for(method.upper(), path)
            operation["description"] = f"Scope: {scope} ({SCOPES[scope]})."
            operation["responses"]["403"] = _json(_ref("Error"), f"The token lacks the {scope!r} scope")
    return paths


SCOPE_HELP = "; ".join(f"`{name}`: {text}" for name, text in SCOPES.items())

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "mailer API", "version": "1",
             "description": "Subscribers, posts and digests. Create a token with `mailer api-token create NAME "
                            "[--scope SCOPE …]` or on the console's API tokens page. Each operation names the "
                            f"scope it needs ({SCOPE_HELP}); a token without it gets 403."},
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "paths": _scoped(PATHS),
    "components": {"schemas": SCHEMAS,
                   "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                  "description": "Authorization: Bearer <token>"}}},
}


@bp.get("/openapi.json")
def openapi():
    return jsonify(DOCUMENT)

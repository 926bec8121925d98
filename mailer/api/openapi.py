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
# Clicks and opens of people and of machines (link scanners, image proxies), told apart by posts/scanners.
_MACHINE = ("link scanners' and image proxies' (a HEAD request, a scanner's user agent, seconds after delivery, "
            "several links at once, or the mail's hidden link)")
PEOPLE_AND_MACHINES = {
    "per post": {"human_clicks": {"type": "integer", "description": "people's clicks"},
                 "machine_clicks": {"type": "integer", "description": f"clicks that were {_MACHINE}"}},
    "digest": {"human_clicks": {"type": "integer", "description": "people's clicks (GET /digests/{id} only)"},
               "machine_clicks": {"type": "integer", "description": f"clicks that were {_MACHINE}"},
               "human_clickers": {"type": "integer", "description": "readers with a click of their own"},
               "human_opens": {"type": "integer", "description": "people's opens"},
               "machine_opens": {"type": "integer", "description": f"opens that were {_MACHINE}"}},
}
EMAIL_PATH = {"name": "email", "in": "path", "required": True, "schema": {"type": "string"}}
DIGEST_PATH = {"name": "digest_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
STATUSES = ["pending", "confirmed", "unsubscribed", "bounced", "complained"]
SEGMENT_PATH = {"name": "segment_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}

DAY_OR_TIME = {"type": "string", "description": "an ISO 8601 date (2026-01-31; as `to`, the whole day) or date and "
                                             "time with its offset"}
RANGE = {"type": "object", "additionalProperties": False, "properties": {"from": DAY_OR_TIME, "to": DAY_OR_TIME}}
STRINGS = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
SEGMENT_SCHEMAS = {
    "Rules": {"type": "object", "additionalProperties": False, "description": "Every rule optional, all of them must "
              "hold; readers are always confirmed ones.", "properties": {
        "magnets": {**STRINGS, "description": "took one of these lead magnets (slugs): confirmed a signup for it, or "
                                              "asked for it while confirmed"},
        "forms": {**STRINGS, "description": "signed up from one of these forms: snippet (the HTML form), iframe "
                                            "(/embed), script (embed.js), api, import, resubscribe; embed means any "
                                            "of the first three"},
        "pages": {**STRINGS, "description": "signed up on one of these pages (the page's address, exactly)"},
        "signed_up": RANGE, "confirmed": RANGE, "imported": {"type": "boolean"},
        "engaged_within_days": {"type": "integer", "minimum": 1, "maximum": 36500,
                                "description": "a person's click or open (not a link scanner's or an image "
                                               "proxy's) in the last N days"},
        "engaged": {"type": "boolean", "description": "false: no such click or open (in the last N days if given)"},
        "preference": {"enum": ["every", "monthly"], "description": "the digests they asked for"}}},
    "Segment": {"type": "object", "required": ["id", "name", "rules"], "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "rules": _ref("Rules"),
        "description": {"type": "string", "description": "the rules in words"}, "created_at": {"type": "string"},
        "count": {"type": "integer", "description": "confirmed readers it chooses now (not in the list)"}}},
    "NewSegment": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100}, "rules": _ref("Rules")}},
}
SEGMENT_PATHS = {
    "/segments": {
        "get": {"summary": "The saved segments, by name", "responses": {"200": _json({"type": "object", "properties": {
            "segments": {"type": "array", "items": _ref("Segment")}}}, "Segments")}},
        "post": {"summary": "Save a segment (its rules checked) and count it",
                 "requestBody": {"required": True, "content": {JSON: {"schema": _ref("NewSegment")}}},
                 "responses": {"201": _json(_ref("Segment"), "Saved, with its count"), **_errors(400, 422)}}},
    "/segments/{segment_id}": {"get": {"summary": "One segment with its count of readers now",
                                       "parameters": [SEGMENT_PATH],
                                       "responses": {"200": _json(_ref("Segment"), "The segment"), **_errors(404)}}},
}


def _query(name: str, schema: dict, text: str) -> dict:
    return {"name": name, "in": "query", "description": text, "schema": schema}


RULE_PARAMETERS = [
    _query("magnet", {"type": "string"}, "took this lead magnet (repeat for any of several); a segment's rules, "
                                         "as in Rules"),
    _query("form", {"type": "string"}, "signed up from this form (snippet, iframe, script, embed, api, import, "
                                       "resubscribe; repeat for any of several)"),
    _query("page", {"type": "string"}, "signed up on this page (repeat for any of several)"),
    *(_query(f"{key}_{end}", {"type": "string"}, f"{key.replace('_', ' ')} {end} this date")
      for key in ("signed_up", "confirmed") for end in ("from", "to")),
    _query("imported", {"enum": ["true", "false"]}, "brought in by an import, or not"),
    _query("engaged_within_days", {"type": "integer", "minimum": 1}, "a person's click or open in the last N days"),
    _query("engaged", {"enum": ["true", "false"]}, "false: none (in the last N days if given)"),
    _query("preference", {"enum": ["every", "monthly"]}, "the digests they asked for"),
]

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string"}, "field": {"type": "string"},
                             "scope": {"enum": list(SCOPES), "description": "the scope a 403 lacked"}}},
    "Subscriber": {"type": "object", "required": ["id", "email", "status"], "properties": {
        "id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": ["string", "null"]},
        "status": {"enum": STATUSES}, "created_at": NULLABLE_TIME, "confirmed_at": NULLABLE_TIME,
        "unsubscribed_at": NULLABLE_TIME,
        "time_zone": {"type": ["string", "null"], "description": "the IANA zone their browser told at signup "
                                                                 "(Europe/Berlin); null: unknown, the author's"},
        "sunset_at": {**NULLABLE_TIME, "description": "when digests stopped under the sunset rule (no answer to "
                                                      "the question whether they still want them)"},
        "status_reason": {"type": ["string", "null"], "description": "why a confirmed reader gets no digests, "
                                                                     "when the sunset rule stopped them"}}},
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
                              "segment": {"type": ["integer", "null"], "description": "the segment it went to "
                                                                                      "(GET /digests/{id} only)"},
                              "rules": {"type": ["object", "null"], "description": "the rules it went to, as they "
                                                                                  "were when it was made; null: "
                                                                                  "everyone (GET /digests/{id} only)"},
                              "clicks": {"type": "array", "description": "per post (GET /digests/{id} only)", "items": {
                                  "type": "object", "properties": {
                                      "url": {"type": "string"}, "title": {"type": "string"},
                                      "clicks": {"type": "integer"}, "unique_clickers": {"type": "integer"},
                                      **PEOPLE_AND_MACHINES["per post"]}}},
                              "unique_clickers": {"type": "integer"}, "opens": {"type": "integer"},
                              "unique_openers": {"type": "integer"}, **PEOPLE_AND_MACHINES["digest"],
                              **{n: {"type": "integer", "description": "mails of it reported back so (GET /digests/"
                                                                        "{id} only)"}
                                 for n in ("hard_bounces", "complaints")},
                              **{n: {"type": ["number", "null"], "description": "a share of the mails sent, 0 to 1; "
                                                                                "null before any is sent (GET "
                                                                                "/digests/{id} only)"}
                                 for n in ("hard_bounce_rate", "complaint_rate")},
                              "paused_reason": {"type": ["string", "null"], "description":
                                                "why the reputation guard paused it, with the figures; null when "
                                                "it did not (GET /digests/{id} only)"},
                              "subject_test": {"oneOf": [{"type": "null"}, _ref("SubjectTest")],
                                               "description": "its subject test (GET /digests/{id} only)"},
                              "resend": {"oneOf": [{"type": "null"}, _ref("ResendSummary")],
                                         "description": "its resend, if it has one"},
                              "follows": {"type": "integer", "description": "a resend: the digest it follows up"},
                              "unless": {"enum": ["clicked", "opened"],
                                         "description": "a resend: what made a reader of the digest engaged"},
                              "local_time": {"type": ["string", "null"], "description": "HH:MM: each reader's "
                                             "mail falls due at that time on their clock; null: all at once"},
                              "waiting": {"type": "integer", "description": "mails waiting for their reader's "
                                          "local time (GET /digests/{id} only)"},
                              "waiting_by_hour": {"type": "array", "description": "those mails by the hour "
                                                  "(UTC) they fall due (GET /digests/{id} only)", "items": {
                                  "type": "object", "properties": {"hour": {"type": "string", "format": "date-time"},
                                                                   "mails": {"type": "integer"}}}}}},
    "SubjectTest": {"type": "object", "required": ["subjects", "state", "winner", "variants"], "properties": {
        "subjects": {"type": "array", "items": {"type": "string"}}, "test_share": {"type": "number"},
        "decide_at": NULLABLE_TIME, "state": {"enum": ["testing", "decided"]},
        "winner": {"type": ["integer", "null"], "description": "the index of the winning subject"},
        "winning_subject": {"type": ["string", "null"]},
        "variants": {"type": "array", "items": {"type": "object", "properties": {
            "subject": {"type": "string"},
            **{n: {"type": "integer"} for n in ("recipients", "sent", "human_clickers", "human_openers")}}}}}},
    "ResendSummary": {"type": "object", "properties": {
        "id": {"type": "integer"}, "subject": {"type": "string"},
        "status": {"enum": ["scheduled", "sending", "paused", "cancelled"]}, "unless": {"enum": ["clicked", "opened"]},
        "send_at": NULLABLE_TIME, "recipients": {"type": "integer"}}},
    "Resend": {"type": "object", "required": ["subject"], "properties": {
        "subject": {"type": "string", "description": "the new subject (one line, at most 200 characters)"},
        "after_hours": {"type": "number", "minimum": 0, "maximum": 720,
                        "description": "when, from now (default 0: now); who has not engaged is decided then"},
        "unless": {"enum": ["clicked", "opened"], "description": "skip readers with a human click (default), or "
                                                                  "with a human open or click (OPEN_TRACKING on)"}}},
    **SEGMENT_SCHEMAS,
    "NewDigest": {"type": "object", "properties": {
        "subject": {"type": "string"}, "intro": {"type": "string"},
        "post_ids": {"type": "array", "items": {"type": "integer"}},
        "audience": {"enum": ["every", "monthly"], "description": "monthly: the summary of the last month's posts for "
                     "monthly readers; left out: the segment's preference, else every"},
        "segment": {"type": "integer", "description": "send to this segment's readers only (GET /segments)"},
        "magnet": {"type": "string", "description": "send to the readers who took this lead magnet (its slug) only"},
        "dry_run": {"type": "boolean", "description": "render the digest, send nothing"},
        "test_to": {"type": "string", "description": "send one test copy to this address, nothing else"},
        "send_at": {"type": "string", "format": "date-time",
                    "description": "ISO 8601 with an offset (2026-12-24T09:00:00+01:00): keep the digest, owing "
                                   "nothing, until then; beat starts it for the readers confirmed at that time. "
                                   "Cancel it before with POST /digests/{id}/cancel. A time without an offset, "
                                   "unreadable or not in the future gets 400 naming the field"},
        "subjects": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4,
                     "description": "a subject test, instead of subject: each subject goes to an equal part of "
                                    "test_share of the readers; after decide_after_hours the one with the most "
                                    "human clickers (ties: the first) goes to the rest"},
        "test_share": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                       "description": "the fraction of the readers in the test (default 0.2)"},
        "decide_after_hours": {"type": "number", "minimum": 0, "maximum": 720, "description": "default 4"},
        "local_time": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
                       "description": "HH:MM on a 24-hour clock: each reader's mail falls due at their first such "
                                      "time from the start (now, or send_at) in their time zone (readers without "
                                      "one: AUTHOR_TIME_ZONE's); a time the clocks skip is read with the offset "
                                      "before the jump, one that comes twice is the first. Anything else: 400"}}},
}

PATHS = {
    "/openapi.json": {"get": {"summary": "This description", "security": [],
                              "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")}}},
    "/subscribers": {
        "get": {"summary": "Subscribers, oldest first, a page at a time", "parameters": [
            {"name": "status", "in": "query", "schema": {"enum": STATUSES}},
            {"name": "q", "in": "query", "description": "email prefix", "schema": {"type": "string"}},
            _int_query("limit", 1, "page size (at most 500)"), _int_query("after", 0, "`next` of the previous page"),
            *RULE_PARAMETERS],
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
    **SEGMENT_PATHS,
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
    "/digests/{digest_id}/resend": {"post": {
        "summary": "Resend the digest under a new subject to its readers with no human click (or open), now or "
                   "later; at most once per digest (409 after)",
        "parameters": [DIGEST_PATH], "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Resend")}}},
        "responses": {"202": _json(_ref("Digest"), "The resend: sending, or scheduled for after_hours"),
                      **_errors(404, 409, 422)}}},
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

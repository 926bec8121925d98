"""/api/v1: JSON over bearer tokens. Each resource is a module that adds its routes to `bp`."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from ..api_tokens import find_token, missing_scope, presented_token
from ..extensions import csrf, db
from .scopes import openapi_path, scope_for

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer tokens, not cookies: nothing for a forged form to ride on


@bp.before_request
def require_token():
    if request.endpoint == "api.openapi":
        return None  # the description is public; every operation it describes still needs a token
    token = presented_token(request.headers.get("Authorization", ""))
    if token is None:
        return _unauthorized("Send an API token: 'Authorization: Bearer <token>' (create one with `mailer api-token create NAME`).")
    found = find_token(db.session, token)
    if found is None:
        return _unauthorized("This API token is not valid (revoked or mistyped). Create a new one with `mailer api-token create NAME`.")
    db.session.commit()
    g.api_token = found
    scope = scope_for(request.method, openapi_path(request.url_rule.rule))
    if scope is None:
        return error("No API token may use this operation yet: it names no scope.", 403)
    refused = missing_scope(found, scope)
    if refused:
        return error(refused, 403, scope=scope)


def _unauthorized(message: str):
    response = jsonify(error=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="mailer"'
    return response


def error(message: str, status: int = 400, **extra):
    return jsonify(error=message, **extra), status


def read_json_object() -> dict:
    """The request body as a JSON object, or a 400 naming what is wrong (its `field`: the body, or the one field
    json_input refused), answered by web/errors like any HTTP error."""
    from werkzeug.exceptions import BadRequest

    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        refused = BadRequest('The body must be a JSON object (Content-Type: application/json).')
        refused.field = "body"
        raise refused
    return data


from . import routes  # noqa: E402,F401  (registers the resource modules' routes on bp)

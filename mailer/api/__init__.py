"""/api/v1: JSON over bearer tokens. Each resource is a module that adds its routes to `bp`."""
from __future__ import annotations

import hashlib
import secrets

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from ..extensions import csrf, db
from ..models import ApiToken, utcnow

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer tokens, not cookies: nothing for a forged form to ride on
TOKEN_PREFIX = "mlr_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session, name: str) -> str:
    """Store a new token's hash and return the token itself, shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token)))
    return token


@bp.before_request
def require_token():
    if request.endpoint == "api.openapi":
        return None  # the description is public; every operation it describes still needs a token
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("Send an API token: 'Authorization: Bearer <token>' (create one with `mailer api-token create NAME`).")
    # Looked up by its hash: equal hashes is the comparison, and the database never holds the token.
    found = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip())))
    if found is None:
        return _unauthorized("This API token is not valid (revoked or mistyped). Create a new one with `mailer api-token create NAME`.")
    found.last_used_at = utcnow()
    db.session.commit()
    g.api_token = found


def _unauthorized(message: str):
    response = jsonify(error=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="mailer"'
    return response


def error(message: str, status: int = 400, **extra):
    return jsonify(error=message, **extra), status


def read_json_object() -> dict:
    """The request body as a JSON object, or a 400 naming what is wrong."""
    from werkzeug.exceptions import BadRequest

    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest('The body must be a JSON object (Content-Type: application/json).')
    return data


from . import routes  # noqa: E402,F401  (registers the resource modules' routes on bp)

"""Bearer tokens for the API and the DSN webhook: stored as a hash, shown once, found by the Authorization header."""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ApiToken, utcnow

TOKEN_PREFIX = "mlr_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str) -> str:
    """Store a new token's hash and return the token itself, shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token)))
    return token


def presented_token(authorization: str) -> str | None:
    """The token an `Authorization: Bearer …` header carries, or None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def find_token(session: Session, token: str | None) -> ApiToken | None:
    """The stored token, marked as used now; None when there is none or it is unknown (revoked, mistyped)."""
    if token is None:
        return None
    # Looked up by its hash: equal hashes is the comparison, and the database never holds the token.
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if found is not None:
        found.last_used_at = utcnow()
    return found

"""Bearer tokens for the API and the DSN webhook: stored as a hash, shown once, found by the Authorization header.

Each token carries scopes; an endpoint names the one it needs, and a token without it gets 403.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ApiToken, utcnow

TOKEN_PREFIX = "mlr_"
SCOPES = {
    "read": "read subscribers, stats, posts and digests (every GET)",
    "write": "add and erase subscribers, add posts and segments",
    "send": "send, pause, resume and cancel digests; fetch the feed",
    "bounces": "report bounces to /webhooks/dsn, nothing else",
}


class UnknownScope(ValueError):
    """A scope that is not one of SCOPES, or no scope at all."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def checked_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes asked for, known and in SCOPES' order; UnknownScope names what is wrong."""
    asked = set(scopes)
    unknown = sorted(asked - set(SCOPES))
    if unknown:
        raise UnknownScope(f"There is no scope {unknown[0]!r}: choose from {', '.join(SCOPES)}.")
    if not asked:
        raise UnknownScope(f"A token needs at least one scope: {', '.join(SCOPES)}.")
    return [s for s in SCOPES if s in asked]


def create_token(session: Session, name: str, scopes: Iterable[str] = SCOPES) -> str:
    """Store a new token's hash with its scopes (all of them unless told) and return the token, shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token), scopes=" ".join(checked_scopes(scopes))))
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
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token),
                                                  ApiToken.revoked_at.is_(None)))
    if found is not None:
        found.last_used_at = utcnow()
    return found


def missing_scope(token: ApiToken, scope: str) -> str | None:
    """Why this token may not do what needs `scope` (a message saying how to get a token that may), or None."""
    if scope in token.scope_list:
        return None
    return (f"This API token ({token.name!r}) lacks the {scope!r} scope needed here; it has: "
            f"{', '.join(token.scope_list)}. Create a token with it: `mailer api-token create NAME --scope {scope}` "
            f"or the console's API tokens page.")


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, revoked ones too, oldest first."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


class TokenNotFound(LookupError):
    """No token, or more than one, answers to the name or id given; the message says what to do."""


def token_named(session: Session, name_or_id: str) -> ApiToken:
    """The one token with this id (a number) or else this name; TokenNotFound when none or several match."""
    if name_or_id.isascii() and name_or_id.isdigit() and len(name_or_id) <= 18:
        found = session.get(ApiToken, int(name_or_id))
        if found is not None:
            return found
    named = list(session.scalars(select(ApiToken).where(ApiToken.name == name_or_id).order_by(ApiToken.id)))
    live = [t for t in named if t.revoked_at is None] or named
    if not live:
        raise TokenNotFound(f"No API token is called or numbered {name_or_id!r}: `mailer api-token list` shows them.")
    if len(live) > 1:
        raise TokenNotFound(f"{len(live)} tokens are called {name_or_id!r} (ids {', '.join(str(t.id) for t in live)}): "
                            "give the id of the one you mean.")
    return live[0]


def revoke_token(token: ApiToken) -> bool:
    """Revoke the token now (a request with it then gets 401); False when it already was."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True

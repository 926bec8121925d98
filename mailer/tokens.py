"""Signed links: one salt per purpose, so a token for one thing never opens another."""
from __future__ import annotations

from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

CONFIRM = "confirm"
DOWNLOAD = "download"
UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"
CLICK = "click"  # a post's link in one recipient's digest
OPEN = "open"  # the tracking pixel of one recipient's digest
FORM = "form"  # a signup form, signed when rendered: how long it was open tells people from bots


class InvalidToken(ValueError):
    """The link was altered or cut short."""


class ExpiredToken(ValueError):
    """The link is genuine but too old; `payload` says whose it was."""

    def __init__(self, payload: Any):
        super().__init__("expired")
        self.payload = payload


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    keys = [*(current_app.config.get("SECRET_KEY_FALLBACKS") or []), current_app.config["SECRET_KEY"]]
    # itsdangerous signs with the last key and accepts all of them: rotation without broken links.
    return URLSafeTimedSerializer(keys, salt=f"mailer.{purpose}")


def make(purpose: str, payload: Any) -> str:
    return _serializer(purpose).dumps(payload)


def read(purpose: str, token: str, max_age: int | None = None) -> Any:
    """The payload of a token, or InvalidToken / ExpiredToken."""
    try:
        return _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        # Raised only after the signature checked out, so the payload is ours.
        raise ExpiredToken(_serializer(purpose).load_payload(exc.payload)) from None
    except BadSignature:
        raise InvalidToken(token) from None

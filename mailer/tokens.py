"""Signed links: one salt per purpose, so a token for one thing never opens another."""
from __future__ import annotations

import base64
import hmac
import json
import re
from functools import lru_cache
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes

CONFIRM = "confirm"
DOWNLOAD = "download"
UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"
CLICK = "click"  # a post's link in one recipient's digest
OPEN = "open"  # the tracking pixel of one recipient's digest
FORM = "form"  # a signup form, signed when rendered: how long it was open tells people from bots
RESEND = "resend"  # the thanks page's "send the link again": the address typed, kept out of the URL
RESEND_NOTHING = "resend-nothing"  # the same form after a submission taken for a bot: answered alike, never acted on
KEEP = "keep"  # the sunset mail's "keep me": opens a page with one button, which a person presses
UNSUBSCRIBE_MAIL = "unsubscribe-mail"  # the local part of List-Unsubscribe's mailto: address (a tag, see make_tag)


class InvalidToken(ValueError):
    """The link was altered or cut short."""


class ExpiredToken(ValueError):
    """The link is genuine but too old; `payload` says whose it was."""

    def __init__(self, payload: Any):
        super().__init__("expired")
        self.payload = payload


def _keys() -> tuple[str, ...]:
    return (*(current_app.config.get("SECRET_KEY_FALLBACKS") or []), current_app.config["SECRET_KEY"])


def _serializer(purpose: str, keys: tuple[str, ...] | None = None) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and accepts all of them: rotation without broken links.
    return URLSafeTimedSerializer(list(keys or _keys()), salt=f"mailer.{purpose}")


def make(purpose: str, payload: Any) -> str:
    return _minter(purpose, _keys()).make(payload)


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # as itsdangerous writes it, without a new encoder each time


@lru_cache(maxsize=64)
def _minter(purpose: str, keys: tuple[str, ...]) -> _Minter:
    return _Minter(_serializer(purpose, keys))


class _Minter:
    """Makes the tokens its serializer's dumps() makes, with the key derived once instead of per token: a digest
    signs three links per recipient. Payloads are never compressed (itsdangerous reads either form, and the
    short ones it would not compress anyway)."""

    def __init__(self, serializer: URLSafeTimedSerializer):
        self._signer = serializer.make_signer()
        self._mac = hmac.new(self._signer.derive_key(), digestmod=self._signer.digest_method)

    def make(self, payload: Any) -> str:
        body = base64_encode(_COMPACT_JSON.encode(payload).encode())
        value = body + b"." + base64_encode(int_to_bytes(self._signer.get_timestamp()))
        mac = self._mac.copy()
        mac.update(value)
        return (value + b"." + base64_encode(mac.digest())).decode("ascii")


def read(purpose: str, token: str, max_age: int | None = None) -> Any:
    """The payload of a token, or InvalidToken / ExpiredToken."""
    try:
        return _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        # Raised only after the signature checked out, so the payload is ours.
        raise ExpiredToken(_serializer(purpose).load_payload(exc.payload)) from None
    except BadSignature:
        raise InvalidToken(token) from None


TAG_SIGNATURE = 16  # base32 characters: 80 bits
_TAG = re.compile(rf"(\d{{1,18}})-([a-z2-7]{{{TAG_SIGNATURE}}})", re.IGNORECASE)


def make_tag(purpose: str, number: int) -> str:
    """`<number>-<signature>`: a signed id short enough for an address's local part (64 octets) and in one case,
    since some MTAs lower-case local parts on the way in."""
    return f"{number}-{_tag_signature(purpose, number, _keys()[-1])}"


def read_tag(purpose: str, tag: str) -> int:
    """The number in a tag whose signature is ours (any current or fallback key), or InvalidToken."""
    match = _TAG.fullmatch(tag or "")
    if match is None:
        raise InvalidToken(tag)
    number, signature = int(match.group(1)), match.group(2).lower()
    valid = False
    for key in _keys():  # every key, so the time taken says nothing about which one matched
        valid |= hmac.compare_digest(_tag_signature(purpose, number, key), signature)
    if not valid:
        raise InvalidToken(tag)
    return number


def _tag_signature(purpose: str, number: int, key: str) -> str:
    # The key itsdangerous derives for this purpose's salt, as for the links; base32 rather than base64.
    derived = _serializer(purpose, (key,)).make_signer().derive_key()
    mac = hmac.new(derived, f"{purpose}:{number}".encode(), "sha256").digest()
    return base64.b32encode(mac[:10]).decode().lower()

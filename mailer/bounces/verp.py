"""VERP: each mail's envelope sender names its delivery, signed, so a bounce says which mail failed."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from email.utils import parseaddr
from functools import lru_cache

from flask import current_app

from ..mail.messages import domain_of

LOCAL_PART = "bounces"
SIGNATURE_LENGTH = 10  # base32 characters: 50 bits, far beyond what a forger can guess by mailing us
_ADDRESS = re.compile(rf"^{LOCAL_PART}\+(\d{{1,18}})-([a-z2-7]{{{SIGNATURE_LENGTH}}})@", re.IGNORECASE)


def bounce_domain(config: Mapping) -> str:
    """BOUNCE_DOMAIN, or the domain of MAIL_FROM."""
    return config.get("BOUNCE_DOMAIN") or domain_of(config["MAIL_FROM"]).lower() or "localhost"


def _signature(delivery_id: int, key: str) -> str:
    mac = _keyed(key).copy()
    mac.update(f"mailer.verp:{delivery_id}".encode())
    # Lower case: some MTAs lower-case the local part on the way back. Base32 turns each 5 bytes into 8
    # characters, so the first 10 bytes give the same first characters as the whole MAC.
    return base64.b32encode(mac.digest()[:10]).decode()[:SIGNATURE_LENGTH].lower()


@lru_cache(maxsize=8)
def _keyed(key: str) -> hmac.HMAC:
    return hmac.new(key.encode(), digestmod=hashlib.sha256)  # copied per mail: the key is set up once


def envelope_sender(delivery_id: int, config: Mapping | None = None) -> str:
    """bounces+<delivery id>-<signature>@<bounce domain>, the Return-Path of this delivery's mail."""
    config = config if config is not None else current_app.config
    return f"{LOCAL_PART}+{delivery_id}-{_signature(delivery_id, config['SECRET_KEY'])}@{bounce_domain(config)}"


def delivery_from_address(address: str, config: Mapping | None = None) -> int | None:
    """The delivery id in a VERP address whose signature is ours, else None."""
    config = config if config is not None else current_app.config
    match = _ADDRESS.match(parseaddr(address or "")[1] or "")
    if match is None:
        return None
    delivery_id, signature = int(match.group(1)), match.group(2).lower()
    # Old keys too, so bounces of mail sent before a key rotation still count.
    keys = [config["SECRET_KEY"], *(config.get("SECRET_KEY_FALLBACKS") or [])]
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(_signature(delivery_id, key), signature)
    return delivery_id if valid else None

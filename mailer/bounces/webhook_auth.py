"""How Postmark and SendGrid prove a webhook call is theirs: Basic credentials, an ECDSA signature."""
from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ..keys import sendgrid_public_key


def postmark_authorized(username: str | None, password: str | None, config: Mapping) -> bool:
    """The Basic credentials match POSTMARK_WEBHOOK_USER/PASSWORD (compared in constant time)."""
    user_ok = hmac.compare_digest((username or "").encode(), config["POSTMARK_WEBHOOK_USER"].encode())
    password_ok = hmac.compare_digest((password or "").encode(), config["POSTMARK_WEBHOOK_PASSWORD"].encode())
    return user_ok and password_ok  # both compared, so the time does not tell which one was wrong


def sendgrid_signed(config: Mapping, signature: str | None, timestamp: str | None, body: bytes) -> bool:
    """The X-Twilio-Email-Event-Webhook-Signature verifies over timestamp + raw body."""
    if not signature or not timestamp:
        return False
    key = sendgrid_public_key(config["SENDGRID_WEBHOOK_PUBLIC_KEY"])
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True

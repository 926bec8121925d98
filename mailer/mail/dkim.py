"""DKIM: sign each outgoing message with the configured key, and the public half for the DNS record."""
from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..keys import load_private_key
from .messages import domain_of

# The headers a mailbox provider judges us by; a header is signed only when the message has it.
SIGNED_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                  "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")


@functools.lru_cache(maxsize=4)
def _signing_key(pem: str) -> tuple[bytes, bytes]:
    """(key in the form dkimpy takes, algorithm), parsed once per key rather than once per message."""
    key = load_private_key(pem)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        return base64.b64encode(raw), b"ed25519-sha256"
    # dkimpy reads only PKCS#1 ("BEGIN RSA PRIVATE KEY"); OpenSSL 3 writes PKCS#8 by default.
    pkcs1 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
    return pkcs1, b"rsa-sha256"


def enabled(config: Mapping) -> bool:
    return bool(config.get("DKIM_PRIVATE_KEY") and config.get("DKIM_SELECTOR"))


def signing_domain(config: Mapping) -> str:
    """DKIM_DOMAIN, or the domain of MAIL_FROM: the one DMARC compares the signature with."""
    return config.get("DKIM_DOMAIN") or domain_of(config["MAIL_FROM"]).lower()


def sign(msg_bytes: bytes, config: Mapping) -> bytes:
    """The message with a DKIM-Signature header on top; unchanged when DKIM is not configured."""
    if not enabled(config):
        return msg_bytes
    key, algorithm = _signing_key(config["DKIM_PRIVATE_KEY"])
    linesep = b"\r\n" if b"\r\n" in msg_bytes[:1000] else b"\n"
    head = msg_bytes.split(linesep * 2, 1)[0]
    present = {m.group(1).lower() for m in re.finditer(rb"^([!-9;-~]+):", head, re.MULTILINE)}
    headers = [h.encode() for h in SIGNED_HEADERS if h.lower().encode() in present]
    # relaxed/relaxed: relays that refold headers or trim trailing spaces do not break the signature.
    signature = dkim.sign(msg_bytes, config["DKIM_SELECTOR"].encode(), signing_domain(config).encode(), key,
                          signature_algorithm=algorithm, include_headers=headers,
                          canonicalize=(b"relaxed", b"relaxed"), linesep=linesep)
    return signature + msg_bytes


def public_record(pem: str) -> str:
    """The TXT value to publish at <selector>._domainkey.<domain> for this private key."""
    key = load_private_key(pem)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"

"""DKIM: sign each outgoing message with the configured key, and the public half for the DNS record."""
from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .messages import domain_of

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# The headers a mailbox provider judges us by; a header is signed only when the message has it.
SIGNED_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                  "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")


def read_pem(value: str) -> str:
    """PEM text as given, or read from the file that `value` names."""
    text = value.strip()
    if "-----BEGIN" not in text:
        path = Path(text).expanduser()
        if not path.is_file():
            # Not echoed: it may be a key pasted without its BEGIN line.
            raise ValueError("is neither PEM text (-----BEGIN ... PRIVATE KEY-----) nor the path of a readable file")
        text = path.read_text()
    # A PEM squeezed onto one line of a .env file keeps its line breaks as the two characters \n.
    return text.replace("\\n", "\n").strip() + "\n"


def load_private_key(value: str) -> PrivateKey:
    """The key from PEM text or from a path to a PEM file; ValueError says what is wrong with it."""
    pem = read_pem(value)
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"is not an unencrypted PEM private key ({exc})") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ValueError(f"is an RSA key of {key.key_size} bits, too weak; use 2048 bits (openssl genrsa 2048)")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ValueError(f"is a {type(key).__name__.lstrip('_')}, which cannot sign DKIM; use RSA 2048 or Ed25519")


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

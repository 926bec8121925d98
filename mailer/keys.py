"""Keys from the environment, loaded and checked: DKIM's private key and SendGrid's webhook public key."""
from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


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


def sendgrid_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER; PEM accepted too); ValueError if it is not one."""
    text = value.strip()
    try:
        key = load_pem_public_key(text.encode()) if "-----BEGIN" in text else \
            load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ValueError(f"is not a base64 DER public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("is not an elliptic-curve (ECDSA) public key")
    return key

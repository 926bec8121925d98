"""Amazon SNS messages: check the signature against Amazon's certificate before believing a word."""
from __future__ import annotations

import base64
import binascii
import re
import urllib.request
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Only Amazon's own SNS hosts: a certificate from anywhere else would let anyone sign a "bounce".
CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_certificates: dict[str, x509.Certificate] = {}


class InvalidMessage(ValueError):
    """Not a genuine SNS message: bad signature, a certificate from the wrong place, missing fields."""


class CertificateUnavailable(RuntimeError):
    """Amazon's signing certificate could not be fetched just now; SNS retries the message later."""


def fetch(url: str) -> bytes:
    """GET an Amazon URL checked by the caller: the only network call here, which tests replace."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (https on amazonaws.com only)
        return response.read(65536)


def amazon_url(url: str, host_ok, query: bool) -> bool:
    """Whether `url` is a plain https URL on a host `host_ok` accepts: nothing in it that parsers read apart (a
    user part, a backslash, a port, a character outside printable ASCII) and, unless `query`, no query."""
    if not url.isascii() or any(c in url for c in "\\@") or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # "https://[", a port that is no number
        return False
    return (parts.scheme == "https" and port is None and host_ok(parts.hostname or "") and not parts.fragment
            and (query or not parts.query))


def signing_certificate(url: str) -> x509.Certificate:
    """The certificate at SigningCertURL, fetched once per process: SNS signs with few certificates."""
    if not amazon_url(url, CERT_HOST.fullmatch, query=False) or not url.endswith(".pem"):
        raise InvalidMessage(f"SigningCertURL {url[:200]!r} is not an https URL on sns.<region>.amazonaws.com, "
                             "so its certificate is not trusted")
    if url not in _certificates:
        try:
            pem = fetch(url)
        except OSError as exc:
            raise CertificateUnavailable(f"cannot fetch the SNS signing certificate: {exc}") from None
        try:
            _certificates[url] = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise InvalidMessage("SigningCertURL does not hold a PEM certificate") from None
    return _certificates[url]


def verify(message: dict) -> None:
    """Raise InvalidMessage unless `message` is signed by the certificate it names."""
    fields = SIGNED_FIELDS.get(message.get("Type"))
    if fields is None:
        raise InvalidMessage(f"unknown SNS message Type {str(message.get('Type'))[:50]!r}")
    missing = [f for f in fields if f != "Subject" and not isinstance(message.get(f), str)]
    if missing or not isinstance(message.get("Signature"), str):
        raise InvalidMessage(f"SNS message without {', '.join(missing) or 'Signature'}")
    hash_type = HASHES.get(str(message.get("SignatureVersion")))
    if hash_type is None:
        raise InvalidMessage(f"unknown SignatureVersion {str(message.get('SignatureVersion'))[:10]!r}")
    # The string SNS signs: each present field's name and value on lines of their own, in this order.
    text = "".join(f"{f}\n{message[f]}\n" for f in fields if isinstance(message.get(f), str))
    key = signing_certificate(str(message.get("SigningCertURL", ""))).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidMessage("the signing certificate does not hold an RSA key")
    try:
        key.verify(base64.b64decode(message["Signature"], validate=True), text.encode(), padding.PKCS1v15(), hash_type())
    except (InvalidSignature, binascii.Error, ValueError):
        raise InvalidMessage("the SNS signature does not verify") from None


def _on_amazon(host: str) -> bool:
    return host == "amazonaws.com" or host.endswith(".amazonaws.com")


def confirm_subscription(url: str) -> None:
    """Visit SubscribeURL, which is how SNS learns we want its messages."""
    if not amazon_url(url, _on_amazon, query=True):
        raise InvalidMessage(f"SubscribeURL {url[:200]!r} is not an https URL on amazonaws.com")
    fetch(url)

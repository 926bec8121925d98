"""DKIM: every outgoing message signed with the configured key, verifiable with the record `mailer dns-records` prints."""
from __future__ import annotations

import re
import socket
from pathlib import Path

import dkim
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlalchemy import select

from mailer import config as settings
from mailer.config import ConfigError
from mailer.extensions import db
from mailer.mail import dkim as signing
from mailer.models import Delivery, Status, Subscriber
from mailer.outbox import ledger, sender
from tests.conftest import app_with

SELECTOR, DOMAIN = "mail2025", "mailer.test"


def pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ed25519_pem() -> str:
    return pem(ed25519.Ed25519PrivateKey.generate())


def dns_for(private_pem: str):
    """A resolver that knows only our selector's record: DNS itself is outside this machine."""
    record = signing.public_record(private_pem).encode()

    def dnsfunc(name, timeout=5):
        return record if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None
    return dnsfunc


def signed_headers(signed: bytes) -> list[str]:
    header = signed.split(b"\r\n\r\n" if b"\r\n" in signed[:200] else b"\n\n", 1)[0].decode()
    tag = re.search(r"\bh=([^;]+);", re.sub(r"\s+", "", header.split("DKIM-Signature:", 1)[1]))
    return tag.group(1).split(":")


def dkim_app(tmp_path, sqlite_template, key_pem: str, **overrides):
    return app_with(tmp_path, sqlite_template, MAIL_FROM=f"Career Q&A <newsletter@{DOMAIN}>", DKIM_PRIVATE_KEY=key_pem,
                    DKIM_SELECTOR=SELECTOR, DKIM_DOMAIN=None, **overrides)


def owe_welcome(email: str) -> Delivery:
    sub = Subscriber(email=email, status=Status.CONFIRMED.value)
    db.session.add(sub)
    db.session.commit()
    ledger.queue(db.session, "welcome", sub.id, f"welcome:{sub.id}")
    db.session.commit()
    return db.session.scalar(select(Delivery))


@pytest.mark.parametrize("key", ["rsa_pem", "ed25519_pem"])
def test_a_list_mail_in_the_local_outbox_is_signed_over_its_headers(key, request, tmp_path, sqlite_template):
    private = request.getfixturevalue(key)
    with dkim_app(tmp_path, sqlite_template, private) as app:
        owe_welcome("ann@example.com")
        sender.deliver_due()
        [path] = Path(app.config["OUTBOX_DIR"]).glob("*.eml")
        raw = path.read_bytes()

    assert raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(raw, dnsfunc=dns_for(private))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # stored with CRLF, exactly as it would travel
    assert signed_headers(raw) == ["from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                                   "list-unsubscribe", "list-unsubscribe-post", "list-id"]
    tampered = raw.replace(b"Welcome", b"Welcom3", 1)
    assert not dkim.verify(tampered, dnsfunc=dns_for(private))


def test_a_confirmation_signs_only_the_headers_it_has(rsa_pem):
    message = (b"From: Career Q&A <newsletter@mailer.test>\r\nTo: ann@example.com\r\nSubject: Confirm\r\n"
               b"Date: Tue, 14 May 2024 09:00:00 +0000\r\nMessage-ID: <1@mailer.test>\r\n\r\nBody\r\n")
    signed = signing.sign(message, {"DKIM_PRIVATE_KEY": rsa_pem, "DKIM_SELECTOR": SELECTOR, "MAIL_FROM": "n@mailer.test"})
    assert signed_headers(signed) == ["from", "to", "subject", "date", "message-id"]
    assert signed.endswith(message)
    assert dkim.verify(signed, dnsfunc=dns_for(rsa_pem))


def test_without_a_key_nothing_is_signed(app):
    assert signing.sign(b"From: a@b.c\n\nhi\n", app.config) == b"From: a@b.c\n\nhi\n"
    owe_welcome("ann@example.com")
    sender.deliver_due()
    [path] = Path(app.config["OUTBOX_DIR"]).glob("*.eml")
    assert b"DKIM-Signature" not in path.read_bytes()


class RawSink:
    """Keeps the bytes exactly as the SMTP server received them (after dot-unstuffing), with the envelope."""

    def __init__(self):
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued"


@pytest.fixture
def raw_sink():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = RawSink()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, f"smtp://127.0.0.1:{port}"
    controller.stop()


@pytest.mark.parametrize("key", ["rsa_pem", "ed25519_pem"])
def test_the_signature_verifies_on_the_bytes_the_smtp_server_received(key, request, raw_sink, tmp_path, sqlite_template):
    private = request.getfixturevalue(key)
    handler, url = raw_sink
    with dkim_app(tmp_path, sqlite_template, private, SMTP_URL=url):
        delivery_id = owe_welcome("ann@example.com").id
        sender.deliver_due()

    [(mail_from, recipients, content)] = handler.received
    assert recipients == ["ann@example.com"]
    assert mail_from.startswith(f"bounces+{delivery_id}-") and mail_from.endswith(f"@{DOMAIN}")
    assert content.startswith(b"DKIM-Signature:") and b"\r\n" in content
    assert dkim.verify(content, dnsfunc=dns_for(private))


# --- the settings ----------------------------------------------------------------------------------

def load(tmp_path, **env):
    return settings.load({"MAILER_INSTANCE": str(tmp_path), **env})


def test_the_key_may_be_pem_text_a_path_or_pem_on_one_line(tmp_path, rsa_pem):
    path = tmp_path / "dkim.pem"
    path.write_text(rsa_pem)
    one_line = rsa_pem.strip().replace("\n", "\\n")
    for value in (rsa_pem, str(path), one_line):
        config = load(tmp_path, DKIM_PRIVATE_KEY=value, DKIM_SELECTOR=SELECTOR)
        assert config["DKIM_PRIVATE_KEY"].strip() == rsa_pem.strip()
        assert config["DKIM_DOMAIN"] is None and signing.signing_domain(config) == "localhost"


@pytest.mark.parametrize("value, says", [
    ("/no/such/file.pem", "neither PEM text"),
    ("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", "not an unencrypted PEM private key"),
    ("weak", "too weak"),
    ("ec", "cannot sign DKIM"),
])
def test_a_key_that_cannot_sign_is_a_config_error_naming_the_variable(tmp_path, value, says):
    if value == "weak":
        value = pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    elif value == "ec":
        value = pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigError, match="DKIM_PRIVATE_KEY") as error:
        load(tmp_path, DKIM_PRIVATE_KEY=value, DKIM_SELECTOR=SELECTOR)
    assert says in str(error.value)
    assert "bm90IGEga2V5" not in str(error.value) and "MII" not in str(error.value)  # never echo key material


def test_a_key_needs_a_selector_and_names_must_be_dns_names(tmp_path, rsa_pem):
    with pytest.raises(ConfigError, match="DKIM_SELECTOR"):
        load(tmp_path, DKIM_PRIVATE_KEY=rsa_pem)
    with pytest.raises(ConfigError, match="BOUNCE_DOMAIN"):
        load(tmp_path, BOUNCE_DOMAIN="bounces example.com")
    config = load(tmp_path, DKIM_PRIVATE_KEY=rsa_pem, DKIM_SELECTOR=SELECTOR, DKIM_DOMAIN="Mail.Example.com")
    assert signing.signing_domain(config) == "mail.example.com"

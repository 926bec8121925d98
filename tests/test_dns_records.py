"""`mailer dns-records`: SPF, DKIM and DMARC computed from the configuration; the DKIM record verifies our mail."""
from __future__ import annotations

import base64
import re

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailer.mail import dkim as signing


def pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def blocks(output: str) -> dict[str, str]:
    """Name -> Value of each printed record."""
    return dict(re.findall(r"^Name:  (\S+)\nType:  TXT\nValue: (.+)$", output, re.MULTILINE))


def run(app, runner, *args: str, **config) -> str:
    app.config.update(MAIL_FROM="Career Q&A <newsletter@mailer.test>", **config)
    result = runner.invoke(args=["dns-records", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_records_for_an_rsa_key(app, runner, rsa_key):
    output = run(app, runner, DKIM_PRIVATE_KEY=pem(rsa_key), DKIM_SELECTOR="mail2025")
    records = blocks(output)
    assert records["mailer.test"] == "v=spf1 mx -all"
    assert "include" in output  # the admin is told to add their provider's include
    der = rsa_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert records["mail2025._domainkey.mailer.test"] == f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    assert records["_dmarc.mailer.test"] == "v=DMARC1; p=quarantine; rua=mailto:dmarc@mailer.test; adkim=s; aspf=r"
    assert "bounces+<delivery>-<signature>@mailer.test" in output and "mailer bounces process" in output


def test_the_printed_dkim_record_verifies_a_signed_message(app, runner, rsa_key):
    output = run(app, runner, DKIM_PRIVATE_KEY=pem(rsa_key), DKIM_SELECTOR="mail2025")
    record = blocks(output)["mail2025._domainkey.mailer.test"].encode()
    message = b"From: newsletter@mailer.test\r\nTo: ann@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"
    signed = signing.sign(message, app.config)

    def dnsfunc(name, timeout=5):  # DNS is outside this machine: answer with what we would publish
        return record if name == b"mail2025._domainkey.mailer.test." else None
    assert dkim.verify(signed, dnsfunc=dnsfunc)


def test_an_ed25519_key_gets_its_raw_public_key_and_a_warning(app, runner):
    key = ed25519.Ed25519PrivateKey.generate()
    output = run(app, runner, DKIM_PRIVATE_KEY=pem(key), DKIM_SELECTOR="ed2025")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert blocks(output)["ed2025._domainkey.mailer.test"] == f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    assert "RSA 2048" in output


def test_without_a_key_it_says_how_to_make_one(app, runner):
    output = run(app, runner)
    assert "_domainkey" not in output
    assert "openssl genrsa -out dkim-private.pem 2048" in output and "DKIM_SELECTOR" in output
    assert set(blocks(output)) == {"mailer.test", "_dmarc.mailer.test"}


def test_other_domains_and_a_known_provider(app, runner, rsa_key):
    output = run(app, runner, DKIM_PRIVATE_KEY=pem(rsa_key), DKIM_SELECTOR="s1", DKIM_DOMAIN="mail.mailer.test",
                 BOUNCE_DOMAIN="bounces.mailer.test", SMTP_URL="smtp://user:pw@email-smtp.eu-west-1.amazonaws.com:587")
    records = blocks(output)
    assert records["bounces.mailer.test"] == "v=spf1 mx include:amazonses.com -all"  # SPF is checked on the Return-Path
    assert "s1._domainkey.mail.mailer.test" in records
    assert "adkim=r" in records["_dmarc.mailer.test"]  # strict alignment would fail a key on a subdomain
    assert "@bounces.mailer.test" in output


def test_zone_file_lines_split_long_values(app, runner, rsa_key):
    output = run(app, runner, "--zone", DKIM_PRIVATE_KEY=pem(rsa_key), DKIM_SELECTOR="mail2025")
    line = next(l for l in output.splitlines() if l.startswith("mail2025._domainkey.mailer.test. 3600 IN TXT ("))
    strings = re.findall(r'"([^"]*)"', line)
    assert len(strings) > 1 and all(len(s) <= 255 for s in strings)
    assert "".join(strings) == signing.public_record(pem(rsa_key))
    assert '_dmarc.mailer.test. 3600 IN TXT ( "v=DMARC1;' in output

"""`mailer dns-records`: the SPF, DKIM and DMARC records to publish, computed from the configuration."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import with_appcontext

from ..bounces.verp import bounce_domain
from ..mail.dkim import public_record, signing_domain

# SMTP hosts of well-known providers and the SPF include each one documents.
PROVIDER_SPF = {"amazonaws.com": "include:amazonses.com", "postmarkapp.com": "include:spf.mtasv.net",
                "sendgrid.net": "include:sendgrid.net", "mailgun.org": "include:mailgun.org",
                "gmail.com": "include:_spf.google.com", "google.com": "include:_spf.google.com"}
NO_KEY = """No DKIM key is configured, so mail goes out unsigned. Make one (RSA 2048: every receiver checks it):
    openssl genrsa -out dkim-private.pem 2048
then set DKIM_PRIVATE_KEY=/path/to/dkim-private.pem and DKIM_SELECTOR=mail2025 (any name; a new one per key)
and run `mailer dns-records` again for the record to publish."""


@dataclass(frozen=True)
class Record:
    name: str
    type: str
    value: str
    why: str


def from_domain(config: Mapping) -> str:
    return parseaddr(config["MAIL_FROM"])[1].rpartition("@")[2].lower()


def spf_value(config: Mapping) -> str:
    """v=spf1 with the MX hosts, plus the include of a known SMTP provider named by SMTP_URL."""
    host = (urlsplit(config.get("SMTP_URL") or "").hostname or "").lower()
    include = next((spf for suffix, spf in PROVIDER_SPF.items() if host == suffix or host.endswith("." + suffix)), None)
    return " ".join(["v=spf1", "mx", *([include] if include else []), "-all"])


def records(config: Mapping) -> list[Record]:
    """The records for MAIL_FROM's domain (and the bounce domain); DKIM only when a key is configured."""
    domain, bounces = from_domain(config), bounce_domain(config)
    found = [Record(bounces, "TXT", spf_value(config),
                    f"SPF for the envelope sender's domain (bounces+…@{bounces}): the servers allowed to send for it. "
                    "If you send through an SMTP provider, add the include it documents before -all "
                    "(e.g. include:amazonses.com, include:spf.mtasv.net, include:sendgrid.net).")]
    if config.get("DKIM_PRIVATE_KEY") and config.get("DKIM_SELECTOR"):
        dkim_domain = signing_domain(config)
        found.append(Record(f"{config['DKIM_SELECTOR']}._domainkey.{dkim_domain}", "TXT",
                            public_record(config["DKIM_PRIVATE_KEY"]),
                            "DKIM: the public half of DKIM_PRIVATE_KEY; receivers check each mail's signature with it."))
    strict = "s" if signing_domain(config) == domain else "r"  # strict alignment fails a key on another domain
    found.append(Record(f"_dmarc.{domain}", "TXT",
                        f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}; adkim={strict}; aspf=r",
                        "DMARC: mail from this domain that passes neither aligned SPF nor aligned DKIM goes to spam; "
                        f"daily reports go to dmarc@{domain}. Start with p=none for a week if you are unsure."))
    return found


def zone_line(record: Record) -> str:
    # A TXT string holds at most 255 characters; longer values (an RSA key) are split into several strings.
    chunks = [record.value[i:i + 255] for i in range(0, len(record.value), 255)]
    strings = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{record.name}. 3600 IN {record.type} ( {strings} )"


@click.command("dns-records")
@click.option("--zone", is_flag=True, help="Print BIND zone-file lines instead of name/type/value blocks.")
@with_appcontext
def dns_records(zone: bool) -> None:
    """Print the DNS records (SPF, DKIM, DMARC) to publish for MAIL_FROM's domain."""
    config = current_app.config
    found = records(config)
    for record in found:
        if zone:
            click.echo(f"; {record.why}\n{zone_line(record)}\n")
        else:
            click.echo(f"# {record.why}\nName:  {record.name}\nType:  {record.type}\nValue: {record.value}\n")
    dkim = next((r for r in found if "._domainkey." in r.name), None)
    if dkim is None:
        click.echo(NO_KEY + "\n")
    elif "k=ed25519" in dkim.value:
        click.echo("Note: many receivers do not check Ed25519 signatures yet; an RSA 2048 key is the safe choice.\n")
    bounces = bounce_domain(config)
    mark = ";" if zone else "#"
    click.echo(f"{mark} Bounces: each mail's Return-Path is bounces+<delivery>-<signature>@{bounces}.\n"
               f"{mark} Mail to it must reach a server (MX for {bounces}) that pipes it into `mailer bounces process`\n"
               f"{mark} or POSTs it to /webhooks/dsn; see the README, Deliverability. Set BOUNCE_DOMAIN to use another domain.")

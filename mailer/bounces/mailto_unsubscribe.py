"""Unsubscribing by mail: List-Unsubscribe's mailto: address, `<mailbox>+<subscriber>-<signature>@<domain>`.

Mail to it arrives through the bounce intake (the same pipe and webhook) and is recognised before any bounce
rule: a message to an address whose signature verifies unsubscribes that reader, whatever it says; one whose
signature does not verify changes nothing. The address is never the VERP bounce address.
"""
from __future__ import annotations

from collections.abc import Mapping
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from flask import current_app
from sqlalchemy.orm import Session

from .. import tokens
from ..people.subscriptions import unsubscribe
from .dsn import NotABounce

# Where an MTA puts the address a message came in for, when it does not pass the envelope recipient.
HEADERS_NAMING_US = ("Delivered-To", "X-Original-To", "Envelope-To", "To")


def address(subscriber_id: int, config: Mapping | None = None) -> str | None:
    """This reader's unsubscribe address, or None when UNSUBSCRIBE_MAILBOX is not set."""
    config = config if config is not None else current_app.config
    mailbox = config.get("UNSUBSCRIBE_MAILBOX")
    if not mailbox:
        return None
    local, _, domain = mailbox.rpartition("@")
    return f"{local}+{tokens.make_tag(tokens.UNSUBSCRIBE_MAIL, subscriber_id)}@{domain}"


def unsubscribe_by_mail(session: Session, raw: bytes, envelope_recipient: str | None) -> str | None:
    """Unsubscribe the reader a message to their unsubscribe address names; what was done, or None when the
    message is not for the unsubscribe mailbox (then the bounce rules read it)."""
    mailbox = current_app.config.get("UNSUBSCRIBE_MAILBOX")
    if not mailbox:
        return None
    tag = next((t for a in _addressed_to(raw, envelope_recipient) if (t := _tag(a, mailbox)) is not None), None)
    if tag is None:
        return None
    try:
        subscriber_id = tokens.read_tag(tokens.UNSUBSCRIBE_MAIL, tag)
    except tokens.InvalidToken:
        raise NotABounce(f"a message to the unsubscribe mailbox whose address does not verify (+{tag[:40]}): "
                         "nobody was unsubscribed") from None

    if unsubscribe(session, subscriber_id) is None:
        return f"An unsubscribe by mail for subscriber {subscriber_id}, who is no longer on the list: nothing to do."
    return f"Unsubscribed subscriber {subscriber_id}: a message to their List-Unsubscribe mailto address."


def _addressed_to(raw: bytes, envelope_recipient: str | None) -> list[str]:
    """The envelope recipient when the MTA passes it; else the addresses in the headers that name it."""
    if envelope_recipient:
        return [envelope_recipient]
    head = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    values = [str(v) for name in HEADERS_NAMING_US for v in head.get_all(name) or []]
    return [addr for _, addr in getaddresses(values) if addr]


def _tag(address: str, mailbox: str) -> str | None:
    """What follows '<mailbox local part>+' in an address of the mailbox's domain (any case), else None."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    mine, _, my_domain = mailbox.rpartition("@")
    base, plus, tag = local.partition("+")
    if not plus or base.lower() != mine.lower() or domain.lower() != my_domain.lower():
        return None
    return tag

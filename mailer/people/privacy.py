"""A person's data: everything stored about one subscriber, and erasing it on request."""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, undefer

from ..dialect import insert_for
from ..models import (
    Click,
    Consent,
    Delivery,
    Download,
    ErasedAddress,
    LeadMagnet,
    MailEvent,
    Open,
    Post,
    Subscriber,
    aware,
)
from ..posts import click_buffer


def address_sha256(email: str) -> str:
    """The SHA-256 (hex) of the normalised (lower-case) address: the same for every spelling a signup accepts."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def erasure_record(sha256_hex: str, key: str) -> str:
    """What is kept of an erased address: HMAC-SHA256 under ERASURE_KEY of its SHA-256 hex. A bare hash could be
    reversed by hashing a list of addresses; this cannot, without the key. Over the hash rather than the address,
    so that migration 0017 could convert the bare hashes stored before it."""
    return hmac.new(key.encode(), sha256_hex.encode(), hashlib.sha256).hexdigest()


def email_hash(email: str) -> str:
    """The erasure record of `email`, under this app's ERASURE_KEY."""
    return erasure_record(address_sha256(email), current_app.config["ERASURE_KEY"])


def erased(session: Session, emails: list[str]) -> set[str]:
    """Which of these addresses were erased on request."""
    by_hash = {email_hash(e): e for e in emails}
    found = session.scalars(select(ErasedAddress.email_hash).where(ErasedAddress.email_hash.in_(list(by_hash))))
    return {by_hash[h] for h in found}


def export_subscriber(session: Session, subscriber: Subscriber) -> dict:
    """Everything stored about one subscriber, as JSON-ready data (clicks still waiting in Redis stored first)."""
    click_buffer.drain(session, current_app.config)

    def rows(query, fields):
        return [{f: _plain(getattr(r, f)) for f in fields} for r in session.scalars(query)]

    return {
        # Every column: their choices (digest frequency, a pause) and where the welcome sequence stands too.
        "subscriber": {column.key: _plain(getattr(subscriber, column.key)) for column in Subscriber.__table__.columns},
        "consents": rows(select(Consent).where(Consent.subscriber_id == subscriber.id).order_by(Consent.id),
                         ("requested_at", "confirmed_at", "form", "source_url", "ip", "user_agent", "consent_text")),
        "emails": rows(select(Delivery).options(undefer(Delivery.hidden_link_at))
                       .where(Delivery.subscriber_id == subscriber.id).order_by(Delivery.id),
                       ("kind", "recipient", "status", "created_at", "sent_at", "message_id", "attempts",
                        "last_error", "hidden_link_at")),
        "downloads": [{"magnet": title, "at": _plain(at)} for title, at in session.execute(
            select(LeadMagnet.title, Download.at).join(LeadMagnet, LeadMagnet.id == Download.magnet_id)
            .where(Download.subscriber_id == subscriber.id).order_by(Download.id))],
        "bounces_and_complaints": rows(select(MailEvent).where(MailEvent.subscriber_id == subscriber.id)
                                       .order_by(MailEvent.id), ("provider", "kind", "detail", "received_at")),
        # Each with the evidence that made it a person's or a machine's (posts/scanners).
        "clicks": [{"post": url, **_event(click, CLICK_EVIDENCE)} for click, url in session.execute(
            select(Click, Post.url).join(Post, Post.id == Click.post_id)
            .where(Click.subscriber_id == subscriber.id).order_by(Click.id))],
        "opens": [_event(o, OPEN_EVIDENCE) for o in session.scalars(
            select(Open).where(Open.subscriber_id == subscriber.id).order_by(Open.id))],
    }


OPEN_EVIDENCE = ("digest_id", "at", "human", "machine_reason", "method", "user_agent", "seconds_after_delivery")
CLICK_EVIDENCE = (*OPEN_EVIDENCE, "links_at_once")


def _event(row, fields: tuple[str, ...]) -> dict:
    return {f: _plain(getattr(row, f)) for f in fields}


def erase_subscriber(session: Session, subscriber: Subscriber) -> None:
    """Remove the person and all their personal data; keep only their erasure record (a keyed hash of the address)
    so an import does not add them back. Their clicks still waiting in Redis, with their evidence, are stored first
    and so erased too: an id that comes round again (SQLite) never inherits them."""
    click_buffer.drain(session, current_app.config)
    insert = insert_for(session)
    session.execute(insert(ErasedAddress).values(email_hash=email_hash(subscriber.email))
                    .on_conflict_do_nothing(index_elements=["email_hash"]))
    session.execute(update(MailEvent).where(MailEvent.subscriber_id == subscriber.id).values(email=None, detail=""))
    for model in (Click, Open, Delivery, Download, Consent):  # explicit, not left to ON DELETE CASCADE, so SQLite agrees
        session.execute(delete(model).where(model.subscriber_id == subscriber.id))
    session.delete(subscriber)


def _plain(value):
    return aware(value).isoformat() if isinstance(value, datetime) else value

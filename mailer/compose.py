"""What each kind of owed mail says: turns a Delivery row into a message for its subscriber."""
from __future__ import annotations

from email.message import EmailMessage

from . import links
from .extensions import db
from .mail.messages import render
from .models import Consent, Delivery, LeadMagnet, Status, Subscriber


def may_send(delivery: Delivery, subscriber: Subscriber) -> bool:
    """Only the confirmation goes to an unconfirmed address; nothing goes to a suppressed one."""
    if delivery.kind == "confirmation":
        return subscriber.status in (Status.PENDING.value, Status.UNSUBSCRIBED.value)
    return subscriber.status == Status.CONFIRMED.value


def compose(delivery: Delivery, subscriber: Subscriber) -> EmailMessage:
    return COMPOSERS[delivery.kind](delivery, subscriber)


def _confirmation(delivery: Delivery, subscriber: Subscriber) -> EmailMessage:
    consent = db.session.get(Consent, delivery.payload["consent_id"])
    magnet = consent.magnet if consent else None
    # No name and nothing else the visitor typed: the address may not be theirs.
    context = {"confirm_url": links.confirm_url(delivery.payload["consent_id"]), "magnet": magnet}
    return render("confirmation", subscriber.email, context, dedupe_key=delivery.dedupe_key)


def _magnet(delivery: Delivery, subscriber: Subscriber) -> EmailMessage:
    magnet = db.session.get(LeadMagnet, delivery.payload["magnet_id"])
    context = {"subscriber": subscriber, "magnet": magnet, "download_url": links.download_url(subscriber.id, magnet.id)}
    return render("magnet", subscriber.email, context, dedupe_key=delivery.dedupe_key)


def _welcome(delivery: Delivery, subscriber: Subscriber) -> EmailMessage:
    context = {"subscriber": subscriber}
    return render("welcome", subscriber.email, context, dedupe_key=delivery.dedupe_key,
                  unsubscribe_url=links.unsubscribe_url(subscriber.id))


COMPOSERS = {"confirmation": _confirmation, "magnet": _magnet, "welcome": _welcome}

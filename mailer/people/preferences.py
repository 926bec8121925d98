"""What a reader may change about their own subscription from the preference page."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from ..magnets import find_magnet
from ..mail.messages import has_control_character
from ..models import Status, Subscriber, utcnow
from . import subscriptions

FREQUENCIES = {"every": "every digest", "monthly": "a monthly summary",
               "none": "no digests (the welcome mails and the handbook still come)"}
PAUSE = timedelta(days=30)


class InvalidChoice(ValueError):
    """A preference the page does not offer; the message says what is allowed."""


def reader(session: Session, subscriber_id: int) -> Subscriber | None:
    """The subscriber whose page this is, if they may still change anything (confirmed)."""
    subscriber = session.get(Subscriber, subscriber_id)
    return subscriber if subscriber is not None and subscriber.status == Status.CONFIRMED.value else None


def set_frequency(subscriber: Subscriber, frequency: str) -> None:
    if frequency not in FREQUENCIES:
        raise InvalidChoice("Choose every digest, a monthly summary or no digests.")
    subscriber.digest_frequency = frequency


def pause(subscriber: Subscriber) -> None:
    """No digests for a month from now; the welcome mails still come."""
    subscriber.paused_until = utcnow() + PAUSE


def resume(subscriber: Subscriber) -> None:
    subscriber.paused_until = None


def rename(subscriber: Subscriber, name: str) -> None:
    name = " ".join(name.split())
    if len(name) > 100 or has_control_character(name):
        raise InvalidChoice("A name is one line of at most 100 characters.")
    subscriber.name = name or None


def fresh_download(session: Session, subscriber: Subscriber) -> tuple[int, bool]:
    """The handbook's id, for a fresh link on the page, and whether a copy was owed by mail too (throttled like
    signups: not when one went in the last 15 minutes, nor after three today)."""
    magnet_id = find_magnet(session, None).id
    return magnet_id, subscriptions.mail_fresh_download_link(session, subscriber.id, magnet_id)

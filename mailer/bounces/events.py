"""One kind of event for every bounce and complaint, and the one policy that acts on it."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..dialect import insert_for
from ..models import Delivery, DeliveryStatus, MailEvent, Status, Subscriber, SuppressionLift, aware, utcnow
from ..posts import reputation

log = logging.getLogger(__name__)

HARD, SOFT, COMPLAINT = "hard_bounce", "soft_bounce", "complaint"
SOFT_LIMIT, SOFT_WINDOW = 3, timedelta(days=7)  # a mailbox full for a week is as good as gone


@dataclass(frozen=True)
class Report:
    """A bounce or complaint as a source tells it, before it is stored."""

    kind: str
    event_id: str
    email: str | None = None
    delivery_id: int | None = None
    detail: str = ""


def event_key(provider: str, event_id: str) -> str:
    key = f"{provider}:{event_id}"
    # The column holds 300 characters; a longer id (a provider id plus an address) is kept as its hash.
    return key if len(key) <= 300 else f"{provider}:sha256:{hashlib.sha256(event_id.encode()).hexdigest()}"


def record_event(session: Session, provider: str, event_id: str, kind: str, email: str | None = None,
                 delivery_id: int | None = None, detail: str = "", *, match_email: bool = True) -> bool:
    """Store one event and apply the policy; False (and nothing done) when this event id was seen before.

    With match_email=False the subscriber is found only through `delivery_id`: for reports anyone could have
    written (a DSN mailed to us), an address named in the body suppresses nobody.
    """
    if kind not in (HARD, SOFT, COMPLAINT):
        raise ValueError(f"unknown event kind {kind!r}")
    email = email.strip().lower() if email and len(email.strip()) <= 254 else None
    subscriber = _subscriber(session, delivery_id, email if match_email else None)
    insert = insert_for(session)
    stmt = insert(MailEvent).values(
        event_key=event_key(provider, event_id), provider=provider, kind=kind,
        email=subscriber.email if subscriber else email, subscriber_id=subscriber.id if subscriber else None,
        delivery_id=delivery_id, detail=detail[:1000], received_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["event_key"]).returning(MailEvent.id)
    # A returned id, not rowcount: SQLAlchemy 2.1 reports rowcount -1 for this INSERT on PostgreSQL.
    if session.execute(stmt).scalar_one_or_none() is None:
        return False
    if subscriber is not None:
        _apply_policy(session, subscriber, kind)
    if kind != SOFT and delivery_id is not None and (delivery := session.get(Delivery, delivery_id)) is not None \
            and delivery.digest_id is not None:
        reputation.guard(session, delivery.digest_id)
    return True


def _subscriber(session: Session, delivery_id: int | None, email: str | None) -> Subscriber | None:
    """The subscriber the event is about, locked so concurrent events for one address count one at a time."""
    condition = None
    if delivery_id is not None and (delivery := session.get(Delivery, delivery_id)) is not None:
        if delivery.subscriber_id is None:
            return None  # a test send to an address the admin typed: nobody to suppress
        condition = Subscriber.id == delivery.subscriber_id
    elif email:
        condition = Subscriber.email == email
    if condition is None:
        return None
    return session.execute(select(Subscriber).where(condition).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one_or_none()


def _apply_policy(session: Session, subscriber: Subscriber, kind: str) -> None:
    if subscriber.status == Status.COMPLAINED.value:
        return  # already the strongest suppression
    if kind == COMPLAINT:
        _suppress(session, subscriber, Status.COMPLAINED.value, "complained")
    elif subscriber.status == Status.BOUNCED.value:
        return
    elif kind == HARD:
        _suppress(session, subscriber, Status.BOUNCED.value, "hard bounce")
    elif _recent_soft_bounces(session, subscriber.id) >= SOFT_LIMIT:
        _suppress(session, subscriber, Status.BOUNCED.value, f"{SOFT_LIMIT} soft bounces within {SOFT_WINDOW.days} days")


def _recent_soft_bounces(session: Session, subscriber_id: int) -> int:
    """Soft bounces within the window; an admin's lift of a bounce starts the count again."""
    lifted = session.scalar(select(func.max(SuppressionLift.lifted_at))
                            .where(SuppressionLift.subscriber_id == subscriber_id))
    since = max(utcnow() - SOFT_WINDOW, aware(lifted)) if lifted else utcnow() - SOFT_WINDOW
    return session.scalar(select(func.count()).select_from(MailEvent).where(
        MailEvent.subscriber_id == subscriber_id, MailEvent.kind == SOFT, MailEvent.received_at >= since)) or 0


def _suppress(session: Session, subscriber: Subscriber, status: str, reason: str) -> None:
    """No more mail of any kind, including mail already queued (as an unsubscribe does)."""
    subscriber.status = status
    subscriber.suppressed_at = utcnow()
    subscriber.welcome_next_at = None
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.status == DeliveryStatus.QUEUED.value)
        .values(status=DeliveryStatus.SKIPPED.value, last_error=f"subscriber is {status}")
        .execution_options(synchronize_session=False)
    )
    log.warning("subscriber %s suppressed (%s): %s", subscriber.id, status, reason)

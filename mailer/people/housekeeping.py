"""Housekeeping run by beat: forget signups that were never confirmed."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from ..models import Consent, Delivery, DeliveryStatus, Download, Status, Subscriber

log = logging.getLogger(__name__)
BATCH = 1000


def purge_unconfirmed(session: Session, now: datetime, days: int | None = None, batch: int = BATCH) -> int:
    """Delete pending subscribers never confirmed and not asked for `days` (UNCONFIRMED_PURGE_DAYS), with their rows.

    Commits after each batch of `batch` subscribers, so a million stale rows never hold long locks;
    returns how many subscribers were deleted. Someone who signed up again within `days` is kept, and so is
    anyone with a mail still queued or in a worker's hands.
    """
    days = current_app.config.get("UNCONFIRMED_PURGE_DAYS", 7) if days is None else days
    if not days:
        return 0
    cutoff = now - timedelta(days=days)
    total = 0
    while True:
        ids = session.scalars(_stale(cutoff, batch)).all()
        if ids:
            session.execute(delete(Delivery).where(Delivery.subscriber_id.in_(ids)))
            session.execute(delete(Download).where(Download.subscriber_id.in_(ids)))
            session.execute(delete(Consent).where(Consent.subscriber_id.in_(ids)))
            session.execute(delete(Subscriber).where(Subscriber.id.in_(ids), Subscriber.status == Status.PENDING.value))
        session.commit()
        total += len(ids)
        if len(ids) < batch:
            break
    if total:
        log.info("purged %s unconfirmed signups older than %s days (UNCONFIRMED_PURGE_DAYS)", total, days)
    return total


def _stale(cutoff: datetime, batch: int):
    recent_or_confirmed = exists().where(
        Consent.subscriber_id == Subscriber.id, or_(Consent.requested_at >= cutoff, Consent.confirmed_at.is_not(None)))
    in_flight = exists().where(
        Delivery.subscriber_id == Subscriber.id,
        Delivery.status.in_((DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)))
    query = (select(Subscriber.id)
             .where(Subscriber.status == Status.PENDING.value, Subscriber.confirmed_at.is_(None),
                    Subscriber.created_at < cutoff, ~recent_or_confirmed, ~in_flight)
             .order_by(Subscriber.id).limit(batch))
    # Rows a concurrent signup has just touched are locked by it: skip them, they are not stale.
    return query.with_for_update(of=Subscriber, skip_locked=True)

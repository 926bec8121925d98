"""Reviewing suppressions: the bounced and complained readers, each with the event that stopped their mail, and
lifting a bounce (an admin's word, recorded). A complaint only the reader lifts, by confirming a new signup
(people/subscriptions)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import AdminUser, MailEvent, Status, Subscriber, SuppressionLift, utcnow
from .events import COMPLAINT, HARD, SOFT

PAGE = 50
SUPPRESSED = (Status.BOUNCED.value, Status.COMPLAINED.value)
# The kinds of event that can have suppressed a reader of each status.
CAUSES = {Status.BOUNCED.value: (HARD, SOFT), Status.COMPLAINED.value: (COMPLAINT,)}
COMPLAINT_STAYS = ("a complaint is lifted only by the reader: they sign up again and click the new confirmation "
                   "link, which records their new consent")


class CannotLift(Exception):
    """This reader's suppression is not one an admin may lift; the message says why and what can be done."""


@dataclass
class Suppressed:
    subscriber: Subscriber
    event: MailEvent | None  # None: refused while sending before such refusals were stored as `smtp` events


@dataclass
class Page:
    rows: list[Suppressed]
    next_before: int | None  # pass as `before` for the next page; None on the last page


def suppressed(session: Session, before: int | None = None, size: int = PAGE) -> Page:
    """One page of bounced and complained readers, newest first (keyset by id), with what suppressed each."""
    query = select(Subscriber).where(Subscriber.status.in_(SUPPRESSED)).order_by(Subscriber.id.desc()).limit(size + 1)
    if before is not None:
        query = query.where(Subscriber.id < before)
    people = list(session.scalars(query))
    more = len(people) > size
    people = people[:size]
    causes = _latest_causes(session, people)
    return Page([Suppressed(p, causes.get(p.id)) for p in people], people[-1].id if more else None)


def _latest_causes(session: Session, people: list[Subscriber]) -> dict[int, MailEvent]:
    """Each reader's latest event of a kind that suppresses their status: one query for the page."""
    if not people:
        return {}
    statuses = {p.id: p.status for p in people}
    events = session.scalars(select(MailEvent).where(MailEvent.subscriber_id.in_(statuses))
                             .order_by(MailEvent.id.desc()))
    causes: dict[int, MailEvent] = {}
    for event in events:
        if event.subscriber_id not in causes and event.kind in CAUSES[statuses[event.subscriber_id]]:
            causes[event.subscriber_id] = event
    return causes


def cause(session: Session, subscriber: Subscriber) -> MailEvent | None:
    return _latest_causes(session, [subscriber]).get(subscriber.id) if subscriber.status in CAUSES else None


def lift_bounce(session: Session, subscriber_id: int, admin: AdminUser) -> Subscriber | None:
    """Mail a bounced reader again, as before the bounce; the lift is recorded. None: no such subscriber."""
    subscriber = session.execute(select(Subscriber).where(Subscriber.id == subscriber_id).with_for_update()
                                 .execution_options(populate_existing=True)).scalar_one_or_none()
    if subscriber is None:
        return None
    if subscriber.status == Status.COMPLAINED.value:
        raise CannotLift(f"{subscriber.email} complained (reported our mail as spam), and {COMPLAINT_STAYS}.")
    if subscriber.status != Status.BOUNCED.value:
        raise CannotLift(f"{subscriber.email} is {subscriber.status}, not bounced: there is no bounce to lift.")
    event = cause(session, subscriber)
    session.add(SuppressionLift(subscriber_id=subscriber.id, admin_id=admin.id, admin_email=admin.email,
                                event_id=event.id if event else None, lifted_at=utcnow()))
    # Back to what they were: confirmed, or pending when it was their confirmation that bounced.
    subscriber.status = Status.CONFIRMED.value if subscriber.confirmed_at else Status.PENDING.value
    subscriber.suppressed_at = None
    return subscriber


def lifts(session: Session, subscriber_id: int) -> list[tuple[SuppressionLift, MailEvent | None]]:
    """The lifts of one reader's bounces, newest first, each with the event it lifted."""
    return [tuple(row) for row in session.execute(
        select(SuppressionLift, MailEvent).outerjoin(MailEvent, MailEvent.id == SuppressionLift.event_id)
        .where(SuppressionLift.subscriber_id == subscriber_id).order_by(SuppressionLift.id.desc()))]

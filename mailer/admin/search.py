"""Finding subscribers at a million rows: exact address, address or name prefix, status; keyset pages, newest first."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..dialect import lower
from ..models import Consent, Delivery, Download, LeadMagnet, MailEvent, Subscriber

PAGE = 50


@dataclass
class Page:
    rows: list[Subscriber]
    next_before: int | None  # pass as `before` for the next page; None on the last page


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search(session: Session, query: str = "", status: str | None = None, before: int | None = None,
           size: int | None = None) -> Page:
    """One page of matches; each is an index range scan or an id-ordered walk, never OFFSET or a count of all."""
    q, size = query.strip().lower(), size or PAGE
    stmt = select(Subscriber).order_by(Subscriber.id.desc()).limit(size + 1)
    if status:
        stmt = stmt.where(Subscriber.status == status)
    if before is not None:
        stmt = stmt.where(Subscriber.id < before)
    if q and "@" in q and session.scalar(select(Subscriber.id).where(Subscriber.email == q)) is not None:
        stmt = stmt.where(Subscriber.email == q)
    elif "@" in q:
        stmt = stmt.where(Subscriber.email.like(_escaped(q), escape="\\"))
    elif q:
        pattern = _escaped(q)
        stmt = stmt.where(Subscriber.email.like(pattern, escape="\\") |
                          lower(session, Subscriber.name).like(pattern, escape="\\"))
    rows = list(session.scalars(stmt))
    more = len(rows) > size
    return Page(rows[:size], rows[size - 1].id if more else None)


@dataclass
class History:
    consents: list[Consent]
    deliveries: list[Delivery]
    downloads: list[tuple[Download, str]]  # with the magnet's title
    events: list[MailEvent]


def history(session: Session, subscriber_id: int, limit: int = 100) -> History:
    """The latest `limit` of each kind of record about one subscriber, newest first."""
    def latest(model, column):
        return list(session.scalars(select(model).where(model.subscriber_id == subscriber_id)
                                    .order_by(column.desc()).limit(limit)))

    downloads = session.execute(select(Download, LeadMagnet.title).join(LeadMagnet)
                                .where(Download.subscriber_id == subscriber_id)
                                .order_by(Download.at.desc()).limit(limit)).all()
    return History(latest(Consent, Consent.id), latest(Delivery, Delivery.id), [tuple(r) for r in downloads],
                   latest(MailEvent, MailEvent.id))

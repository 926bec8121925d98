"""The sender's reputation: each digest's hard-bounce and complaint rates, and the guard that pauses a digest
whose rates pass the limits (DIGEST_MAX_HARD_BOUNCE_RATE, DIGEST_MAX_COMPLAINT_RATE, once DIGEST_RATE_MIN_SENT
of its mails have gone)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from flask import current_app
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from ..models import Delivery, DeliveryStatus, Digest, DigestStatus, MailEvent, utcnow
from . import digests

log = logging.getLogger(__name__)
HARD, COMPLAINT = "hard_bounce", "complaint"  # MailEvent.kind, as bounces/events names them
SENT = DeliveryStatus.SENT.value
# Mails a receiving server answered for good: accepted (sent), or refused at the reply (failed, with the time of the
# refusal in sent_at); a mail that gave up after temporary failures has no sent_at and counts in neither.
ANSWERED = (Delivery.status.in_([SENT, DeliveryStatus.FAILED.value]), Delivery.sent_at.is_not(None))


@dataclass(frozen=True)
class Rates:
    sent: int
    hard_bounces: int
    complaints: int

    @property
    def hard_bounce_rate(self) -> float | None:
        return self.hard_bounces / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complaints / self.sent if self.sent else None

    def as_json(self) -> dict:
        return {"hard_bounces": self.hard_bounces, "complaints": self.complaints,
                "hard_bounce_rate": self.hard_bounce_rate, "complaint_rate": self.complaint_rate}


def digest_rates(session: Session, digest_ids: list[int], since: datetime | None = None,
                 sent: dict[int, int] | None = None) -> dict[int, Rates]:
    """Each digest's mails sent (accepted or refused by the server), and how many of them came back as a hard bounce or a complaint (one each at most,
    however many reports say so); with `since`, only mails sent from then on. Two grouped queries, or one when the
    caller has the mails sent already (the dashboard reads them from people/tallies)."""
    if not digest_ids:
        return {}
    window = (Delivery.sent_at >= since,) if since is not None else ()
    if sent is None:
        sent = dict(session.execute(select(Delivery.digest_id, func.count())
                                    .where(Delivery.digest_id.in_(digest_ids), *ANSWERED, *window)
                                    .group_by(Delivery.digest_id)).all())
    events: dict[tuple[int, str], int] = {}
    rows = session.execute(select(Delivery.digest_id, MailEvent.kind, func.count(distinct(MailEvent.delivery_id)))
                           .join(Delivery, Delivery.id == MailEvent.delivery_id)
                           .where(Delivery.digest_id.in_(digest_ids), MailEvent.kind.in_([HARD, COMPLAINT]), *window)
                           .group_by(Delivery.digest_id, MailEvent.kind))
    for digest_id, kind, count in rows:
        events[(digest_id, kind)] = count
    return {i: Rates(sent.get(i, 0), events.get((i, HARD), 0), events.get((i, COMPLAINT), 0)) for i in digest_ids}


def recent_rates(session: Session, days: int = 30, sent: int | None = None) -> Rates:
    """All mail sent in the last `days` days, and the hard bounces and complaints received in them. With `sent`,
    the mails the caller counted in the last `days` UTC days, today included (people/tallies), the events are
    those of the same days."""
    if sent is None:
        since = utcnow() - timedelta(days=days)
        sent = session.scalar(select(func.count()).select_from(Delivery)
                              .where(*ANSWERED, Delivery.sent_at >= since)) or 0
    else:
        since = datetime.combine(utcnow().date() - timedelta(days=days - 1), time.min, tzinfo=timezone.utc)
    counts = dict(session.execute(select(MailEvent.kind, func.count(distinct(MailEvent.delivery_id)))
                                  .where(MailEvent.kind.in_([HARD, COMPLAINT]), MailEvent.received_at >= since,
                                         MailEvent.delivery_id.is_not(None))
                                  .group_by(MailEvent.kind)).all())
    return Rates(sent, counts.get(HARD, 0), counts.get(COMPLAINT, 0))


def breach(rates: Rates) -> str | None:
    """What is wrong with these rates, in a sentence with the figures; None while they are within the limits or
    too few mails have gone for them to mean anything."""
    config = current_app.config
    if rates.sent < config["DIGEST_RATE_MIN_SENT"]:
        return None
    for count, rate, limit, what, setting in (
            (rates.hard_bounces, rates.hard_bounce_rate, config["DIGEST_MAX_HARD_BOUNCE_RATE"], "hard bounce",
             "DIGEST_MAX_HARD_BOUNCE_RATE"),
            (rates.complaints, rates.complaint_rate, config["DIGEST_MAX_COMPLAINT_RATE"], "spam complaint",
             "DIGEST_MAX_COMPLAINT_RATE")):
        if rate > limit:
            return (f"{count:,} {what}{'s' if count != 1 else ''} out of {rates.sent:,} mails sent ({rate:.2%}), above the limit of {limit:.2%} "
                    f"({setting})")
    return None


def guard(session: Session, digest_id: int) -> None:
    """Pause the digest if its rates now pass a limit; called where a bounce or complaint about one of its mails
    is recorded, in that transaction. After a resume only the mails sent since count."""
    digest = session.execute(select(Digest).where(Digest.id == digest_id).with_for_update()).scalar_one_or_none()
    if digest is None or digest.status != DigestStatus.SENDING.value:
        return
    problem = breach(digest_rates(session, [digest_id], digest.guard_since)[digest_id])
    if problem is None:
        return
    reason = (f"Paused by the reputation guard: {problem}. Mailbox providers throttle or junk the mail of senders "
              "past such rates. Look at the suppressions page, clean the list (the addresses that bounced or "
              "complained, and wherever they came from), then resume.")
    try:
        digests.pause(session, digest, reason=reason)
    except digests.DigestError:
        return  # every mail of it has gone already: nothing left to hold
    log.warning("digest %s paused: %s", digest_id, problem)

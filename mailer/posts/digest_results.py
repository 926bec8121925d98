"""Each digest's delivery results: counted from the ledger while it sends, kept on the digest once it is done."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Delivery, DeliveryStatus, Digest, DigestStatus, aware, utcnow

PENDING = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value, DeliveryStatus.HELD.value)


@dataclass
class Result:
    id: int
    subject: str
    status: str  # scheduled, sending, paused, cancelled, sent
    recipients: int
    sent: int
    failed: int
    skipped: int
    pending: int
    created_at: datetime
    send_at: datetime | None = None  # when a scheduled digest falls due
    finished_at: datetime | None = None  # when its last mail was sent, failed or skipped

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def percent(self) -> int:
        return 100 if not self.recipients else min(100, round(100 * self.done / self.recipients))

    def as_json(self) -> dict:
        moments = {name: _iso(getattr(self, name)) for name in ("created_at", "send_at", "finished_at")}
        return {**asdict(self), **moments, "percent": self.percent, "done": self.done}


def results(session: Session, digests: list[Digest]) -> list[Result]:
    """Results in the order given; one grouped query for the digests still in progress. Caller commits."""
    # A scheduled digest owes nothing yet: no rows is not "finished".
    live = [d.id for d in digests if d.finished_at is None and d.status != DigestStatus.SCHEDULED.value]
    counts: dict[int, dict[str, int]] = {i: {} for i in live}
    if live:
        rows = session.execute(select(Delivery.digest_id, Delivery.status, func.count())
                               .where(Delivery.digest_id.in_(live)).group_by(Delivery.digest_id, Delivery.status))
        for digest_id, status, count in rows:
            counts[digest_id][status] = count
    return [_result(d, counts.get(d.id)) for d in digests]


def _result(digest: Digest, counts: dict[str, int] | None) -> Result:
    if counts is not None:
        pending = sum(counts.get(s, 0) for s in PENDING)
        sent, failed, skipped = counts.get("sent", 0), counts.get("failed", 0), counts.get("skipped", 0)
        if pending == 0 and not digest.testing:
            # Sent, failed and skipped are final: these counts can no longer change (a subject test's rest is
            # still to come).
            digest.sent_count, digest.failed_count, digest.skipped_count = sent, failed, skipped
            digest.finished_at = utcnow()
    else:
        pending, sent, failed, skipped = 0, digest.sent_count, digest.failed_count, digest.skipped_count
    status = digest.status
    if status in (DigestStatus.SENDING.value, DigestStatus.PAUSED.value) and pending == 0 and not digest.testing:
        status = "sent"  # paused while its last mails were in a worker's hands: nothing is held, all went
    return Result(digest.id, digest.subject, status, digest.recipients, sent or 0, failed or 0, skipped or 0, pending,
                  aware(digest.created_at), digest.send_at and aware(digest.send_at),
                  digest.finished_at and aware(digest.finished_at))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def latest(session: Session, limit: int, before_id: int | None = None) -> list[Digest]:
    query = select(Digest).order_by(Digest.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Digest.id < before_id)
    return list(session.scalars(query))

"""Each digest's delivery results: counted from the ledger while it sends, kept on the digest once it is done."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Delivery, DeliveryStatus, Digest, DigestStatus, utcnow

PENDING = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value, DeliveryStatus.HELD.value)


@dataclass
class Result:
    id: int
    subject: str
    status: str  # sending, paused, cancelled, sent
    recipients: int
    sent: int
    failed: int
    skipped: int
    pending: int
    created_at: datetime

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def percent(self) -> int:
        return 100 if not self.recipients else min(100, round(100 * self.done / self.recipients))

    def as_json(self) -> dict:
        return {**asdict(self), "created_at": self.created_at.isoformat(), "percent": self.percent,
                "done": self.done}


def results(session: Session, digests: list[Digest]) -> list[Result]:
    """Results in the order given; one grouped query for the digests still in progress. Caller commits."""
    live = [d.id for d in digests if d.finished_at is None]
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
        if pending == 0:
            # Sent, failed and skipped are final: these counts can no longer change.
            digest.sent_count, digest.failed_count, digest.skipped_count = sent, failed, skipped
            digest.finished_at = utcnow()
    else:
        pending, sent, failed, skipped = 0, digest.sent_count, digest.failed_count, digest.skipped_count
    status = digest.status
    if status in (DigestStatus.SENDING.value, DigestStatus.PAUSED.value) and pending == 0:
        status = "sent"  # paused while its last mails were in a worker's hands: nothing is held, all went
    return Result(digest.id, digest.subject, status, digest.recipients, sent, failed, skipped, pending,
                  digest.created_at)


def latest(session: Session, limit: int, before_id: int | None = None) -> list[Digest]:
    query = select(Digest).order_by(Digest.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Digest.id < before_id)
    return list(session.scalars(query))

"""Digests that wait for a time: the posts are chosen when scheduled, the mails owed only when it falls due."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Digest, DigestStatus, aware, utcnow
from .digests import DigestError, compose_digest, start_digest
from .segments import EVERYONE, Recipients


def read_send_at(value: object, naive_is_utc: bool = False) -> datetime:
    """An ISO 8601 date and time with its offset ("2026-12-24T09:00+01:00"), as UTC; `naive_is_utc` takes one
    without an offset (a datetime-local input, which the console labels UTC) as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip()) if isinstance(value, str) and value.strip() else None
    except ValueError:
        moment = None
    if moment is None:
        raise DigestError(f"send_at {value!r} is not a date and time: give one in ISO 8601 with its offset, "
                          "e.g. 2026-12-24T09:00:00+01:00", field="send_at")
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise DigestError(f"send_at {value!r} has no offset: add one (+00:00 or Z for UTC) so that the time "
                              "is not read in the wrong zone", field="send_at")
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def schedule_digest(session: Session, send_at: datetime, subject: str | None = None, intro: str | None = None,
                    post_ids: list[int] | None = None, audience: str = "every",
                    now: datetime | None = None, to: Recipients = EVERYONE,
                    local_time: str | None = None, **values) -> Digest:
    """Choose the posts now and keep them for a digest that beat starts at `send_at`; nothing is owed before.
    With `local_time`, each reader's mail then falls due at their next such time after `send_at`; `values` are more
    of its columns (a subject test's)."""
    now = now or utcnow()
    if aware(send_at) <= now:
        raise DigestError(f"send_at {aware(send_at).isoformat()} is not in the future (it is now "
                          f"{now.isoformat(timespec='minutes')}): pick a later time, or send the digest now",
                          field="send_at")
    return compose_digest(session, subject, intro, post_ids, audience, to, status=DigestStatus.SCHEDULED.value,
                          send_at=send_at, local_time=local_time, **values)


def start_due_digests(session: Session, now: datetime | None = None) -> list[Digest]:
    """Start every scheduled digest whose time has come (each once, however many callers race); caller commits."""
    due = session.scalars(select(Digest).where(Digest.status == DigestStatus.SCHEDULED.value,
                                               Digest.send_at <= (now or utcnow())).order_by(Digest.send_at))
    return [digest for digest in list(due) if start_digest(session, digest)]

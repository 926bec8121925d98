"""Digests sent at a time of day on each reader's own clock: "09:00" in every reader's time zone.

The due time of a reader's mail depends only on their zone, so it is worked out once per zone in use with
`zoneinfo` (on both databases: the same rule everywhere, and no zone name that PostgreSQL's own tz database
might not know), and the digest's rows are still one INSERT … SELECT, which picks each reader's time by zone.

On a day 09:00 does not happen or happens twice, it means what RFC 5545 (iCalendar) says and `zoneinfo` does
with fold=0: a time the clocks jump over is read with the offset before the jump (02:30 on a night clocks go
from 02:00 to 03:00 is 03:30), and a time that comes twice is the first of the two.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import current_app
from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.orm import Session

from ..models import Delivery, DeliveryStatus, Subscriber, Timestamp, aware

LOCAL_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def known_zone(name: object) -> str | None:
    """An IANA zone name as zoneinfo knows it ("Europe/Berlin"), or None for anything else: never an error."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return None
    return name if name in _known_zones() else None


def read_local_time(value: object) -> str:
    """A time of day as HH:MM on a 24-hour clock ("09:00"); anything else is a DigestError naming the field."""
    from .digests import DigestError

    if isinstance(value, str) and LOCAL_TIME.fullmatch(value.strip()):
        return value.strip()
    raise DigestError(f"local_time {value!r} is not a time of day: give hours and minutes on a 24-hour clock, "
                      "like \"09:00\"", field="local_time")


def author_zone() -> ZoneInfo:
    """The zone of readers whose browser told none (AUTHOR_TIME_ZONE, checked at start-up)."""
    return ZoneInfo(current_app.config.get("AUTHOR_TIME_ZONE") or "UTC")


def next_local(at: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first moment at or after `after` when clocks in `zone` show `at`, in UTC."""
    hours, minutes = map(int, at.split(":"))
    day = aware(after).astimezone(zone).date()
    while True:
        moment = _on(day, time(hours, minutes), zone)
        if moment >= after:
            return moment
        day += timedelta(days=1)


def _on(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # fold=0: a skipped time takes the offset before the jump, a repeated one is its first occurrence.
    return datetime.combine(day, clock, tzinfo=zone).astimezone(timezone.utc)


def reader_due(session: Session, at: str, after: datetime, readers) -> ColumnElement:
    """Each reader's next `at` on their clock after `after`, as a column expression for the INSERT … SELECT.

    Worked out here once per zone in use among `readers` (a WHERE), then grouped by due time: the zones of one
    UTC offset share it, so a few dozen branches of `CASE WHEN time_zone IN (…) THEN …` cover hundreds of
    zones. (SQLite has no hash join: a VALUES list of the zones joined in instead cost it a scan of the list per
    reader, 20.7 s against 2.7 s at once for 200,000 readers in 400 zones; this CASE, 2.1 s: bench/README.md.)
    Readers with no zone, or one zoneinfo no longer knows, get the author's.
    """
    fallback = literal(next_local(at, author_zone(), after), Timestamp)
    in_use = session.scalars(select(Subscriber.time_zone).where(*readers, Subscriber.time_zone.is_not(None))
                             .distinct())
    zones_by_due: dict[datetime, list[str]] = {}
    for zone in in_use:
        if _loads(zone):
            zones_by_due.setdefault(next_local(at, ZoneInfo(zone), after), []).append(zone)
    if not zones_by_due:
        return fallback
    return case(*((Subscriber.time_zone.in_(zones), literal(due, Timestamp)) for due, zones in
                  sorted(zones_by_due.items(), key=lambda item: -len(item[1]))), else_=fallback)


def _loads(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Waiting:
    """A digest's mails not yet due: how many fall due in each hour (UTC), for the progress page's chart."""
    hours: list[tuple[datetime, int]]

    @property
    def total(self) -> int:
        return sum(count for _, count in self.hours)

    @property
    def last(self) -> datetime | None:
        return self.hours[-1][0] if self.hours else None

    def every_hour(self) -> list[tuple[datetime, int]]:
        """Each hour from the first to the last, those without mail too: a time axis for a chart."""
        if not self.hours:
            return []
        counts, hour, last = dict(self.hours), self.hours[0][0], self.hours[-1][0]
        filled = []
        while hour <= last:
            filled.append((hour, counts.get(hour, 0)))
            hour += timedelta(hours=1)
        return filled

    def as_json(self) -> dict:
        return {"waiting": self.total,
                "waiting_by_hour": [{"hour": hour.isoformat(), "mails": count} for hour, count in self.hours]}


def waiting_for(session: Session, digest, now: datetime) -> Waiting:
    """What waits of a digest sent at a local time; nothing, without reading the ledger, for any other digest."""
    return waiting(session, digest.id, now) if digest.local_time else Waiting([])


def waiting(session: Session, digest_id: int, now: datetime) -> Waiting:
    """The digest's first tries that wait for their readers' time, by the hour they fall due.

    Grouped by the exact due time (a few dozen of them: one per UTC offset in use), then into hours here, so the
    SQL is the same on both databases.
    """
    rows = session.execute(select(Delivery.next_attempt_at, func.count())
                           .where(Delivery.digest_id == digest_id, Delivery.status.in_(
                               [DeliveryStatus.QUEUED.value, DeliveryStatus.HELD.value]),
                                  Delivery.attempts == 0, Delivery.next_attempt_at > now)
                           .group_by(Delivery.next_attempt_at))
    hours: dict[datetime, int] = {}
    for due, count in rows:
        hour = aware(due).replace(minute=0, second=0, microsecond=0)
        hours[hour] = hours.get(hour, 0) + count
    return Waiting(sorted(hours.items()))

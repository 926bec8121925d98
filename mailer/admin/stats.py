"""The dashboard's numbers: subscribers by status, and signups, their confirmations and imports per day."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy.orm import Session

from ..models import Status
from ..people import tallies

DAYS = 90


@dataclass
class Day:
    day: date
    signups: int  # through a form or the API; imports are counted apart
    confirmed: int  # of those signups
    imported: int = 0

    @property
    def rate(self) -> float | None:
        return self.confirmed / self.signups if self.signups else None


@dataclass
class Snapshot:
    statuses: dict[str, int]
    days: list[Day]
    taken_at: datetime
    sent_recently: int  # mails the servers answered in the last `rate_days` days
    digests_sent: dict[int, int]  # the same for each of `digest_ids`, all time


def snapshot(session: Session, digest_ids: Sequence[int] = (), rate_days: int = 30, days: int = DAYS) -> Snapshot:
    """Subscribers by status, and the last `days` days (UTC, oldest first): signups that day, how many of them
    have confirmed since, and imports; the mails sent for the rates. One read of the tallies: exact at every visit."""
    taken_at = datetime.now(timezone.utc)
    window = [taken_at.date() - timedelta(days=days - 1 - i) for i in range(days)]
    statuses = [f"status:{s.value}" for s in Status]
    series = ("signups", "signups_confirmed", "imports")
    sent = [tallies.day_counter("answered", d) for d in window[-rate_days:]]
    digests = {i: f"digest_answered:{i}" for i in digest_ids}
    counts = tallies.read(session, statuses + sent + list(digests.values())
                          + [tallies.day_counter(p, d) for d in window for p in series])
    return Snapshot({s.value: counts[f"status:{s.value}"] for s in Status},
                    [Day(d, *(counts[tallies.day_counter(p, d)] for p in series)) for d in window], taken_at,
                    sum(counts[c] for c in sent), {i: counts[c] for i, c in digests.items()})


def confirmation_rate(days: list[Day]) -> float | None:
    signups = sum(d.signups for d in days)
    return sum(d.confirmed for d in days) / signups if signups else None

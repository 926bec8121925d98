"""Exact counts of subscribers and deliveries, kept as the rows change and read in milliseconds at any size.

Migration 0027's triggers append each statement's net change to `tally_delta`, in the statement's own
transaction, so a count never disagrees with the rows in any snapshot, and nothing waits on a shared counter row:
the deltas are inserts. `fold` (beat, every SWEEP_SECONDS) moves them into `tally`; a read sums both. `check`
(beat, hourly) counts the rows afresh in the same statement as the tallies, logs any drift and mends it.

The names: `status:<status>`; by the UTC day a subscriber was created, `signups:<day>` (forms and the API),
`signups_confirmed:<day>` (those of them confirmed since) and `imports:<day>`, with `imported` for all time;
`confirmations:<day>` by the UTC day of `confirmed_at`; `delivery_status:<status>`, `delivery_kind:<kind>`, and
for mail the server answered (posts/reputation's ANSWERED) `answered:<day of sent_at>` and `digest_answered:<id>`.
"""
from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import date

from sqlalchemy import (
    String,
    any_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from ..dialect import on_postgresql
from ..models import Delivery, Subscriber, Tally, tally_delta
from ..posts import reputation

log = logging.getLogger(__name__)

_FOLD = {
    # One statement: the rows it deletes are exactly the ones it adds up, whatever commits meanwhile.
    "postgresql": ["WITH moved AS (DELETE FROM tally_delta RETURNING counter, n)"
                   " INSERT INTO tally (counter, value) SELECT counter, sum(n) FROM moved GROUP BY counter"
                   " ORDER BY counter ON CONFLICT (counter) DO UPDATE SET value = tally.value + excluded.value"],
    # SQLite writes one transaction at a time: nothing is added between the two.
    "sqlite": ["INSERT INTO tally (counter, value) SELECT counter, sum(n) FROM tally_delta WHERE true"
               " GROUP BY counter ON CONFLICT (counter) DO UPDATE SET value = tally.value + excluded.value",
               "DELETE FROM tally_delta"],
}


def day_counter(prefix: str, day: date) -> str:
    return f"{prefix}:{day.isoformat()}"


def read(session: Session, names: Collection[str] = (), prefixes: Collection[str] = ()) -> dict[str, int]:
    """The counters by these names (0 for one never counted) and every counter starting with one of `prefixes`."""
    # One array parameter on PostgreSQL: psycopg takes 4 ms to convert a query of 600 named parameters.
    listed = bindparam("names", list(names), type_=ARRAY(String)) if on_postgresql(session) else None

    def wanted(column):
        named = column == any_(listed) if listed is not None else column.in_(list(names))
        return or_(named, *(column.startswith(p, autoescape=True) for p in prefixes))

    both = union_all(select(Tally.counter, Tally.value.label("n")).where(wanted(Tally.counter)),
                     select(tally_delta.c.counter, tally_delta.c.n).where(wanted(tally_delta.c.counter))).subquery()
    found = dict.fromkeys(names, 0)
    found.update(session.execute(select(both.c.counter, func.sum(both.c.n)).group_by(both.c.counter)).all())
    return {name: int(n) for name, n in found.items()}


def fold(session: Session) -> None:
    """Move the deltas into the tallies; the caller commits."""
    for statement in _FOLD["postgresql" if on_postgresql(session) else "sqlite"]:
        session.execute(text(statement))


def check(session: Session) -> dict[str, tuple[int, int]]:
    """Count every row afresh against the tallies (one statement, one snapshot); log and mend each counter that
    drifted. Returns {counter: (kept, fresh)} of those; the caller commits."""
    fresh = _fresh_counts(session).subquery()
    kept = union_all(select(Tally.counter, Tally.value.label("n")),
                     select(tally_delta.c.counter, tally_delta.c.n)).subquery()
    both = union_all(select(fresh.c.counter, fresh.c.n.label("fresh"), literal(0).label("kept")),
                     select(kept.c.counter, literal(0), kept.c.n)).subquery()
    rows = session.execute(select(both.c.counter, func.sum(both.c.kept), func.sum(both.c.fresh))
                           .group_by(both.c.counter).having(func.sum(both.c.kept) != func.sum(both.c.fresh))).all()
    drift = {counter: (int(k), int(f)) for counter, k, f in rows}
    if drift:
        log.warning("tallies drifted from the rows (kept, counted afresh): %s; mended",
                    ", ".join(f"{c} {k} != {f}" for c, (k, f) in sorted(drift.items())))
        # A delta of the difference seen in that snapshot: changes committed since carry their own deltas.
        session.execute(insert(tally_delta), [{"counter": c, "n": f - k} for c, (k, f) in drift.items()])
    return drift


def _fresh_counts(session: Session):
    """What the triggers of migration 0027 keep, counted over the rows: (counter, n) for every counter."""
    s, n, one = Subscriber, func.count(), literal_column("1")
    answered = reputation.ANSWERED
    if on_postgresql(session):
        def day(column):
            return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    else:
        day = func.date

    def name(prefix: str, value):
        return (literal(f"{prefix}:", String) + value).label("counter")

    return union_all(
        select(name("status", s.status), n.label("n")).group_by(one),
        select((case((s.imported, "imports:"), else_="signups:") + day(s.created_at)).label("counter"), n)
        .group_by(one),
        select(name("signups_confirmed", day(s.created_at)), n)
        .where(s.imported.is_(False), s.confirmed_at.is_not(None)).group_by(one),
        select(literal("imported", String).label("counter"), n).where(s.imported).having(n > 0),
        select(name("confirmations", day(s.confirmed_at)), n).where(s.confirmed_at.is_not(None)).group_by(one),
        select(name("delivery_status", Delivery.status), n).group_by(one),
        select(name("delivery_kind", Delivery.kind), n).group_by(one),
        select(name("answered", day(Delivery.sent_at)), n).where(*answered).group_by(one),
        select(name("digest_answered", cast(Delivery.digest_id, String)), n)
        .where(*answered, Delivery.digest_id.is_not(None)).group_by(one),
    )

"""Clicks into the click table with their verdict (posts/scanners): the batches from Redis and the direct path alike.

A click's verdict needs its neighbours: the other links of the same mail hit around the same second, and the
mail's hidden link. Both may arrive in another batch than the click, before or after it, so storing a batch also
looks at the clicks of its mails already stored, and marks those the batch shows to be a machine's.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..links import HIDDEN_LINK
from ..models import Click, Delivery, Open, Post, Subscriber, aware
from . import scanners

_NEAR = timedelta(seconds=scanners.BURST_SECONDS)


class Hit(NamedTuple):
    """One request to a tracked link, as the redirect saw it (the list item in Redis, in this order)."""
    delivery_id: int
    subscriber_id: int
    digest_id: int
    post_id: int  # HIDDEN_LINK for the mail's hidden link
    at: float  # epoch seconds
    method: str | None = None  # None: queued before evidence was kept
    user_agent: str | None = None
    network: bool = False

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.at, timezone.utc)


def store(session: Session, config: Mapping, hits: Sequence[Hit]) -> int:
    """Store the clicks of `hits` with their verdicts (caller commits); returns how many click rows were written.

    Hits of subscribers erased or posts deleted since are dropped. A hit of the hidden link is no click: it is kept
    on its delivery (`hidden_link_at`) and makes that mail's clicks and opens around it a machine's.
    """
    people = set(session.scalars(select(Subscriber.id).where(Subscriber.id.in_({h.subscriber_id for h in hits}))))
    posts = set(session.scalars(select(Post.id).where(Post.id.in_({h.post_id for h in hits}))))
    hits = [h for h in hits if h.subscriber_id in people and (h.post_id in posts or h.post_id == HIDDEN_LINK)]
    if not hits:
        return 0
    mails = {d: (sent, hidden) for d, sent, hidden in session.execute(
        select(Delivery.id, Delivery.sent_at, Delivery.hidden_link_at)
        .where(Delivery.id.in_({h.delivery_id for h in hits})))}
    traps = _hidden_link_hits(session, hits, mails)
    clicks = [h for h in hits if h.post_id != HIDDEN_LINK]
    stored = _stored_near(session, hits)
    seen: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for row in stored:
        seen[row.delivery_id].append((row.post_id, aware(row.at)))
    for h in clicks:
        seen[h.delivery_id].append((h.post_id, h.when))

    rows = []
    for h in clicks:
        sent = mails.get(h.delivery_id, (None, None))[0]
        at_once = scanners.links_at_once(h.when, seen[h.delivery_id])
        after = scanners.seconds_after(h.when, sent and aware(sent))
        reason = scanners.verdict(config, h.method, h.user_agent, h.network, after, at_once,
                                  hidden=scanners.near(h.when, traps[h.delivery_id]))
        rows.append({"delivery_id": h.delivery_id, "subscriber_id": h.subscriber_id, "digest_id": h.digest_id,
                     "post_id": h.post_id, "at": h.when, "human": reason is None, "method": h.method,
                     "user_agent": h.user_agent, "seconds_after_delivery": after, "links_at_once": at_once,
                     "machine_reason": reason})
    if rows:
        session.execute(Click.__table__.insert(), rows)
    _mark_stored(session, stored, seen, traps)
    return len(rows)


def _hidden_link_hits(session: Session, hits: Sequence[Hit], mails: dict) -> dict[int, list[datetime]]:
    """The times each mail's hidden link was hit (before and in this batch); records the new ones on the delivery
    and makes that mail's opens around them a machine's."""
    traps: dict[int, list[datetime]] = defaultdict(list)
    for delivery_id, (_, hidden) in mails.items():
        if hidden is not None:
            traps[delivery_id].append(aware(hidden))
    for h in hits:
        if h.post_id == HIDDEN_LINK and h.delivery_id in mails:
            traps[h.delivery_id].append(h.when)
            session.execute(update(Delivery).where(Delivery.id == h.delivery_id).values(hidden_link_at=h.when))
            session.execute(update(Open).where(Open.delivery_id == h.delivery_id, Open.human.is_(True),
                                               Open.at.between(h.when - _NEAR, h.when + _NEAR))
                            .values(human=False, machine_reason="hidden"))
    return traps


def _stored_near(session: Session, hits: Sequence[Hit]) -> list:
    """Clicks already stored of the batch's mails, within a burst of the batch's first and last hit."""
    times = [h.when for h in hits]
    return list(session.execute(
        select(Click.id, Click.delivery_id, Click.post_id, Click.at, Click.human)
        .where(Click.delivery_id.in_({h.delivery_id for h in hits}),
               Click.at.between(min(times) - _NEAR, max(times) + _NEAR))))


def _mark_stored(session: Session, stored: list, seen: dict, traps: dict) -> None:
    """Stored clicks that this batch shows to be a machine's (a burst with new ones, a hidden link hit near)."""
    changes = []
    for row in stored:
        at = aware(row.at)
        at_once = scanners.links_at_once(at, seen[row.delivery_id])
        hidden = scanners.near(at, traps[row.delivery_id])
        if row.human and (hidden or at_once > 1):
            changes.append({"id": row.id, "human": False, "links_at_once": at_once,
                            "machine_reason": "hidden" if hidden else "burst"})
    if changes:
        session.execute(update(Click), changes)


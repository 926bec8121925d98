"""A post counts as sent to the readers who received it: which posts each reader has had, and owes still.

A reader has had a post when a digest (of the same audience) carrying it owes them a row that was not skipped
or failed. A row that left the post out did so because the reader had it already, so the digest's posts are
enough to tell: no row's own list needs reading.
"""
from __future__ import annotations

import json
from typing import NamedTuple

from sqlalchemy import String, and_, case, func, literal, not_, or_, select
from sqlalchemy.orm import Session, aliased

from ..dialect import json_from_text
from ..models import Delivery, DeliveryStatus, Digest, DigestStatus, Subscriber, digest_post

HAD = [DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value, DeliveryStatus.SENT.value,
       DeliveryStatus.HELD.value]


def used_up(session: Session, audience: str, rules: dict | None, readers: list) -> set[int]:
    """The posts a digest for `audience` and `rules` may no longer carry: those a digest to everyone or to the same
    readers carried (but a cancelled one: a reader who comes later does not get the back catalogue), and those
    every reader of `readers` (conditions on Subscriber) had from digests to others, one anti-join per post."""
    # A resend carries its digest's posts again, to readers of that digest: the digest itself says what went.
    digests = session.execute(select(Digest.id, Digest.rules, Digest.status)
                              .where(Digest.audience == audience, Digest.follows_id.is_(None)))
    same, others = set(), set()
    for digest_id, its_rules, status in digests:
        if its_rules in (None, rules or None) and status != DigestStatus.CANCELLED.value:
            same.add(digest_id)
        elif status != DigestStatus.SCHEDULED.value:
            others.add(digest_id)
    carried = session.execute(select(digest_post.c.digest_id, digest_post.c.post_id).where(
        digest_post.c.digest_id.in_(same | others))).all()
    used = {post_id for digest_id, post_id in carried if digest_id in same}
    carriers: dict[int, list[int]] = {}
    for digest_id, post_id in carried:
        if post_id not in used:
            carriers.setdefault(post_id, []).append(digest_id)
    for post_id, digest_ids in carriers.items():
        had = select(Delivery.id).where(Delivery.subscriber_id == Subscriber.id, Delivery.digest_id.in_(digest_ids),
                                        Delivery.status.in_(HAD))
        if not session.scalar(select(select(Subscriber.id).where(*readers, not_(had.exists())).exists())):
            used.add(post_id)
    return used


class Owed(NamedTuple):
    """What the INSERT … SELECT of a digest needs to leave out, reader by reader, the posts they had."""

    joins: list        # (alias, on clause): the reader's row in each earlier digest that shares posts, if any
    payload: object    # {} or an SQL expression: {"post_ids": [...]} when a reader's posts differ from the digest's
    some_left: list    # conditions: at least one post is left for the reader

    def select_from(self):
        table = Subscriber.__table__
        for alias, on in self.joins:
            table = table.outerjoin(alias, on)
        return table


def owed_posts(session: Session, digest: Digest, extra: dict | None = None) -> Owed:
    """The posts each reader is owed of `digest`: its own, less those an earlier digest gave them; `extra`: more of
    every row's payload (a subject test's variant)."""
    extra = extra or {}
    if digest.follows_id is not None:
        return Owed([], extra, [])  # a resend: the same posts again, to readers who had them, on purpose
    mine = list(session.scalars(select(digest_post.c.post_id).where(digest_post.c.digest_id == digest.id)
                                .order_by(digest_post.c.position)))
    sharing: dict[int, set[int]] = {}
    for earlier, post_id in session.execute(
            select(digest_post.c.digest_id, digest_post.c.post_id).join(Digest, Digest.id == digest_post.c.digest_id)
            .where(digest_post.c.post_id.in_(mine), Digest.id != digest.id, Digest.audience == digest.audience,
                   Digest.status != DigestStatus.SCHEDULED.value, Digest.follows_id.is_(None))):
        sharing.setdefault(earlier, set()).add(post_id)
    if not sharing:
        return Owed([], extra, [])
    joins, had = [], {post_id: [] for post_id in mine}
    for earlier, posts in sorted(sharing.items()):
        row = aliased(Delivery, name=f"had_{earlier}")
        joins.append((row, and_(row.digest_id == earlier, row.subscriber_id == Subscriber.id, row.status.in_(HAD))))
        for post_id in posts:
            had[post_id].append(row.id.is_not(None))
    return Owed(joins, _payload(session, mine, had, extra), [] if any(not h for h in had.values()) else
                [or_(*(not_(or_(*had[p])) for p in mine))])


def _payload(session: Session, mine: list[int], had: dict[int, list], extra: dict):
    """'{"post_ids": [3, 5]}' made in SQL for a reader who had some of the posts, '{}' for one who had none (each
    with `extra`'s keys first)."""
    listed = literal("")
    for post_id in mine:
        entry = literal(f",{post_id}")
        listed = listed + (case((or_(*had[post_id]), ""), else_=entry) if had[post_id] else entry)
    start = json.dumps({**extra, "post_ids": []})[:-2]  # '{"post_ids": ['
    had_some = or_(*(h for hs in had.values() for h in hs))
    return json_from_text(session, case((had_some, literal(start, String) + func.substr(listed, 2) + "]}"),
                                        else_=json.dumps(extra)))

"""Clicks and opens of digest mail: recorded from signed links, counted per digest and per subscriber."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import distinct, func, select, text
from sqlalchemy.orm import Session

from ..dialect import on_postgresql
from ..models import Click, Digest, Open, Post, Subscriber, digest_post, utcnow
from . import click_buffer


def record_click(session: Session, delivery_id: int, subscriber_id: int, digest_id: int, post_id: int,
                 signed_url: str | None = None) -> str | None:
    """Where the click goes, with the click recorded; None when the post is gone. Caller commits.

    Links sent since the post's URL is signed into them (`signed_url`) go there at once, their click queued in
    Redis (click_buffer). Older links, or any link while Redis is away, read the URL from the post's row and
    record the click in the database; a subscriber erased since the mail was sent still reaches the post,
    unrecorded.
    """
    if signed_url is not None and click_buffer.push(current_app.config, delivery_id, subscriber_id, digest_id, post_id):
        return signed_url
    click = {"delivery_id": delivery_id, "subscriber_id": subscriber_id, "digest_id": digest_id, "post_id": post_id}
    if on_postgresql(session):
        # Read and record in one round trip, outside the session's transaction: a click is a single statement.
        with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return connection.execute(_CLICK_IN_ONE_STATEMENT, {**click, "at": utcnow()}).scalar()
    row = session.execute(select(Post.url, select(Subscriber.id).where(Subscriber.id == subscriber_id).exists())
                          .where(Post.id == post_id)).first()
    if row is None:
        return None
    url, known = row
    if known:
        session.execute(Click.__table__.insert().values(**click, at=utcnow()))
    return url


_CLICK_IN_ONE_STATEMENT = text("""
    WITH target AS (SELECT url FROM post WHERE id = :post_id),
         recorded AS (INSERT INTO click (delivery_id, subscriber_id, digest_id, post_id, at)
                      SELECT :delivery_id, :subscriber_id, :digest_id, :post_id, :at
                      WHERE EXISTS (SELECT FROM target) AND EXISTS (SELECT FROM subscriber WHERE id = :subscriber_id))
    SELECT url FROM target
""")


def record_open(session: Session, delivery_id: int, subscriber_id: int, digest_id: int) -> None:
    if session.get(Subscriber, subscriber_id) is not None:
        session.add(Open(delivery_id=delivery_id, subscriber_id=subscriber_id, digest_id=digest_id))


@dataclass
class PostClicks:
    url: str
    title: str
    clicks: int
    unique_clickers: int


@dataclass
class DigestClicks:
    posts: list[PostClicks]
    unique_clickers: int
    opens: int
    unique_openers: int

    def as_json(self) -> dict:
        return {"clicks": [asdict(p) for p in self.posts], "unique_clickers": self.unique_clickers,
                "opens": self.opens, "unique_openers": self.unique_openers}


def digest_clicks(session: Session, digest: Digest) -> DigestClicks:
    """Clicks and unique clickers per post of the digest (posts nobody clicked included, in the digest's order)."""
    click_buffer.drain(session, current_app.config)
    counted = (select(Click.post_id, func.count().label("clicks"), func.count(distinct(Click.subscriber_id)).label("people"))
               .where(Click.digest_id == digest.id).group_by(Click.post_id).subquery())
    rows = session.execute(
        select(Post.url, Post.title, func.coalesce(counted.c.clicks, 0), func.coalesce(counted.c.people, 0))
        .join(digest_post, digest_post.c.post_id == Post.id)
        .outerjoin(counted, counted.c.post_id == Post.id)
        .where(digest_post.c.digest_id == digest.id).order_by(digest_post.c.position))
    posts = [PostClicks(url, title, clicks, people) for url, title, clicks, people in rows]
    unique = session.scalar(select(func.count(distinct(Click.subscriber_id))).where(Click.digest_id == digest.id))
    opens, openers = session.execute(select(func.count(), func.count(distinct(Open.subscriber_id)))
                                     .where(Open.digest_id == digest.id)).one()
    return DigestClicks(posts, unique or 0, opens, openers)


@dataclass
class SubscriberClick:
    at: datetime
    digest_id: int
    title: str
    url: str


def subscriber_clicks(session: Session, subscriber_id: int, limit: int = 100) -> list[SubscriberClick]:
    """Their latest clicks, newest first."""
    click_buffer.drain(session, current_app.config)
    rows = session.execute(select(Click.at, Click.digest_id, Post.title, Post.url).join(Post, Post.id == Click.post_id)
                           .where(Click.subscriber_id == subscriber_id).order_by(Click.id.desc()).limit(limit))
    return [SubscriberClick(*row) for row in rows]


@dataclass
class DigestTotals:
    unique_openers: int = 0
    clicks: int = 0


def digest_totals(session: Session, digest_ids: list[int]) -> dict[int, DigestTotals]:
    """Readers who opened and clicks made, per digest, for a list of digests: two grouped queries."""
    click_buffer.drain(session, current_app.config)
    totals = {digest_id: DigestTotals() for digest_id in digest_ids}
    if not digest_ids:
        return totals
    for digest_id, openers in session.execute(select(Open.digest_id, func.count(distinct(Open.subscriber_id)))
                                              .where(Open.digest_id.in_(digest_ids)).group_by(Open.digest_id)):
        totals[digest_id].unique_openers = openers
    for digest_id, clicks in session.execute(select(Click.digest_id, func.count())
                                             .where(Click.digest_id.in_(digest_ids)).group_by(Click.digest_id)):
        totals[digest_id].clicks = clicks
    return totals

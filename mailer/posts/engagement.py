"""Clicks and opens of digest mail: recorded from signed links, counted per digest and per subscriber."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from ..links import HIDDEN_LINK
from ..models import Click, Delivery, Digest, Open, Post, Subscriber, aware, digest_post, utcnow
from . import click_buffer, click_store, scanners
from .click_store import Hit


def record_click(session: Session, delivery_id: int, subscriber_id: int, digest_id: int, post_id: int,
                 evidence: scanners.Evidence, signed_url: str | None = None) -> str | None:
    """Where the click goes, with the click recorded; None when the post is gone. Caller commits.

    Links sent since the post's URL is signed into them (`signed_url`) go there at once; older links read the URL
    from the post's row. The click and its evidence are queued in Redis (click_buffer), or without Redis stored at
    once with their verdict (click_store); a subscriber erased since the mail was sent still reaches the post,
    unrecorded.
    """
    url = signed_url
    if url is None and post_id != HIDDEN_LINK:
        url = session.scalar(select(Post.url).where(Post.id == post_id))
    if url is None:
        return None
    hit = Hit(delivery_id, subscriber_id, digest_id, post_id, time.time(), *evidence)
    if not click_buffer.push(current_app.config, hit):
        click_store.store(session, current_app.config, [hit])
    return url


def record_open(session: Session, delivery_id: int, subscriber_id: int, digest_id: int,
                evidence: scanners.Evidence) -> None:
    """Record a load of the pixel with its verdict (posts/scanners), unless the subscriber was erased since."""
    known = session.execute(select(Subscriber.id, Delivery.sent_at, Delivery.hidden_link_at).select_from(Subscriber)
                            .outerjoin(Delivery, Delivery.id == delivery_id)
                            .where(Subscriber.id == subscriber_id)).first()
    if known is None:
        return
    at, (_, sent, hidden) = utcnow(), known
    after = scanners.seconds_after(at, sent and aware(sent))
    reason = scanners.verdict(current_app.config, *evidence, after,
                              hidden=scanners.near(at, [aware(hidden)] if hidden else []))
    session.add(Open(delivery_id=delivery_id, subscriber_id=subscriber_id, digest_id=digest_id, at=at,
                     human=reason is None, method=evidence.method, user_agent=evidence.user_agent,
                     seconds_after_delivery=after, machine_reason=reason))


@dataclass
class PostClicks:
    url: str
    title: str
    clicks: int
    unique_clickers: int
    human_clicks: int = 0  # people's (posts/scanners); the rest are link scanners'
    machine_clicks: int = 0


@dataclass
class DigestClicks:
    posts: list[PostClicks]
    unique_clickers: int
    opens: int
    unique_openers: int
    human_clicks: int = 0
    machine_clicks: int = 0
    human_clickers: int = 0  # readers with a click of their own: machines' clicks make nobody a clicker
    human_opens: int = 0
    machine_opens: int = 0

    def as_json(self) -> dict:
        return {"clicks": [asdict(p) for p in self.posts], "unique_clickers": self.unique_clickers,
                "opens": self.opens, "unique_openers": self.unique_openers,
                **{name: getattr(self, name) for name in PEOPLE_AND_MACHINES}}


PEOPLE_AND_MACHINES = ("human_clicks", "machine_clicks", "human_clickers", "human_opens", "machine_opens")


def digest_clicks(session: Session, digest: Digest) -> DigestClicks:
    """Clicks and unique clickers per post of the digest (posts nobody clicked included, in the digest's order),
    people's and machines' apart."""
    click_buffer.drain(session, current_app.config)
    human = func.count().filter(Click.human.is_(True))
    counted = (select(Click.post_id, func.count().label("clicks"),
                      func.count(distinct(Click.subscriber_id)).label("people"), human.label("human"))
               .where(Click.digest_id == digest.id).group_by(Click.post_id).subquery())
    figures = (func.coalesce(c, 0) for c in (counted.c.clicks, counted.c.people, counted.c.human))
    rows = session.execute(
        select(Post.url, Post.title, *figures)
        .join(digest_post, digest_post.c.post_id == Post.id)
        .outerjoin(counted, counted.c.post_id == Post.id)
        .where(digest_post.c.digest_id == digest.id).order_by(digest_post.c.position))
    posts = [PostClicks(url, title, clicks, people, people_s, clicks - people_s)
             for url, title, clicks, people, people_s in rows]
    unique, clicks, human_clicks, human_clickers = session.execute(
        select(func.count(distinct(Click.subscriber_id)), func.count(), human,
               func.count(distinct(Click.subscriber_id)).filter(Click.human.is_(True)))
        .where(Click.digest_id == digest.id)).one()
    opens, openers, human_opens = session.execute(
        select(func.count(), func.count(distinct(Open.subscriber_id)), func.count().filter(Open.human.is_(True)))
        .where(Open.digest_id == digest.id)).one()
    return DigestClicks(posts, unique or 0, opens, openers, human_clicks, clicks - human_clicks, human_clickers,
                        human_opens, opens - human_opens)


@dataclass
class SubscriberClick:
    at: datetime
    digest_id: int
    title: str
    url: str
    human: bool = True
    machine_reason: str | None = None  # a key of scanners.REASONS

    @property
    def why(self) -> str | None:
        return scanners.REASONS.get(self.machine_reason or "")


def subscriber_clicks(session: Session, subscriber_id: int, limit: int = 100) -> list[SubscriberClick]:
    """Their latest clicks, newest first, each marked a person's or a machine's."""
    click_buffer.drain(session, current_app.config)
    rows = session.execute(select(Click.at, Click.digest_id, Post.title, Post.url, Click.human, Click.machine_reason)
                           .join(Post, Post.id == Click.post_id)
                           .where(Click.subscriber_id == subscriber_id).order_by(Click.id.desc()).limit(limit))
    return [SubscriberClick(*row) for row in rows]


def subscriber_opens(session: Session, subscriber_id: int, limit: int = 100) -> list[SubscriberClick]:
    """Their latest opens, newest first, marked alike (no post: `title` and `url` are empty)."""
    rows = session.execute(select(Open.at, Open.digest_id, Open.human, Open.machine_reason)
                           .where(Open.subscriber_id == subscriber_id).order_by(Open.id.desc()).limit(limit))
    return [SubscriberClick(at, digest_id, "", "", human, reason) for at, digest_id, human, reason in rows]


def subscriber_events(session: Session, subscriber_id: int, limit: int = 100) -> list[SubscriberClick]:
    """Their latest clicks and opens together, newest first: what the console's subscriber page lists."""
    events = subscriber_clicks(session, subscriber_id, limit) + subscriber_opens(session, subscriber_id, limit)
    return sorted(events, key=lambda e: aware(e.at), reverse=True)[:limit]


@dataclass
class DigestTotals:
    unique_openers: int = 0
    clicks: int = 0


def digest_totals(session: Session, digest_ids: list[int]) -> dict[int, DigestTotals]:
    """Readers who opened and clicks made, per digest, for a list of digests: two grouped queries. People's only:
    machines' (posts/scanners) are on each digest's own page."""
    click_buffer.drain(session, current_app.config)
    totals = {digest_id: DigestTotals() for digest_id in digest_ids}
    if not digest_ids:
        return totals
    for digest_id, openers in session.execute(select(Open.digest_id, func.count(distinct(Open.subscriber_id)))
                                              .where(Open.digest_id.in_(digest_ids), Open.human.is_(True))
                                              .group_by(Open.digest_id)):
        totals[digest_id].unique_openers = openers
    for digest_id, clicks in session.execute(select(Click.digest_id, func.count())
                                             .where(Click.digest_id.in_(digest_ids), Click.human.is_(True))
                                             .group_by(Click.digest_id)):
        totals[digest_id].clicks = clicks
    return totals

"""Digests of new posts: choosing the posts, owing one mail per reader who wants it, and steering the send."""
from __future__ import annotations

import uuid
from calendar import monthrange
from datetime import datetime

from flask import current_app
from sqlalchemy import String, and_, cast, func, literal, or_, select, text, update
from sqlalchemy.orm import Session

from ..addresses import normalise_email
from ..dialect import on_postgresql
from ..mail.messages import has_control_character
from ..models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Post,
    Status,
    Subscriber,
    aware,
    digest_post,
    utcnow,
)
from ..outbox import ledger
from . import audiences, click_buffer, reader_posts
from .digest_results import results
from .local_time import reader_due
from .segments import EVERYONE, Recipients
from .store import clean_title

QUEUED, HELD, SENDING = DeliveryStatus.QUEUED.value, DeliveryStatus.HELD.value, DeliveryStatus.SENDING.value
AUDIENCES = ("every", "monthly")  # who a digest is for: Subscriber.digest_frequency


class NothingNew(Exception):
    """Every published post has been in a digest already."""


class DigestError(ValueError):
    """A request about a digest that cannot be carried out as asked; the message says why, `field` which input."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def unsent_posts(session: Session, now: datetime | None = None, back_catalogue: bool = False,
                 audience: str = "every", rules: dict | None = None) -> list[Post]:
    """Published posts that no digest for `audience` and the same `rules` (but a cancelled one) has carried, and
    that some reader of `rules` has not had (reader_posts), oldest first.

    The monthly summary takes only the posts published in the month before `now`.
    """
    now = now or utcnow()
    used = reader_posts.used_up(session, audience, rules, readers(audience, now, rules))
    when = or_(Post.published_at.is_(None), Post.published_at <= now)
    if audience == "monthly":
        since = month_before(now)
        when = or_(Post.published_at.between(since, now), and_(Post.published_at.is_(None), Post.created_at >= since))
    return list(session.scalars(
        select(Post).where(Post.id.not_in(used), when, or_(Post.announce, literal(back_catalogue)))
        .order_by(Post.published_at.is_(None), Post.published_at, Post.id)
    ))


def month_before(moment: datetime) -> datetime:
    """The same time one calendar month earlier (the 31st of March gives the 28th or 29th of February)."""
    year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def choose_posts(session: Session, post_ids: list[int] | None = None, audience: str = "every",
                 rules: dict | None = None) -> list[Post]:
    if audience not in AUDIENCES:
        raise DigestError(f"audience must be one of {', '.join(AUDIENCES)}, not {audience!r}")
    # Posts picked by id may come from the back catalogue; otherwise only posts announced as new.
    if post_ids is not None and not post_ids:
        raise DigestError("no post was chosen (post_ids is empty): tick at least one post to put in the digest")
    posts = unsent_posts(session, back_catalogue=post_ids is not None, audience=audience, rules=rules)
    if post_ids is not None:
        unknown = set(post_ids) - {p.id for p in posts}
        if unknown:
            raise DigestError(f"posts {sorted(unknown)} do not exist or were already sent in a digest")
        posts = [p for p in posts if p.id in set(post_ids)]
    if not posts:
        if audience == "monthly":
            raise NothingNew("No post of the last month is new to the monthly readers: nothing to summarise.")
        raise NothingNew("There are no new posts since the last digest: publish a post or fetch the feed first.")
    return posts


def subject_for(subject: str | None, posts: list[Post]) -> str:
    """The subject given, once checked (one line of at most 200 characters), or one made from the posts."""
    return _clean_subject(subject) or default_subject(posts)


def default_subject(posts: list[Post]) -> str:
    """The newest post's title, and how many others come with it: "Title", "Title, and 2 more"."""
    # Cleaned again: a title stored before the cleaning opened encoded words may hide a line break in one.
    newest = clean_title(posts[-1].title)
    if len(posts) == 1:
        return newest[:200]
    return f"{newest[:150]}, and {len(posts) - 1} more"


def create_digest(session: Session, subject: str | None = None, intro: str | None = None,
                  post_ids: list[int] | None = None, audience: str = "every", to: Recipients = EVERYONE,
                  local_time: str | None = None, **values) -> Digest:
    """Make a digest of the unsent posts and owe it to every reader of `audience` (and `to`), in one statement;
    with `local_time` ("09:00"), each reader's mail falls due at their next 09:00 (posts/local_time); `values` are
    more of its columns (a subject test's, posts/subject_tests.read_test)."""
    digest = compose_digest(session, subject, intro, post_ids, audience, to, local_time=local_time, **values)
    digest.recipients = owe_now(session, digest)
    _tell_the_planner(session)
    return digest


def compose_digest(session: Session, subject: str | None, intro: str | None, post_ids: list[int] | None,
                   audience: str, to: Recipients = EVERYONE, **values) -> Digest:
    """The digest row and its posts, owing nothing yet; `values` are more of its columns."""
    if values.get("local_time") and values.get("subjects"):
        # The test's winner is chosen on the clicks of its first hours: its readers cannot wait for their 09:00.
        raise DigestError("a subject test goes to its test share at once: send it without a local time, or give "
                          "one subject", field="local_time")
    posts = choose_posts(session, post_ids, audience, to.rules)
    digest = Digest(subject=subject_for(subject, posts), intro=(intro or "").strip(), audience=audience,
                    rules=to.rules or None, segment_id=to.segment_id, **values)
    session.add(digest)
    session.flush()
    session.execute(digest_post.insert(), [{"digest_id": digest.id, "post_id": p.id, "position": n}
                                           for n, p in enumerate(posts)])
    return digest


def start_digest(session: Session, digest: Digest) -> bool:
    """Owe a scheduled digest's mails now, once: a conditional UPDATE lets one of two racing callers (two beats, a
    click and the beat) in; the other gets False and owes nothing."""
    if digest.follows_id is not None:
        # Who engaged decides who gets a resend: the clicks waiting in Redis first (this commits).
        click_buffer.drain(session, current_app.config)
    if not _turn(session, digest, DigestStatus.SCHEDULED.value, DigestStatus.SENDING.value):
        return False
    # Beat starts it a few seconds after send_at: its readers' time is counted from send_at, so a digest scheduled
    # for 09:00 UTC "at 09:00 local" reaches the readers in UTC today, not tomorrow.
    since = min(utcnow(), aware(digest.send_at)) if digest.send_at else None
    digest.recipients = owe_now(session, digest, since)
    _tell_the_planner(session)
    return True


def owe_now(session: Session, digest: Digest, since: datetime | None = None) -> int:
    """Owe the mails a digest owes when it starts: a resend's to the readers who did not engage, a subject test's
    to its test share, any other's to every reader of its audience (at their local time if it has one, counted
    from `since`)."""
    from . import resends, subject_tests  # both build on this module

    if digest.follows_id is not None:
        return resends.owe_resend(session, digest)
    if digest.subjects:
        return subject_tests.owe_test(session, digest)
    return owe_digest(session, digest.id, digest.audience, at=digest.local_time, since=since)


def digest_carrying(session: Session, post_ids: list[int], since: datetime, audience: str = "every",
                    rules: dict | None = None) -> Digest | None:
    """The newest digest for `audience` made since `since` with exactly these posts: where a form sent twice went
    the first time. (Another choice of posts is another digest, whatever they share.)"""
    recent = session.scalars(select(Digest).where(Digest.created_at >= since, Digest.audience == audience,
                                                  Digest.status != DigestStatus.CANCELLED.value,
                                                  Digest.follows_id.is_(None))
                             .order_by(Digest.id.desc()).limit(20))
    same = (d for d in recent if {p.id for p in d.posts} == set(post_ids) and (d.rules or None) == (rules or None))
    return next(same, None) if post_ids else None


def _turn(session: Session, digest: Digest, source: str, target: str) -> bool:
    """Move the digest from `source` to `target` if it still is `source` in the database (reloaded either way)."""
    moved = session.execute(update(Digest).where(Digest.id == digest.id, Digest.status == source)
                            .values(status=target).execution_options(synchronize_session=False),
                            execution_options={"preserve_rowcount": True}).rowcount
    session.refresh(digest)
    return moved == 1


def _tell_the_planner(session: Session) -> None:
    """ANALYZE the ledger after it grew by a digest (PostgreSQL; ~0.2 s whatever its size).

    Autovacuum would do it a minute or so later; until then the planner, counting on the ledger's old size,
    sorts every owed row for each claim of 50 instead of reading them from ix_delivery_due in order.
    """
    if on_postgresql(session):
        session.execute(text("ANALYZE delivery"))


def readers(audience: str = "every", now: datetime | None = None, rules: dict | None = None) -> list:
    """Who a digest for `audience` goes to: confirmed, that frequency chosen, not paused, not sunset (they did not
    answer the sunset rule's question, people/sunset), and chosen by `rules` (posts/audiences)."""
    now = now or utcnow()
    return [Subscriber.status == Status.CONFIRMED.value, Subscriber.digest_frequency == audience,
            or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now), Subscriber.sunset_at.is_(None),
            *audiences.conditions(rules, now)]


def owe_digest(session: Session, digest_id: int, audience: str = "every", *where, payload: dict | None = None,
               now: datetime | None = None, at: str | None = None, since: datetime | None = None) -> int:
    """INSERT … SELECT one delivery per reader of `audience`, of the digest's rules and of `where`, with a post they
    have not had (posts/reader_posts): no Python loop, whatever the list size. Every mail of a digest, whatever its
    part (a test's, the rest's, a resend's), has the key digest_key. With `at`, each row falls due at its reader's
    first `at` on their clock from `since` (default: now)."""
    now, digest = now or utcnow(), session.get(Digest, digest_id)
    owed = reader_posts.owed_posts(session, digest, payload or {})
    who = [*readers(audience, now, digest.rules), *where]
    due = {"next_attempt_at": reader_due(session, at, since or now, who)} if at else {}
    row = ledger.owed_row("digest", Subscriber.id, digest_key(digest_id), now, digest_id=digest_id,
                          payload=owed.payload, **due)
    rows = select(*ledger.as_select(row)).select_from(owed.select_from()).where(*who, *owed.some_left)
    insert = Delivery.__table__.insert().from_select(list(row), rows)
    return session.execute(insert, execution_options={"preserve_rowcount": True}).rowcount


def digest_key(digest_id: int):
    """The dedupe key of a reader's copy of a digest, as SQL over Subscriber.id: one copy each, never two."""
    return literal(f"digest:{digest_id}:") + cast(Subscriber.id, String)


def confirmed_count(audience: str = "every", rules: dict | None = None):
    """How many readers a digest for `audience` (and `rules`) would reach now."""
    return select(func.count()).select_from(Subscriber).where(*readers(audience, rules=rules))


def _clean_subject(subject: str | None) -> str | None:
    if subject is None or not subject.strip():
        return None
    if len(subject) > 200 or has_control_character(subject):
        # Encoded words count as a reader decodes them: "=?utf-8?q?=0D=0ABcc:…?=" is two lines.
        raise DigestError("the subject must be one line of at most 200 characters, without control characters "
                          "(also none inside an encoded word such as =?utf-8?q?…?=)", field="subject")
    return subject.strip()


def progress(session: Session, digest: Digest) -> dict:
    """Status and counts (from the ledger while it sends, kept on the digest once done), with its posts."""
    return {**results(session, [digest])[0].as_json(), "local_time": digest.local_time,
            "posts": [{"id": p.id, "title": p.title, "url": p.url} for p in digest.posts]}


def pause(session: Session, digest: Digest, reason: str | None = None) -> None:
    """Hold every mail not yet claimed; mails already in a worker's hands finish. `reason`: why, when the
    reputation guard pauses it rather than an admin."""
    _require(digest, {DigestStatus.SENDING.value}, "pause")
    _require_mail_left(session, digest, "pause")
    digest.status = DigestStatus.PAUSED.value
    digest.paused_reason = reason
    _move(session, digest.id, QUEUED, HELD)


def resume(session: Session, digest: Digest) -> None:
    """Send the held mails; after a pause by the reputation guard, the guard counts the mails sent from now on."""
    _require(digest, {DigestStatus.PAUSED.value}, "resume")
    digest.status = DigestStatus.SENDING.value
    if digest.paused_reason:
        digest.paused_reason, digest.guard_since = None, utcnow()
    _move(session, digest.id, HELD, QUEUED)


def cancel(session: Session, digest: Digest) -> bool:
    """Skip every mail not yet sent (a worker skips the claimed ones it has not made yet); its posts are then new
    again for the next digest. A scheduled digest is called off before it owes anything (True), unless beat started
    it that very moment: then its mails are skipped like any other's."""
    if digest.status == DigestStatus.SCHEDULED.value and _turn(session, digest, DigestStatus.SCHEDULED.value,
                                                                 DigestStatus.CANCELLED.value):
        return True
    _require(digest, {DigestStatus.SENDING.value, DigestStatus.PAUSED.value}, "cancel")
    _require_mail_left(session, digest, "cancel")
    digest.status = DigestStatus.CANCELLED.value
    session.execute(update(Delivery).where(Delivery.digest_id == digest.id, Delivery.status.in_([QUEUED, HELD]))
                    .values(status=DeliveryStatus.SKIPPED.value, last_error="digest cancelled"))
    return False


def _require_mail_left(session: Session, digest: Digest, action: str) -> None:
    """A digest whose every mail is sent, failed or skipped is finished: a cancel would offer its posts to the
    same readers again."""
    left = session.scalar(select(Delivery.id).where(Delivery.digest_id == digest.id,
                                                    Delivery.status.in_([QUEUED, SENDING, HELD])).limit(1))
    if left is None and not digest.testing:  # a subject test's rest is still to be owed
        raise DigestError(f"digest {digest.id} has finished sending: there is no mail left to {action}")


def _require(digest: Digest, allowed: set[str], action: str) -> None:
    if digest.status not in allowed:
        raise DigestError(f"digest {digest.id} is {digest.status}; only a digest that is {' or '.join(sorted(allowed))} can {action}")


def _move(session: Session, digest_id: int, source: str, target: str) -> None:
    session.execute(update(Delivery).where(Delivery.digest_id == digest_id, Delivery.status == source)
                    .values(status=target))


def send_test(session: Session, to: str, subject: str | None = None, intro: str | None = None,
              post_ids: list[int] | None = None) -> int:
    """Owe a test copy of the next digest to one address (an admin's), outside any subscriber's record."""
    address = normalise_email(to)
    posts = choose_posts(session, post_ids)
    payload = {"subject": subject_for(subject, posts), "intro": (intro or "").strip(),
               "post_ids": [p.id for p in posts]}
    key = f"test:{uuid.uuid4().hex}"
    ledger.queue(session, "test", None, key, recipient=address, **payload)
    return len(posts)

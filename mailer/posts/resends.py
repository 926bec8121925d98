"""Resending a digest, under a new subject, to its readers who did not engage: once per digest, now or later.

A resend is a digest of its own (its progress, pause and cancel are a digest's) that follows the first
(`follows_id`, unique: a second resend cannot be stored) and carries its posts without counting as their digest
(digests.unsent_posts reads only digests that follow none). It waits as a scheduled digest until its time, so who
gets it is decided when it starts (beat's start_due_digests, or at once): the readers whose copy of the digest was
sent, who still read that audience and made no human click (or open) on it. The sender's checks at send time
drop anyone unsubscribed, bounced or paused after that.
"""
from __future__ import annotations

from datetime import timedelta
from numbers import Real

from flask import current_app
from sqlalchemy import exists, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from ..models import Click, Delivery, DeliveryStatus, Digest, DigestStatus, Open, Subscriber, aware, digest_post, utcnow
from .digests import DigestError, owe_digest, subject_for

UNLESS = ("clicked", "opened")
LONGEST_DELAY = 720  # hours


class AlreadyResent(DigestError):
    """The digest has had its resend, or cannot have one now: a conflict, not a bad field."""


def read_resend(subject: object, after_hours: object = None, unless: object = None) -> tuple[str, float, str]:
    """The subject, the delay in hours and what counts as engaging, checked (DigestError names the field)."""
    if not isinstance(subject, str) or not subject.strip():
        raise DigestError('a resend needs a new subject: {"subject": "In case you missed it: …"}', field="subject")
    if after_hours is None:
        after_hours = 0
    if isinstance(after_hours, bool) or not isinstance(after_hours, Real) or not 0 <= after_hours <= LONGEST_DELAY:
        raise DigestError(f"after_hours must be a number of hours from 0 (now) to {LONGEST_DELAY}, not {after_hours!r}",
                          field="after_hours")
    unless = "clicked" if unless is None else unless
    if unless not in UNLESS:
        raise DigestError(f'unless must be "clicked" or "opened", not {unless!r}', field="unless")
    if unless == "opened" and not current_app.config.get("OPEN_TRACKING"):
        raise DigestError('opens are not counted (OPEN_TRACKING is off): resend unless "clicked"', field="unless")
    return subject_for(subject, []), float(after_hours), unless


def schedule_resend(session: Session, original: Digest, subject: str, after_hours: float = 0,
                    unless: str = "clicked") -> Digest:
    """Keep a resend of `original` for `after_hours` from now (checked by read_resend); caller starts it when it
    is due now (digests.start_digest) and commits. A resend stored meanwhile by another request rolls the
    caller's transaction back (AlreadyResent)."""
    _require_resendable(session, original, subject)
    resend = Digest(subject=subject, intro=original.intro, audience=original.audience, follows_id=original.id,
                    resend_unless=unless, status=DigestStatus.SCHEDULED.value,
                    send_at=utcnow() + timedelta(hours=after_hours))
    session.add(resend)
    try:
        session.flush()
    except IntegrityError:  # two requests at once: the unique follows_id let the other one in
        session.rollback()
        raise AlreadyResent(f"digest {original.id} has been resent already: a digest is resent at most once") from None
    posts = session.execute(select(digest_post.c.post_id, digest_post.c.position)
                            .where(digest_post.c.digest_id == original.id)).all()
    session.execute(insert(digest_post), [{"digest_id": resend.id, "post_id": p, "position": n} for p, n in posts])
    return resend


def _require_resendable(session: Session, original: Digest, subject: str) -> None:
    if original.follows_id is not None:
        raise AlreadyResent(f"digest {original.id} is itself a resend of digest {original.follows_id}: "
                            "resend that one, once")
    if original.status in (DigestStatus.SCHEDULED.value, DigestStatus.CANCELLED.value) or original.testing:
        state = "testing its subjects" if original.testing else original.status
        raise AlreadyResent(f"digest {original.id} is {state}: only a digest that went out can be resent")
    earlier = resend_of(session, original)
    if earlier is not None:
        raise AlreadyResent(f"digest {original.id} has been resent already (digest {earlier.id}): a digest is "
                            "resent at most once")
    if subject.casefold() == original.subject.casefold():
        raise DigestError("a resend goes under a new subject: this is the digest's own", field="subject")


def resend_of(session: Session, original: Digest) -> Digest | None:
    return session.scalar(select(Digest).where(Digest.follows_id == original.id))


def owe_resend(session: Session, resend: Digest) -> int:
    """Owe the resend, as it starts, to the readers whose copy of the digest was sent and who did not engage.
    A digest cancelled since is not resent: the resend is cancelled too."""
    original = session.get(Digest, resend.follows_id)
    if original.status == DigestStatus.CANCELLED.value:
        resend.status = DigestStatus.CANCELLED.value
        return 0
    first = aliased(Delivery)  # the digest's own rows, apart from the ones being inserted
    got_it = exists().where(first.digest_id == original.id, first.subscriber_id == Subscriber.id,
                            first.status == DeliveryStatus.SENT.value)
    return owe_digest(session, resend.id, resend.audience, got_it, ~engaged(original.id, resend.resend_unless))


def engaged(digest_id: int, unless: str | None):
    """SQL over Subscriber: a human click on the digest (or, for "opened", a human open or click: a click is
    read mail whose images were not loaded)."""
    clicked = exists().where(Click.digest_id == digest_id, Click.subscriber_id == Subscriber.id, Click.human)
    if unless != "opened":
        return clicked
    return or_(clicked, exists().where(Open.digest_id == digest_id, Open.subscriber_id == Subscriber.id, Open.human))


def summary(session: Session, digest: Digest) -> dict:
    """What the API and the console say of a digest's follow-ups: its resend, or the digest it follows."""
    if digest.follows_id is not None:
        return {"follows": digest.follows_id, "unless": digest.resend_unless}
    resend = resend_of(session, digest)
    return {"resend": None if resend is None else {
        "id": resend.id, "subject": resend.subject, "status": resend.status, "unless": resend.resend_unless,
        "send_at": resend.send_at and aware(resend.send_at).isoformat(), "recipients": resend.recipients}}

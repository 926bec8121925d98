"""Subject tests: 2 to 4 subjects, each sent to an equal part of a share of the readers; after a delay the subject
with the most human clickers (ties: the first) goes to the rest, once, by beat.

Every mail of the digest, test or rest, has the digest's one dedupe key per reader (digests.digest_key), so the
test readers and the rest are every reader once. The decision is a conditional UPDATE (winner IS NULL) in the
same transaction as the rest's INSERT … SELECT: two beats racing decide once, and a crash before the commit
leaves the test undecided for the next beat. The rest are the readers of the audience at the moment of the
decision who have no mail of it yet: people who joined during the test get the winner too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from numbers import Real

from flask import current_app
from sqlalchemy import BigInteger, case, distinct, exists, func, literal, select, text, update
from sqlalchemy.orm import Session, aliased

from ..models import Click, Delivery, DeliveryStatus, Digest, DigestStatus, Open, Subscriber, aware, utcnow
from . import click_buffer
from .digests import DigestError, digest_key, owe_digest, readers, subject_for

FEWEST, MOST = 2, 4
DEFAULT_SHARE, DEFAULT_HOURS, LONGEST_WAIT = 0.2, 4, 720
# Readers are ranked by (id × SPREAD + digest × SHIFT) mod PRIME: a scramble the same on both databases and in
# each of the statements that owe the variants, spread evenly over signup order, another set for each digest.
SPREAD, SHIFT, PRIME = 2654435761, 40503, 4294967291


def read_test(subjects: object, test_share: object = None, decide_after_hours: object = None) -> dict:
    """The columns of a subject test, checked (DigestError names the field); {} without subjects."""
    if subjects is None:
        if test_share is not None or decide_after_hours is not None:
            raise DigestError("test_share and decide_after_hours go with subjects: give 2 to 4 subjects to test",
                              field="subjects")
        return {}
    if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
        raise DigestError('subjects must be a list of 2 to 4 strings: ["One subject", "Another"]', field="subjects")
    cleaned = [subject_for(s, []) if s.strip() else "" for s in subjects]
    if "" in cleaned or not FEWEST <= len(cleaned) <= MOST or len({s.casefold() for s in cleaned}) < len(cleaned):
        raise DigestError(f"a subject test needs {FEWEST} to {MOST} different subjects, none empty "
                          f"({len(cleaned)} given)", field="subjects")
    share = _number(test_share, DEFAULT_SHARE, "test_share")
    if not 0 < share < 1:
        raise DigestError(f"test_share is the fraction of the readers in the test: above 0 and below 1, not {share}",
                          field="test_share")
    hours = _number(decide_after_hours, DEFAULT_HOURS, "decide_after_hours")
    if not 0 <= hours <= LONGEST_WAIT:
        raise DigestError(f"decide_after_hours must be from 0 to {LONGEST_WAIT}, not {hours}",
                          field="decide_after_hours")
    return {"subjects": cleaned, "test_share": float(share), "decide_after_hours": float(hours)}


def _number(value: object, default: float, field: str) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, Real) or value != value:
        raise DigestError(f"{field} must be a number, not {value!r}", field=field)
    return float(value)


def share_size(audience: int, share: float, variants: int) -> int:
    """How many readers each subject goes to: an equal part of `share` of the audience, at least one each while
    the audience has a reader for every subject."""
    if audience < variants:
        return 0
    return min(audience // variants, max(1, round(audience * share / variants)))


def owe_test(session: Session, digest: Digest) -> int:
    """Owe each subject to its part of the test share (one INSERT … SELECT per subject), and set when to decide."""
    now = utcnow()
    variants = len(digest.subjects)
    audience = session.scalar(select(func.count()).select_from(Subscriber).where(*readers(digest.audience, now, digest.rules)))
    each = share_size(audience, digest.test_share, variants)
    scramble = (Subscriber.id * literal(SPREAD, BigInteger) + literal(digest.id * SHIFT, BigInteger)) % PRIME
    ranked = (select(Subscriber.id, func.row_number().over(order_by=(scramble, Subscriber.id)).label("rank"))
              .where(*readers(digest.audience, now, digest.rules)).subquery())
    owed = 0
    for variant in range(variants if each else 0):
        chosen = select(ranked.c.id).where(ranked.c.rank <= each * variants, (ranked.c.rank - 1) % variants == variant)
        owed += owe_digest(session, digest.id, digest.audience, Subscriber.id.in_(chosen),
                           payload={"variant": variant}, now=now)
    # No test at all (fewer readers than subjects): the first subject goes to everyone at the next beat.
    digest.decide_at = now + timedelta(hours=digest.decide_after_hours if each else 0)
    return owed


def decide_due_tests(session: Session, now: datetime | None = None) -> list[Digest]:
    """Choose the winner of every test whose time has come and owe it to the rest (each once, however many
    callers race); caller commits. A paused digest waits for its resume, a cancelled one is never decided."""
    due = list(session.scalars(select(Digest.id).where(Digest.decide_at <= (now or utcnow()), Digest.winner.is_(None),
                                                      Digest.status == DigestStatus.SENDING.value)))
    if not due:
        return []
    click_buffer.drain(session, current_app.config)  # every click counted before the count (this commits)
    return [digest for digest in (session.get(Digest, i) for i in due) if decide(session, digest)]


def decide(session: Session, digest: Digest) -> bool:
    """Set the winner, unless another caller did (False), and owe it to the readers who have no mail of it yet."""
    winner = winner_of(human_clickers(session, digest))
    decided = session.execute(update(Digest).where(Digest.id == digest.id, Digest.winner.is_(None),
                                                   Digest.status == DigestStatus.SENDING.value)
                              .values(winner=winner, subject=digest.subjects[winner])
                              .execution_options(synchronize_session=False),
                              execution_options={"preserve_rowcount": True}).rowcount
    session.refresh(digest)
    if decided != 1:
        return False
    mailed = aliased(Delivery)
    has_one = exists().where(mailed.dedupe_key == digest_key(digest.id))
    digest.recipients += owe_digest(session, digest.id, digest.audience, ~has_one)
    return True


def winner_of(clickers: list[int]) -> int:
    """The subject with the most human clickers; of equals, the first."""
    return max(range(len(clickers)), key=lambda n: (clickers[n], -n)) if clickers else 0


def human_clickers(session: Session, digest: Digest) -> list[int]:
    """Readers who clicked a link of the digest as people (not a scanner), per subject of its test."""
    return [v.human_clickers for v in _counted(session, digest)]


@dataclass
class Variant:
    subject: str
    recipients: int = 0
    sent: int = 0
    human_clickers: int = 0
    human_openers: int = 0


def variants(session: Session, digest: Digest) -> dict | None:
    """A subject test's figures, per subject, with the winner once chosen; None for a digest without one."""
    if not digest.subjects:
        return None
    click_buffer.drain(session, current_app.config)
    counted = _counted(session, digest)
    return {"subjects": digest.subjects, "test_share": digest.test_share,
            "decide_at": digest.decide_at and aware(digest.decide_at).isoformat(),
            "state": "testing" if digest.winner is None else "decided", "winner": digest.winner,
            "winning_subject": None if digest.winner is None else digest.subjects[digest.winner],
            "variants": [asdict(v) for v in counted]}


def _counted(session: Session, digest: Digest) -> list[Variant]:
    """Per subject: its test readers, those sent, and the readers who clicked or opened as people."""
    found = [Variant(subject) for subject in digest.subjects]
    variant = Delivery.payload["variant"].as_integer()
    # Grouped by the label: PostgreSQL takes the JSON path's two bound parameters for two different expressions.
    by_variant = variant.label("variant")
    sent = func.sum(case((Delivery.status == DeliveryStatus.SENT.value, 1), else_=0))
    mails = select(by_variant, func.count(), sent).where(Delivery.digest_id == digest.id, variant.is_not(None))
    for n, recipients, sent_count in session.execute(mails.group_by(text("variant"))):
        found[n].recipients, found[n].sent = recipients, sent_count or 0
    for table, name in ((Click, "human_clickers"), (Open, "human_openers")):
        people = (select(by_variant, func.count(distinct(table.subscriber_id)))
                  .join(Delivery, Delivery.id == table.delivery_id)
                  .where(table.digest_id == digest.id, table.human, variant.is_not(None)))
        for n, count in session.execute(people.group_by(text("variant"))):
            setattr(found[n], name, count)
    return found

"""Saved segments, and whom a mail to many goes to: everyone, a segment, or the readers who took a magnet."""
from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import LeadMagnet, Segment, Status, Subscriber
from .audiences import RuleError, checked, conditions, describe


class Recipients(NamedTuple):
    """Who a digest goes to beyond its audience (every / monthly): no rules for everyone."""

    rules: dict | None = None
    segment_id: int | None = None
    label: str = "everyone"


EVERYONE = Recipients()


def create_segment(session: Session, name: object, rules: object) -> Segment:
    """A new saved segment; RuleError names what is wrong with the name or the rules."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise RuleError('"name" must be a string of 1 to 100 characters', "name")
    if session.scalar(select(Segment.id).where(Segment.name == name.strip())) is not None:
        raise RuleError(f"there is a segment called {name.strip()!r} already: pick another name", "name")
    segment = Segment(name=name.strip(), rules=checked(session, rules))
    session.add(segment)
    session.flush()
    return segment


def segment_count(session: Session, rules: dict | None) -> int:
    """How many confirmed readers the rules choose now (whatever digests they asked for)."""
    return session.scalar(select(func.count()).select_from(Subscriber).where(
        Subscriber.status == Status.CONFIRMED.value, *conditions(rules))) or 0


def segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.name)))


def recipients_of(session: Session, segment: object = None, magnet: object = None) -> Recipients:
    """Everyone, the segment with this id, or the readers who took the magnet with this slug; RuleError if unknown."""
    if segment is not None and magnet is not None:
        raise RuleError('give "segment" or "magnet", not both', "segment")
    if segment is not None:
        found = session.get(Segment, segment) if isinstance(segment, int) and 0 < segment < 2**63 and not isinstance(
            segment, bool) else None
        if found is None:
            raise RuleError(f"there is no segment {segment!r}: GET /api/v1/segments lists them", "segment")
        return Recipients(found.rules, found.id, found.name)
    if magnet is not None:
        title = session.scalar(select(LeadMagnet.title).where(LeadMagnet.slug == magnet)) if isinstance(
            magnet, str) else None
        if title is None:
            raise RuleError(f"there is no lead magnet {magnet!r}", "magnet")
        rules = {"magnets": [magnet]}
        return Recipients(rules, None, describe(rules))
    return EVERYONE


def audience_for(recipients: Recipients, audience: str | None) -> str:
    """The digest's audience: the one asked for, else the segment's preference, else every digest."""
    preference = (recipients.rules or {}).get("preference")
    if audience is not None and preference is not None and audience != preference:
        raise RuleError(f"segment {recipients.label!r} is for readers of the {preference} digest: send it with "
                        f'"audience": "{preference}" or leave audience out', "audience")
    return audience or preference or "every"


def as_json(segment: Segment, count: int | None = None) -> dict:
    shown = {"id": segment.id, "name": segment.name, "rules": segment.rules, "description": describe(segment.rules),
             "created_at": segment.created_at.isoformat()}
    return shown if count is None else {**shown, "count": count}

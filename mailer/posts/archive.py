"""The public archive: the digests that went out to readers, newest first, as anyone may read them."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Digest, DigestStatus

PAGE_SIZE = 20


def _public():
    # Sending or sent: a reader may follow "View in your browser" from the first mail of a digest on.
    # Paused and cancelled digests are not (yet) the author's word to everyone; test copies are no digests; a
    # resend is its digest again (its mail links to the digest's page). A subject test shows its digest's subject:
    # the first until the winner is chosen, the winner after.
    return select(Digest).where(Digest.status == DigestStatus.SENDING.value, Digest.recipients > 0,
                                Digest.follows_id.is_(None))


def page(session: Session, before_id: int | None = None, size: int = PAGE_SIZE) -> tuple[list[Digest], int | None]:
    """One page of archived digests, newest first, and the id to ask for the next (older) page, if any."""
    query = _public().order_by(Digest.id.desc()).limit(size + 1)
    if before_id:
        query = query.where(Digest.id < before_id)
    digests = list(session.scalars(query))
    return digests[:size], (digests[size - 1].id if len(digests) > size else None)


def archived(session: Session, digest_id: int) -> Digest | None:
    """The digest if it is in the archive, else None (unknown, paused, cancelled: the same answer)."""
    return session.scalar(_public().where(Digest.id == digest_id))

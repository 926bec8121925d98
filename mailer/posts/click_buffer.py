"""Clicks wait in a Redis list and reach the click table in batches: a click redirect then touches no database.

`push` is what the redirect does (one RPUSH); `drain` moves the waiting clicks into the table (beat does it every
sweep, and every read of click results does it first, so counts are never behind what was clicked). Without
REDIS_URL, or while Redis does not answer, the redirect records its click in the database itself. A click is a
statistic: clicks still waiting when Redis loses its memory are lost, as clicks in flight always could be.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import redis_store
from ..models import Click, Post, Subscriber

log = logging.getLogger(__name__)
RETRY_AFTER = 10  # seconds without trying Redis after it failed: a redirect must not wait on it again and again
BATCH = 1000
_down_until = 0.0


def push(config: Mapping, delivery_id: int, subscriber_id: int, digest_id: int, post_id: int) -> bool:
    """Queue one click; False when there is no Redis to queue it in (the caller records it directly)."""
    global _down_until
    url = config.get("REDIS_URL")
    if not url or time.monotonic() < _down_until:
        return False
    try:
        redis_store.client(url).rpush(redis_store.key(config, "clicks"),
                                      json.dumps([delivery_id, subscriber_id, digest_id, post_id, time.time()]))
        return True
    except Exception as exc:  # any Redis failure: the click goes to the database instead
        _down_until = time.monotonic() + RETRY_AFTER
        log.warning("could not queue a click in Redis (%s); recording clicks in the database for %s s", exc, RETRY_AFTER)
        return False


def drain(session: Session, config: Mapping) -> int:
    """Move every waiting click into the click table, committing batch by batch; returns how many were stored.

    Clicks of subscribers erased or posts deleted since are dropped, as the direct recording would drop them.
    A batch is taken off the list (LPOP, Redis 6.2 or newer) before it is committed, so two drains never store
    one click twice; a drain killed in between loses that batch, a statistic.
    """
    url = config.get("REDIS_URL")
    if not url:
        return 0
    redis, key = redis_store.client(url), redis_store.key(config, "clicks")
    stored = 0
    while True:
        try:
            items = redis.lpop(key, BATCH)
        except Exception as exc:
            log.warning("could not read the clicks waiting in Redis (%s); they are counted once it answers", exc)
            return stored
        if not items:
            return stored
        try:
            stored += _store(session, [json.loads(item) for item in items])
            session.commit()
        except Exception as exc:  # the database, most likely: the clicks wait for the next drain
            session.rollback()
            log.warning("could not store %s waiting clicks (%s); they are kept in Redis for the next try",
                        len(items), exc)
            try:
                redis.lpush(key, *reversed(items))  # back at the head, in their order
            except Exception as lost:
                log.error("%s clicks lost: neither stored nor put back in Redis (%s)", len(items), lost)
            return stored


def _store(session: Session, clicks: list[list]) -> int:
    people = set(session.scalars(select(Subscriber.id).where(Subscriber.id.in_({c[1] for c in clicks}))))
    posts = set(session.scalars(select(Post.id).where(Post.id.in_({c[3] for c in clicks}))))
    rows = [{"delivery_id": d, "subscriber_id": s, "digest_id": g, "post_id": p,
             "at": datetime.fromtimestamp(at, timezone.utc)}
            for d, s, g, p, at in clicks if s in people and p in posts]
    if rows:
        session.execute(Click.__table__.insert(), rows)
    return len(rows)

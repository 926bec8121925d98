"""Clicks wait in a Redis list and reach the click table in batches: a click redirect then touches no database.

`push` is what the redirect does (one RPUSH of the click and its evidence); `drain` moves the waiting clicks into
the table with their verdict, person or machine (click_store; beat does it every sweep, and every read of click
results does it first, so counts and verdicts are never behind what was clicked). Without
REDIS_URL, or while Redis does not answer, the redirect records its click in the database itself. A click is a
statistic: clicks still waiting when Redis loses its memory are lost, as clicks in flight always could be.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping

from sqlalchemy.orm import Session

from .. import redis_store
from .click_store import Hit, store

log = logging.getLogger(__name__)
RETRY_AFTER = 10  # seconds without trying Redis after it failed: a redirect must not wait on it again and again
BATCH = 1000
_down_until = 0.0


def push(config: Mapping, hit: Hit) -> bool:
    """Queue one click; False when there is no Redis to queue it in (the caller records it directly)."""
    global _down_until
    url = config.get("REDIS_URL")
    if not url or time.monotonic() < _down_until:
        return False
    try:
        redis_store.client(url).rpush(redis_store.key(config, "clicks"), json.dumps(hit))
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
            # Items queued before evidence was kept have five values: Hit fills in the rest as unknown.
            stored += store(session, config, [Hit(*json.loads(item)) for item in items])
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


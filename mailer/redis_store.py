"""The app's own keys in Redis (REDIS_URL), shared by the web and the workers; never the only copy of a promise."""
from __future__ import annotations

from collections.abc import Mapping
from functools import cache


@cache
def client(url: str):
    import redis

    # Short timeouts: whatever uses Redis here has a way on without it, and must not hang a request.
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def key(config: Mapping, name: str) -> str:
    """A key of this deployment (named after its Celery queue, so several can share one Redis)."""
    return f"mailer:{config.get('CELERY_QUEUE', 'celery')}:{name}"

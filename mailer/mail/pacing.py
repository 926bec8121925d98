"""Sending pace: a rate limit shared by all workers, and a per-connection slowdown when the server says so."""
from __future__ import annotations

import logging
import time

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)
THROTTLE_CODES = {421, 454}  # "slow down" replies: service busy, too many connections or messages


class Pacer:
    """Waits before each send: for the shared rate (SEND_RATE per second), then for any throttle backoff."""

    def __init__(self, rate: float, storage_uri: str | None):
        self.backoff = 0.0
        self.rested = False
        self.limiter = self.item = None
        if rate > 0:
            storage = _storage(storage_uri)
            self.limiter = MovingWindowRateLimiter(storage)
            self.item = RateLimitItemPerSecond(max(1, int(rate)))

    def wait(self) -> None:
        if self.limiter is not None:
            while not self.limiter.hit(self.item, "mailer", "smtp-send"):
                time.sleep(0.02)
        if self.backoff and not self.rested:
            time.sleep(self.backoff)
        self.rested = False

    def rest(self) -> None:
        """Take the throttle pause now, before claiming a batch: a pause taken after would eat into its lease
        (and one as long as the lease would hand every batch back unsent). The next `wait` skips it."""
        if self.backoff:
            time.sleep(self.backoff)
            self.rested = True

    def throttled(self, code: int | None) -> bool:
        """After a 'slow down' reply, double the pause between mails (0.1 s to 5 s); True if it was one."""
        if code not in THROTTLE_CODES:
            return False
        self.backoff = min(max(self.backoff * 2, 0.1), 5.0)
        log.warning("SMTP server throttles us (%s); pausing %.2f s between mails", code, self.backoff)
        return True

    def accepted(self) -> None:
        # Recover quickly once mail is accepted again: halve the pause per accepted mail.
        self.backoff = self.backoff / 2 if self.backoff > 0.01 else 0.0


def _storage(uri: str | None):
    if uri:
        try:
            storage = storage_from_string(uri)
            if storage.check():
                return storage
        except Exception as exc:  # a rate limit that cannot be shared is still a rate limit
            log.warning("rate limit storage %s unusable (%s); limiting per worker process", uri, exc)
    return storage_from_string("memory://")

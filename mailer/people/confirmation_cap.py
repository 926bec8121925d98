"""A global hourly cap on confirmation mails: a signup flood must not turn us into a mail cannon aimed at strangers."""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..models import SIGNUP_CONFIRMATIONS, Delivery, utcnow

log = logging.getLogger(__name__)
RECOUNT_SECONDS = 1.0
_lock = threading.Lock()
_last_alarm: datetime | None = None  # per process: one ERROR line an hour, not one per refused signup


def allows_confirmation(session: Session | Connection, now: datetime | None = None) -> bool:
    """True while fewer than CONFIRMATION_HOURLY_CAP confirmations were queued in the last hour (0: no cap).

    The count is made at most once every RECOUNT_SECONDS per process, and between counts this process adds the
    confirmations it allowed itself: under a flood of signups, one count a second instead of one per signup.
    The cap can be overshot by what other processes queued in the last second, and a new hour is noticed up to
    a second late.
    """
    cap = current_app.config.get("CONFIRMATION_HOURLY_CAP", 500)
    if not cap:
        return True
    tally = current_app.extensions.setdefault("confirmation_tally", {})
    with _lock:  # threads of one process share the tally: one counts, the others wait for its count
        if time.monotonic() - tally.get("counted_at", float("-inf")) > RECOUNT_SECONDS:
            tally.update(counted_at=time.monotonic(), queued=_count_last_hour(session, now or utcnow(), cap))
        allowed = tally["queued"] < cap
        tally["queued"] += allowed
    if not allowed:
        _alarm(now or utcnow(), cap)
    return allowed


def give_back() -> None:
    """A confirmation that allows_confirmation() allowed was not queued after all (the address was known)."""
    tally = current_app.extensions.get("confirmation_tally")
    if tally is not None:
        with _lock:
            tally["queued"] = max(0, tally.get("queued", 0) - 1)


def _count_last_hour(session: Session | Connection, now: datetime, cap: int) -> int:
    # Counting stops at `cap` rows, on a partial index of signup confirmations (ix_delivery_signup_confirmations):
    # the cost is bounded by the cap, not by the size of the ledger. Imports ("import-confirmation:…") are the
    # admin's own doing and do not use up the cap meant for the public form.
    recent = (select(Delivery.id)
              .where(text(SIGNUP_CONFIRMATIONS), Delivery.created_at > now - timedelta(hours=1))
              .limit(cap).subquery())
    return session.scalar(select(func.count()).select_from(recent))


def _alarm(now: datetime, cap: int) -> None:
    global _last_alarm
    with _lock:
        if _last_alarm is not None and now - _last_alarm < timedelta(hours=1):
            return
        _last_alarm = now
    log.error("CONFIRMATION_HOURLY_CAP reached: %s confirmation mails were queued in the last hour. Signups are "
              "still stored and answered as usual, but get no confirmation mail until the hour has passed (they can "
              "sign up again). Real traffic? Raise CONFIRMATION_HOURLY_CAP. Otherwise look for a signup flood.", cap)

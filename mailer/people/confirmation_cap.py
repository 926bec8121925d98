"""A global hourly cap on confirmation mails: a signup flood must not turn us into a mail cannon aimed at strangers.

No one network (an IPv4 /24, an IPv6 /48: people/networks) may take more than CONFIRMATION_NETWORK_SHARE of it,
so that one flood cannot use the cap up for everyone else.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Integer, cast, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..models import CONFIRMATION_KEY, SIGNUP_CONFIRMATIONS, Consent, Delivery, utcnow
from .networks import network_of

log = logging.getLogger(__name__)
RECOUNT_SECONDS = 1.0
_lock = threading.Lock()
_last_alarm: datetime | None = None  # per process: one ERROR line an hour, not one per refused signup
_network_alarms: dict[str, datetime] = {}  # per process and network: one WARNING line an hour


def allows_confirmation(session: Session | Connection, now: datetime | None = None, ip: str | None = None) -> bool:
    """True while fewer than CONFIRMATION_HOURLY_CAP confirmations were queued in the last hour (0: no cap), and
    fewer than the network's share of it for signups from the network of `ip`.

    The count is made at most once every RECOUNT_SECONDS per process, and between counts this process adds the
    confirmations it allowed itself: under a flood of signups, one count a second instead of one per signup.
    The cap (and a share) can be overshot by what other processes queued in the last second, and a new hour is
    noticed up to a second late.
    """
    cap = current_app.config.get("CONFIRMATION_HOURLY_CAP", 500)
    if not cap:
        return True
    now, network, share = now or utcnow(), network_of(ip), network_share(cap)
    tally = current_app.extensions.setdefault("confirmation_tally", {})
    with _lock:  # threads of one process share the tally: one counts, the others wait for its count
        if time.monotonic() - tally.get("counted_at", float("-inf")) > RECOUNT_SECONDS:
            queued, by_network = _count_last_hour(session, now, cap)
            tally.update(counted_at=time.monotonic(), queued=queued, by_network=by_network)
        over_cap = tally["queued"] >= cap
        over_share = network is not None and tally["by_network"][network] >= share
        if not (over_cap or over_share):
            tally["queued"] += 1
            tally["by_network"][network] += network is not None
    if over_cap:
        _alarm(now, cap)
    elif over_share:
        _network_alarm(now, network, share)
    return not (over_cap or over_share)


def network_share(cap: int) -> int:
    """The confirmations one network may have of the hourly cap: CONFIRMATION_NETWORK_SHARE of it, at least one."""
    return max(1, int(cap * current_app.config.get("CONFIRMATION_NETWORK_SHARE", 0.1)))


def give_back(ip: str | None = None) -> None:
    """A confirmation that allows_confirmation() allowed was not queued after all (the address was known)."""
    tally = current_app.extensions.get("confirmation_tally")
    if tally is not None and "queued" in tally:
        network = network_of(ip)
        with _lock:
            tally["queued"] = max(0, tally["queued"] - 1)
            if network is not None:
                tally["by_network"][network] = max(0, tally["by_network"][network] - 1)


def _count_last_hour(session: Session | Connection, now: datetime, cap: int) -> tuple[int, Counter]:
    """The signup confirmations queued in the last hour (up to `cap`), and how many of them each network had."""
    # Counting stops at `cap` rows, on a partial index of signup confirmations (ix_delivery_signup_confirmations):
    # the cost is bounded by the cap, not by the size of the ledger. Imports ("import-confirmation:…") are the
    # admin's own doing and do not use up the cap meant for the public form. Each row's consent (its key is
    # "confirmation:<consent id>") gives the address the signup came from.
    consent_id = cast(func.substr(Delivery.dedupe_key, len(CONFIRMATION_KEY) + 1), Integer)
    recent = (select(Consent.ip).select_from(Delivery).join(Consent, Consent.id == consent_id)
              .where(text(SIGNUP_CONFIRMATIONS), Delivery.created_at > now - timedelta(hours=1))
              .limit(cap).subquery())
    queued, by_network = 0, Counter()
    for ip, count in session.execute(select(recent.c.ip, func.count()).group_by(recent.c.ip)):
        queued += count
        if network_of(ip) is not None:
            by_network[network_of(ip)] += count
    return queued, by_network


def _alarm(now: datetime, cap: int) -> None:
    global _last_alarm
    with _lock:
        if _last_alarm is not None and now - _last_alarm < timedelta(hours=1):
            return
        _last_alarm = now
    log.error("CONFIRMATION_HOURLY_CAP reached: %s confirmation mails were queued in the last hour. Signups are "
              "still stored and answered as usual, but get no confirmation mail until the hour has passed (they can "
              "sign up again). Real traffic? Raise CONFIRMATION_HOURLY_CAP. Otherwise look for a signup flood.", cap)


def _network_alarm(now: datetime, network: str, share: int) -> None:
    with _lock:
        if now - _network_alarms.get(network, now - timedelta(hours=2)) < timedelta(hours=1):
            return
        if len(_network_alarms) > 10_000:  # a flood from many networks: forget the alarms of hours past
            for old in [n for n, at in _network_alarms.items() if now - at >= timedelta(hours=1)]:
                del _network_alarms[old]
        _network_alarms[network] = now
    log.warning("CONFIRMATION_NETWORK_SHARE reached for the network %s: its signups had %s confirmation mails in the "
                "last hour, its share of CONFIRMATION_HOURLY_CAP. Its signups are still stored and answered as usual, "
                "but get no confirmation mail until the hour has passed (they can sign up again); other networks still "
                "get theirs. Real traffic from one network (an office, a campus)? Raise CONFIRMATION_NETWORK_SHARE.",
                network, share)

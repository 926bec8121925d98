"""The welcome sequence and the magnets' follow-ups: each reader gets every enabled step once, in order.

A reader's sequence is the common welcome (delays counted from their confirmation), then the follow-ups of each
magnet they took (counted from when they took it, never before the confirmation). The next step is the first one
of that sequence not yet owed to them (the ledger's welcome_key rows say which were): a step moved, added or
deleted in the console is neither sent twice nor skipped. It is owed at its delay, never before the one before it.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..dialect import on_postgresql
from ..models import WELCOME_KEY, Consent, Delivery, Status, Subscriber, WelcomeStep, aware, utcnow, welcome_key
from ..outbox import ledger


def steps(session: Session, magnet_id: int | None = None, enabled_only: bool = True) -> list[WelcomeStep]:
    """The steps of the common welcome (or of one magnet's follow-ups), in order."""
    query = select(WelcomeStep).where(WelcomeStep.magnet_id.is_(None) if magnet_id is None
                                      else WelcomeStep.magnet_id == magnet_id)
    if enabled_only:
        query = query.where(WelcomeStep.enabled)
    return list(session.scalars(query.order_by(WelcomeStep.position, WelcomeStep.id)))


def start_welcome(session: Session, subscriber: Subscriber, now: datetime | None = None,
                  after_unsubscribe: bool = False) -> None:
    """Begin the sequence for a newly confirmed subscriber; a step due at once is owed in this transaction.

    A re-confirmation replays nothing already owed. Confirming again `after_unsubscribe` (which stopped the
    sequence) resumes it with the steps not yet owed, timed from the new confirmation.
    """
    now = now or utcnow()
    if subscriber.welcome_step != 0 and not (after_unsubscribe and subscriber.welcome_next_at is None):
        return
    _owe_next_step(session, subscriber, now)


def advance_welcome_sequences(session: Session, now: datetime | None = None, limit: int = 1000) -> int:
    """Owe the next step to subscribers whose step fell due (beat calls this; catches up after downtime)."""
    now = now or utcnow()
    due = select(Subscriber).where(
        Subscriber.status == Status.CONFIRMED.value, Subscriber.welcome_next_at <= now,
    ).order_by(Subscriber.welcome_next_at).limit(limit)
    if on_postgresql(session):
        due = due.with_for_update(skip_locked=True)
    sequences: dict[int | None, list[WelcomeStep]] = {}  # read once per run, not once per reader
    return sum(_owe_next_step(session, subscriber, now, sequences) for subscriber in session.scalars(due))


def look_again(subscriber: Subscriber, now: datetime) -> None:
    """Have beat work out this reader's next step now: they took a magnet, whose follow-ups may begin."""
    if subscriber.welcome_next_at is None or aware(subscriber.welcome_next_at) > now:
        subscriber.welcome_next_at = now


def sequence_changed(session: Session, now: datetime | None = None) -> None:
    """Steps were added, moved, deleted or switched: every reader still in a sequence has their next step worked
    out again by beat, so a step moved earlier is not held back until the date of the one it replaced."""
    now = now or utcnow()
    session.execute(update(Subscriber).where(Subscriber.welcome_next_at > now).values(welcome_next_at=now),
                    execution_options={"synchronize_session": False})  # SQLite's naive times cannot be evaluated


def stop_welcome(subscriber: Subscriber) -> None:
    subscriber.welcome_next_at = None


def _owe_next_step(session: Session, subscriber: Subscriber, now: datetime,
                   sequences: dict[int | None, list[WelcomeStep]] | None = None) -> int:
    """Owe the reader's next step if it is due; then note when to look again. Returns how many were owed (0, 1)."""
    upcoming = _upcoming(session, subscriber, now, {} if sequences is None else sequences)
    owed = 0
    if upcoming and upcoming[0][1] <= now:
        step = upcoming.pop(0)[0]
        # The unique key makes the step owed once, however often this runs.
        owed = int(ledger.queue(session, "welcome", subscriber.id, welcome_key(subscriber.id, step.id),
                                template=step.template, step_id=step.id, magnet_id=step.magnet_id))
        subscriber.welcome_step += 1
    subscriber.welcome_next_at = upcoming[0][1] if upcoming else None
    return owed


def _upcoming(session: Session, subscriber: Subscriber, now: datetime,
              sequences: dict[int | None, list[WelcomeStep]]) -> list[tuple[WelcomeStep, datetime]]:
    """The steps not yet owed to this reader, in order, each with when it falls due (never before the one before)."""
    had = _owed_steps(session, subscriber.id)
    confirmed = aware(subscriber.confirmed_at or now)
    tracks = [(None, confirmed)] if subscriber.welcome_step == 0 or None in had.values() else []
    tracks += [(magnet_id, max(taken, confirmed)) for magnet_id, taken in _magnets_taken(session, subscriber)]
    upcoming, floor = [], None
    for magnet_id, start in tracks:
        if magnet_id not in sequences:
            sequences[magnet_id] = steps(session, magnet_id)
        for step in sequences[magnet_id]:
            if step.id not in had:
                floor = max(start + timedelta(hours=step.delay_hours), floor or start)
                upcoming.append((step, floor))
    return upcoming


def _owed_steps(session: Session, subscriber_id: int) -> dict[int, int | None]:
    """The steps owed to a reader so far (whatever became of the mail): step id → its magnet (None: common)."""
    rows = session.execute(select(Delivery.dedupe_key, Delivery.payload).where(
        Delivery.subscriber_id == subscriber_id, Delivery.kind == "welcome",
        Delivery.dedupe_key.startswith(WELCOME_KEY)))
    return {int(key.rsplit(":", 1)[1]): (payload or {}).get("magnet_id") for key, payload in rows
            if ":step:" in key}


def _magnets_taken(session: Session, subscriber: Subscriber) -> list[tuple[int, datetime]]:
    """Each magnet the reader took, first taken first: by confirming a signup for it, or asking for it while
    confirmed (no second confirmation is asked of a confirmed reader)."""
    confirmed = aware(subscriber.confirmed_at) if subscriber.confirmed_at else None
    taken: dict[int, datetime] = {}
    for magnet_id, requested, consent_confirmed in session.execute(
            select(Consent.magnet_id, Consent.requested_at, Consent.confirmed_at).where(
                Consent.subscriber_id == subscriber.id, Consent.magnet_id.is_not(None))):
        when = aware(consent_confirmed) if consent_confirmed else aware(requested)
        if consent_confirmed or (confirmed is not None and when >= confirmed):
            taken[magnet_id] = min(when, taken.get(magnet_id, when))
    return sorted(taken.items(), key=lambda item: (item[1], item[0]))

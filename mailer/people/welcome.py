"""The welcome sequence: after confirmation, each enabled step falls due `delay_hours` after the confirmation."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..dialect import on_postgresql
from ..models import Status, Subscriber, WelcomeStep, aware, utcnow
from ..outbox import ledger


def steps(session: Session) -> list[WelcomeStep]:
    return list(session.scalars(select(WelcomeStep).where(WelcomeStep.enabled).order_by(WelcomeStep.position)))


def start_welcome(session: Session, subscriber: Subscriber, now: datetime | None = None,
                  after_unsubscribe: bool = False) -> None:
    """Begin the sequence for a newly confirmed subscriber; a step due at once is owed in this transaction.

    A re-confirmation replays nothing already owed. Confirming again `after_unsubscribe` (which stopped the
    sequence) resumes it with the steps after the last one owed, timed from the new confirmation.
    """
    now = now or utcnow()
    if subscriber.welcome_step != 0:
        if after_unsubscribe and subscriber.welcome_next_at is None:
            _schedule_next(subscriber, steps(session), now)
        return
    _schedule_next(subscriber, steps(session), now)
    if subscriber.welcome_next_at is not None and subscriber.welcome_next_at <= now:
        _owe_next_step(session, subscriber, steps(session), now)


def advance_welcome_sequences(session: Session, now: datetime | None = None, limit: int = 1000) -> int:
    """Owe the next step to subscribers whose step fell due (beat calls this; catches up after downtime)."""
    now = now or utcnow()
    due = select(Subscriber).where(
        Subscriber.status == Status.CONFIRMED.value, Subscriber.welcome_next_at <= now,
    ).order_by(Subscriber.welcome_next_at).limit(limit)
    if on_postgresql(session):
        due = due.with_for_update(skip_locked=True)
    sequence = steps(session)
    owed = 0
    for subscriber in session.scalars(due):
        owed += _owe_next_step(session, subscriber, sequence, now)
    return owed


def stop_welcome(subscriber: Subscriber) -> None:
    subscriber.welcome_next_at = None


def _owe_next_step(session: Session, subscriber: Subscriber, sequence: list[WelcomeStep], now: datetime) -> int:
    step = next((s for s in sequence if s.position > subscriber.welcome_step), None)
    if step is None:
        subscriber.welcome_next_at = None
        return 0
    # The unique key makes the step owed once, however often this runs.
    ledger.queue(session, "welcome", subscriber.id, f"welcome:{subscriber.id}:{step.position}", template=step.template)
    subscriber.welcome_step = step.position
    _schedule_next(subscriber, sequence, now)
    return 1


def _schedule_next(subscriber: Subscriber, sequence: list[WelcomeStep], now: datetime) -> None:
    following = next((s for s in sequence if s.position > subscriber.welcome_step), None)
    confirmed = aware(subscriber.confirmed_at or now)
    subscriber.welcome_next_at = confirmed + timedelta(hours=following.delay_hours) if following else None

"""The sequences as the author edits them: add, move, delete, reword or switch a step, and mail a test copy of one.

Every change that alters who gets what next ends in welcome.sequence_changed, so readers mid-sequence are
looked at again; a reader's copy of a step is keyed by the step's id, so no edit sends a step twice.
"""
from __future__ import annotations

import uuid

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from ..addresses import normalise_email
from ..models import WELCOME_KEY, Delivery, DeliveryStatus, WelcomeStep
from ..outbox import ledger
from .welcome import sequence_changed, steps

NEW_STEP_DAYS = 2  # a step added at the end comes this many days after the last one


class StepNotReady(ValueError):
    """A step switched on without words to send: the author must write them first."""


def sequence_of(session: Session, step: WelcomeStep) -> list[WelcomeStep]:
    """The steps of the sequence this one belongs to (the common welcome, or one magnet's), on and off, in order."""
    return steps(session, step.magnet_id, enabled_only=False)


def is_first(session: Session, step: WelcomeStep) -> bool:
    """The first step's delay is in hours (often 0: with the confirmation); the others' in days."""
    return sequence_of(session, step)[0].id == step.id


def add_step(session: Session, magnet_id: int | None = None) -> WelcomeStep:
    """A new step at the end of a sequence, off until the author has written it."""
    last = session.scalar(select(func.max(WelcomeStep.delay_hours)).where(
        WelcomeStep.magnet_id.is_(None) if magnet_id is None else WelcomeStep.magnet_id == magnet_id))
    position = len(steps(session, magnet_id, enabled_only=False)) + 1
    step = WelcomeStep(magnet_id=magnet_id, position=position, enabled=False, template="",
                       delay_hours=0 if last is None else last + 24 * NEW_STEP_DAYS)
    session.add(step)
    session.flush()
    return step


def move_step(session: Session, step: WelcomeStep, by: int) -> None:
    """One place earlier (`by` -1) or later (+1) in its sequence; at either end nothing moves."""
    ordered = sequence_of(session, step)
    at = ordered.index(step)
    if 0 <= at + by < len(ordered):
        ordered[at], ordered[at + by] = ordered[at + by], ordered[at]
        _renumber(ordered)
        sequence_changed(session)


def delete_step(session: Session, step: WelcomeStep) -> None:
    """Remove a step: copies still queued are not sent; readers who had it keep their place in the rest."""
    rest = [s for s in sequence_of(session, step) if s.id != step.id]
    session.execute(update(Delivery).where(
        Delivery.kind == "welcome", Delivery.dedupe_key.like(f"{WELCOME_KEY}%:step:{step.id}"),
        Delivery.status == DeliveryStatus.QUEUED.value).values(
        status=DeliveryStatus.SKIPPED.value, last_error="the step was deleted"))
    session.delete(step)
    session.flush()
    _renumber(rest)
    sequence_changed(session)


def save_step(session: Session, step: WelcomeStep, *, delay_hours: int, subject: str | None, body: str | None,
              enabled: bool) -> None:
    """New words, delay or switch for a step; None for the subject or body keeps the built-in one."""
    if enabled and not step.template and not (subject and body):
        raise StepNotReady("Write a subject and a body before you switch this step on: it has no built-in words.")
    changed = (step.delay_hours, step.enabled) != (delay_hours, enabled)
    step.delay_hours, step.enabled, step.subject, step.body = delay_hours, enabled, subject, body
    if changed:
        sequence_changed(session)


def switch_all(session: Session, on: bool) -> None:
    """The common welcome on or off as a whole (a magnet's follow-ups keep their own switches)."""
    switched = update(WelcomeStep).where(WelcomeStep.magnet_id.is_(None))
    if on:  # a step added in the console stays off until it has words to send
        switched = switched.where(or_(WelcomeStep.template != "", and_(
            func.coalesce(WelcomeStep.subject, "") != "", func.coalesce(WelcomeStep.body, "") != "")))
    session.execute(switched.values(enabled=on))
    sequence_changed(session)


def send_test_copy(session: Session, step: WelcomeStep, to: str) -> None:
    """Owe a copy of the step as it would go now, to one address (an admin's), outside any reader's record."""
    ledger.queue(session, "test", None, f"test:{uuid.uuid4().hex}", recipient=normalise_email(to),
                 step_id=step.id, template=step.template)


def _renumber(ordered: list[WelcomeStep]) -> None:
    for position, step in enumerate(ordered, start=1):
        step.position = position

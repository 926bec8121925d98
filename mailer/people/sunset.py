"""The sunset rule (off unless SUNSET_MONTHS is set): readers who stopped reading are asked once whether they still
want digests; with no answer within SUNSET_ANSWER_DAYS, digests stop for them (their mail of other kinds does not).

Only a person's sign counts: a click or an open marked `human`, a press of the "keep me" button (a POST from the
page the mail's link opens, which a link scanner fetching the link does not make), or coming back from the
preference page. Beat runs `apply_sunset_rule` daily; each step is one set-based statement, and the question is
a Delivery row like any other mail, so it is owed once per reader and round, and resumes after any crash.
"""
from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, and_, cast, exists, literal, or_, select, update
from sqlalchemy.orm import Session

from ..dialect import insert_for
from ..mail import identity
from ..models import Click, Consent, Delivery, DeliveryStatus, Open, Status, Subscriber, aware, utcnow
from ..outbox import ledger

KIND = "sunset"
CONSENT_FORM = "sunset"  # the consent of a reader who came back after digests stopped
CONSENT_TEXT = "Keep sending me the {newsletter} digests. I can unsubscribe at any time with one click."


@dataclass(frozen=True)
class Rule:
    months: int  # no person's click or open for this long: ask
    answer_days: int  # no answer this long after the question was sent: stop the digests

    @classmethod
    def from_config(cls, config) -> Rule | None:
        months = config.get("SUNSET_MONTHS") or 0
        return cls(months, config.get("SUNSET_ANSWER_DAYS") or 14) if months > 0 else None


@dataclass(frozen=True)
class Applied:
    asked: int  # questions owed now
    stopped: int  # readers whose digests stopped now


def months_before(moment: datetime, months: int) -> datetime:
    """The same time `months` calendar months earlier (the 31st gives the last day of a shorter month)."""
    total = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(total, 12)
    month += 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def _signs_of_life_since(since) -> tuple:
    """No click and no open by a person at or after `since` (a column or a moment)."""
    clicked = exists().where(Click.subscriber_id == Subscriber.id, Click.human.is_(True), Click.at >= since)
    opened = exists().where(Open.subscriber_id == Subscriber.id, Open.human.is_(True), Open.at >= since)
    return ~clicked, ~opened


def apply_sunset_rule(session: Session, rule: Rule, now: datetime | None = None) -> Applied:
    """Stop the digests of readers who did not answer in time, then ask the newly quiet ones; caller commits."""
    now = now or utcnow()
    stopped = stop_unanswered(session, rule, now)
    return Applied(ask_quiet_readers(session, rule, now), stopped)


def ask_quiet_readers(session: Session, rule: Rule, now: datetime) -> int:
    """Owe the question to each reader confirmed over `rule.months` ago with no sign of life since, once a round.

    The conditional UPDATE marks whom this run asks (a second run at the same time finds them asked), and the
    INSERT … SELECT owes exactly those their mail, under a key of their own for the day.
    """
    cutoff = months_before(now, rule.months)
    quiet = (Subscriber.status == Status.CONFIRMED.value, Subscriber.digest_frequency != "none",
             Subscriber.sunset_at.is_(None), Subscriber.confirmed_at < cutoff,
             or_(Subscriber.sunset_asked_at.is_(None), Subscriber.sunset_asked_at < cutoff),
             or_(Subscriber.sunset_kept_at.is_(None), Subscriber.sunset_kept_at < cutoff),
             *_signs_of_life_since(cutoff))
    asked = session.execute(update(Subscriber).where(*quiet).values(sunset_asked_at=now)
                            .execution_options(synchronize_session=False),
                            execution_options={"preserve_rowcount": True}).rowcount
    if not asked:
        return 0
    key = literal(f"{KIND}:") + cast(Subscriber.id, String) + literal(f":{now:%Y-%m-%d}")
    row = ledger.owed_row(KIND, Subscriber.id, key, now)
    rows = select(*ledger.as_select(row)).where(Subscriber.sunset_asked_at == now)
    insert = insert_for(session)(Delivery).from_select(list(row), rows).on_conflict_do_nothing(
        index_elements=["dedupe_key"])
    session.execute(insert)
    return asked


def stop_unanswered(session: Session, rule: Rule, now: datetime) -> int:
    """Stop digests for readers whose question was sent `rule.answer_days` ago with no answer and no sign of life."""
    sent_long_ago = exists().where(
        Delivery.subscriber_id == Subscriber.id, Delivery.kind == KIND, Delivery.status == DeliveryStatus.SENT.value,
        Delivery.created_at >= Subscriber.sunset_asked_at, Delivery.sent_at <= now - timedelta(days=rule.answer_days))
    unanswered = (Subscriber.status == Status.CONFIRMED.value, Subscriber.sunset_at.is_(None),
                  Subscriber.sunset_asked_at.is_not(None),
                  or_(Subscriber.sunset_kept_at.is_(None), Subscriber.sunset_kept_at < Subscriber.sunset_asked_at),
                  sent_long_ago, *_signs_of_life_since(Subscriber.sunset_asked_at))
    return session.execute(update(Subscriber).where(and_(*unanswered)).values(sunset_at=now)
                           .execution_options(synchronize_session=False),
                           execution_options={"preserve_rowcount": True}).rowcount


def keep(session: Session, subscriber: Subscriber, *, form: str, ip: str | None = None,
         user_agent: str | None = None) -> bool:
    """The reader's word that they want the digests (the "keep me" button, the preference page): the clock starts
    again. After digests stopped, it is coming back, recorded as a new consent. True when they had stopped."""
    now = utcnow()
    came_back = subscriber.sunset_at is not None
    subscriber.sunset_kept_at, subscriber.sunset_at = now, None
    if came_back:
        session.add(Consent(subscriber_id=subscriber.id, form=form, ip=ip, user_agent=(user_agent or "")[:500] or None,
                            consent_text=CONSENT_TEXT.replace("{newsletter}", identity.current().name),
                            requested_at=now, confirmed_at=now))
    return came_back


def stopped_reason(subscriber) -> str | None:
    """Why a confirmed reader gets no digests under the sunset rule, for the console, the API and their own page."""
    if getattr(subscriber, "sunset_at", None) is None:
        return None
    asked_at = getattr(subscriber, "sunset_asked_at", None)  # an export's row has only the listed columns
    asked = f" of {aware(asked_at):%-d %B %Y}" if asked_at else ""
    return (f"Digests stopped on {aware(subscriber.sunset_at):%-d %B %Y}: no click or open for a long while, and no "
            f"answer to our email{asked} asking whether they still want them. They can come back from their "
            "preference page.")


def waiting_for_answer(subscriber: Subscriber) -> bool:
    """Asked, not yet answered, digests not stopped yet."""
    asked, kept = subscriber.sunset_asked_at, subscriber.sunset_kept_at
    return (subscriber.sunset_at is None and asked is not None
            and (kept is None or aware(kept) < aware(asked)))

"""Signing up, confirming, unsubscribing: each writes its owed mail in the caller's transaction (sign_up commits it)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..addresses import clean_name, normalise_email
from ..dialect import insert_for, on_postgresql
from ..magnets import HANDBOOK_SLUG, find_magnet
from ..models import Consent, Delivery, DeliveryStatus, LeadMagnet, Status, Subscriber, aware, confirmation_key, utcnow
from ..outbox import ledger
from . import confirmation_cap, new_signup
from .welcome import look_again, start_welcome, stop_welcome

log = logging.getLogger(__name__)
SUPPRESSED = (Status.BOUNCED.value, Status.COMPLAINED.value)
CONSENT_TEXT = ("Send me {magnet} and the occasional email with new Career Q&A posts. "
                "I can unsubscribe at any time with one click.")


@dataclass
class SignupRequest:
    email: str
    name: str | None = None
    magnet: str | None = None
    source_url: str | None = None
    form: str = "snippet"
    ip: str | None = None
    user_agent: str | None = None


def sign_up(session: Session, request: SignupRequest) -> None:
    """Store a visitor's signup and commit it; the caller answers the same whatever happened.

    On PostgreSQL a signup is one statement of its own (new_signup), whether the address is new or known, so that
    both answer in the same time; SQLite, and the rare signup that statement cannot do, go through the session as
    subscribe() does, committed here.
    """
    email, name = normalise_email(request.email), clean_name(request.name)
    engine = session.get_bind()
    if on_postgresql(engine) and _store_in_one_statement(engine, session, email, name, request):
        return
    _record(session, email, name, request)
    session.commit()


def _store_in_one_statement(engine: Engine, session: Session, email: str, name: str | None,
                       request: SignupRequest) -> bool:
    """True when the signup is stored, for a new address or a known one; False when nothing was written.

    A connection that died in the pool (a restarted database) is replaced and the statement sent once more:
    if the first one did commit, the second finds the address known, and the throttle owes no second mail.
    """
    try:
        return _store_in_one_statement_on(engine, session, email, name, request)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("the database connection was lost during a signup; sending it again on a new connection")
        return _store_in_one_statement_on(engine, session, email, name, request)


def _store_in_one_statement_on(engine: Engine, session: Session, email: str, name: str | None,
                          request: SignupRequest) -> bool:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        mail = confirmation_cap.allows_confirmation(connection)
        stored = new_signup.store(
            connection, email=email, name=name, magnet=request.magnet or HANDBOOK_SLUG, form=request.form,
            ip=request.ip, now=utcnow(), mail_confirmation=mail, consent_text=CONSENT_TEXT, **_consent_details(request))
    if mail and stored.confirmation_id is None:
        confirmation_cap.give_back()
    for delivery_id in stored.owed:
        ledger.note_owed(session, delivery_id)
    return stored.handled


def subscribe(session: Session, request: SignupRequest) -> None:
    """Record a signup and owe its confirmation in the caller's transaction; the caller answers the same whatever
    happened."""
    _record(session, normalise_email(request.email), clean_name(request.name), request)


def _consent_details(request: SignupRequest) -> dict:
    return {"source_url": (request.source_url or "")[:2000] or None,
            "user_agent": (request.user_agent or "")[:500] or None}


def _record(session: Session, email: str, name: str | None, request: SignupRequest) -> None:
    magnet = find_magnet(session, request.magnet)
    subscriber, new = _get_or_create(session, email, name)
    if subscriber.status in SUPPRESSED:
        return
    consent = Consent(
        subscriber_id=subscriber.id, magnet_id=magnet.id, form=request.form, ip=request.ip,
        consent_text=CONSENT_TEXT.format(magnet=magnet.title), **_consent_details(request),
    )
    session.add(consent)
    session.flush()
    if subscriber.status == Status.CONFIRMED.value:
        # Already in: mail the download link again rather than a pointless confirmation.
        if _may_mail_again(session, subscriber.id, "magnet"):
            ledger.queue(session, "magnet", subscriber.id, f"magnet:{subscriber.id}:{magnet.id}:again:{consent.id}",
                         magnet_id=magnet.id)
        look_again(subscriber, aware(consent.requested_at))  # this magnet's follow-ups, if it has any
        return
    if name and subscriber.status == Status.PENDING.value:
        subscriber.name = name
    if (new or _may_mail_again(session, subscriber.id, "confirmation")) and confirmation_cap.allows_confirmation(session):
        ledger.queue(session, "confirmation", subscriber.id, confirmation_key(consent.id), consent_id=consent.id)


class ConsentWithdrawn(Exception):
    """A confirmation link the reader's later word overrides; `subscriber.status` says which word."""

    def __init__(self, subscriber: Subscriber):
        super().__init__(subscriber.status)
        self.subscriber = subscriber


def consent_withdrawn(subscriber: Subscriber, consent: Consent) -> bool:
    """Whether confirming this consent would undo what came after it: an unsubscribe, a bounce or a complaint.

    A suppressed address gets no new consent (_record), so any link it holds is older than the suppression.
    """
    if subscriber.status in SUPPRESSED:
        return True
    return subscriber.status == Status.UNSUBSCRIBED.value and (
        subscriber.unsubscribed_at is None or aware(consent.requested_at) <= aware(subscriber.unsubscribed_at))


def confirm_subscription(session: Session, consent_id: int) -> Consent | None:
    """Confirm the signup behind a confirmation link (idempotent) and owe the magnet and the welcome.

    ConsentWithdrawn when the reader unsubscribed after this signup, or their address bounced or complained.
    """
    consent = session.get(Consent, consent_id)
    if consent is None:
        return None
    subscriber = session.get(Subscriber, consent.subscriber_id)
    if consent_withdrawn(subscriber, consent):
        raise ConsentWithdrawn(subscriber)
    now, was = utcnow(), subscriber.status
    consent.confirmed_at = consent.confirmed_at or now
    if subscriber.status != Status.CONFIRMED.value:
        subscriber.status = Status.CONFIRMED.value
        subscriber.confirmed_at = now
        subscriber.unsubscribed_at = None
    if consent.magnet_id is not None:
        ledger.queue(session, "magnet", subscriber.id, f"magnet:{subscriber.id}:{consent.magnet_id}:{consent.id}",
                     magnet_id=consent.magnet_id)
    start_welcome(session, subscriber, now, after_unsubscribe=was == Status.UNSUBSCRIBED.value)
    return consent


def subscribe_again(session: Session, consent: Consent, ip: str | None, user_agent: str | None) -> None:
    """From an old confirmation link after an unsubscribe: a new consent and a new confirmation mail, as a signup."""
    subscriber = session.get(Subscriber, consent.subscriber_id)
    if subscriber.status != Status.UNSUBSCRIBED.value:
        return  # a bounce or complaint is never lifted here; a confirmed reader needs nothing
    magnet = session.get(LeadMagnet, consent.magnet_id) if consent.magnet_id is not None else None
    _record(session, subscriber.email, None, SignupRequest(
        email=subscriber.email, magnet=magnet.slug if magnet else None, source_url=consent.source_url,
        form="resubscribe", ip=ip, user_agent=user_agent))


def unsubscribe(session: Session, subscriber_id: int) -> Subscriber | None:
    """Stop all mail to this subscriber at once, including mail already queued."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    if subscriber.status != Status.UNSUBSCRIBED.value:
        subscriber.status = Status.UNSUBSCRIBED.value
        subscriber.unsubscribed_at = utcnow()
    stop_welcome(subscriber)
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.status == DeliveryStatus.QUEUED.value)
        .values(status=DeliveryStatus.SKIPPED.value, last_error="unsubscribed")
    )
    return subscriber


def mail_fresh_download_link(session: Session, subscriber_id: int, magnet_id: int) -> bool:
    """Owe a new download link to a confirmed subscriber whose link expired (throttled like signups); whether a
    mail is owed now (False: not confirmed, or one went out in the last 15 minutes or three today)."""
    subscriber = session.get(Subscriber, subscriber_id)
    magnet = session.get(LeadMagnet, magnet_id)
    if subscriber is None or magnet is None or subscriber.status != Status.CONFIRMED.value:
        return False
    if not _may_mail_again(session, subscriber.id, "magnet"):
        return False
    stamp = utcnow().strftime("%Y%m%d%H%M%S")
    ledger.queue(session, "magnet", subscriber.id, f"magnet:{subscriber.id}:{magnet.id}:renew:{stamp}",
                 magnet_id=magnet.id)
    return True


def _get_or_create(session: Session, email: str, name: str | None) -> tuple[Subscriber, bool]:
    """The subscriber with this address, and whether this call created it; one statement either way."""
    # Two signups for one new address at once meet in one row, not in a failure on the unique index.
    insert = insert_for(session)
    now = utcnow()
    stmt = insert(Subscriber).values(email=email, name=name, status=Status.PENDING.value, created_at=now,
                                     updated_at=now, welcome_step=0)
    # A no-op update, so that RETURNING gives the row whether it was inserted or already there.
    stmt = stmt.on_conflict_do_update(index_elements=["email"], set_={"email": stmt.excluded.email})
    subscriber = session.scalars(stmt.returning(Subscriber), execution_options={"populate_existing": True}).one()
    return subscriber, aware(subscriber.created_at) == now


def _may_mail_again(session: Session, subscriber_id: int, kind: str) -> bool:
    """At most one mail of this kind per 15 minutes and three a day, whoever keeps asking."""
    now = utcnow()
    recent = session.scalars(
        select(Delivery.created_at).where(
            Delivery.subscriber_id == subscriber_id, Delivery.kind == kind,
            Delivery.created_at > now - timedelta(days=1))
    ).all()
    latest = max((aware(t) for t in recent), default=None)
    return len(recent) < 3 and (latest is None or latest < now - timedelta(minutes=15))

"""Signing up, confirming, unsubscribing: each writes its owed mail in the caller's transaction (sign_up commits it)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..addresses import clean_name, normalise_email
from ..dialect import insert_for, on_postgresql
from ..magnets import HANDBOOK_SLUG, find_magnet
from ..mail import identity
from ..models import Consent, Delivery, DeliveryStatus, LeadMagnet, Status, Subscriber, aware, confirmation_key, utcnow
from ..outbox import ledger
from ..posts.local_time import known_zone
from . import confirmation_cap, new_signup
from .mailboxes import mailbox_of
from .welcome import look_again, start_welcome, stop_welcome

log = logging.getLogger(__name__)
SUPPRESSED = (Status.BOUNCED.value, Status.COMPLAINED.value)
CONSENT_TEXT = ("Send me {magnet} and the occasional email with new {newsletter} posts. "
                "I can unsubscribe at any time with one click.")


def consent_text() -> str:
    """What a signup agrees to, in the newsletter's name as it is now ({magnet} is filled in where it is stored)."""
    return CONSENT_TEXT.replace("{newsletter}", identity.current().name)


@dataclass
class SignupRequest:
    email: str
    name: str | None = None
    magnet: str | None = None
    source_url: str | None = None
    form: str = "snippet"
    ip: str | None = None
    user_agent: str | None = None
    time_zone: str | None = None  # as the browser told it; kept only when zoneinfo knows the name


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
    words = consent_text()  # first: reading the settings holds no connection while the signup's is out
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        mail = confirmation_cap.allows_confirmation(connection, ip=request.ip)
        stored = new_signup.store(
            connection, email=email, mailbox=mailbox_of(email), name=name, magnet=request.magnet or HANDBOOK_SLUG,
            form=request.form, ip=request.ip, now=utcnow(), mail_confirmation=mail, consent_text=words,
            time_zone=known_zone(request.time_zone), **_consent_details(request))
    if mail and stored.confirmation_id is None:
        confirmation_cap.give_back(request.ip)
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
    subscriber = _get_or_create(session, email, name)
    if subscriber.status == Status.BOUNCED.value:
        return  # the address does not take mail; an admin lifts a bounce (bounces/suppressions)
    consent = Consent(
        subscriber_id=subscriber.id, magnet_id=magnet.id, form=request.form, ip=request.ip,
        consent_text=consent_text().replace("{magnet}", magnet.title), **_consent_details(request),
    )
    session.add(consent)
    session.flush()
    if subscriber.status == Status.CONFIRMED.value:
        # Already in: mail the download link again rather than a pointless confirmation.
        if _may_mail_again(session, subscriber, "magnet"):
            ledger.queue(session, "magnet", subscriber.id, f"magnet:{subscriber.id}:{magnet.id}:again:{consent.id}",
                         magnet_id=magnet.id)
        look_again(subscriber, aware(consent.requested_at))  # this magnet's follow-ups, if it has any
        return
    if name and subscriber.status == Status.PENDING.value:
        subscriber.name = name
    if subscriber.status == Status.PENDING.value:
        # As with the name: only until they confirm, so a stranger typing their address cannot move their clock.
        subscriber.time_zone = known_zone(request.time_zone) or subscriber.time_zone
    # A new address too: it may be one more +tag of a mailbox that was sent a confirmation a minute ago.
    if _may_mail_again(session, subscriber, "confirmation") and confirmation_cap.allows_confirmation(
            session, ip=request.ip):
        ledger.queue(session, "confirmation", subscriber.id, confirmation_key(consent.id), consent_id=consent.id)


class ConsentWithdrawn(Exception):
    """A confirmation link the reader's later word overrides; `subscriber.status` says which word."""

    def __init__(self, subscriber: Subscriber):
        super().__init__(subscriber.status)
        self.subscriber = subscriber


def consent_withdrawn(subscriber: Subscriber, consent: Consent) -> bool:
    """Whether confirming this consent would undo what came after it: an unsubscribe, a bounce or a complaint.

    A bounced address gets no new consent (_record), so any link it holds is older than the bounce. A complaint is
    lifted only by the reader: by confirming a signup made after it, as after an unsubscribe.
    """
    if subscriber.status == Status.BOUNCED.value:
        return True
    since = {Status.UNSUBSCRIBED.value: subscriber.unsubscribed_at,
             Status.COMPLAINED.value: subscriber.suppressed_at}
    if subscriber.status not in since:
        return False
    return since[subscriber.status] is None or aware(consent.requested_at) <= aware(since[subscriber.status])


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
        subscriber.unsubscribed_at = subscriber.suppressed_at = None
    if consent.magnet_id is not None:
        ledger.queue(session, "magnet", subscriber.id, f"magnet:{subscriber.id}:{consent.magnet_id}:{consent.id}",
                     magnet_id=consent.magnet_id)
    start_welcome(session, subscriber, now, after_unsubscribe=was in (Status.UNSUBSCRIBED.value, Status.COMPLAINED.value))
    return consent


def subscribe_again(session: Session, subscriber_id: int, consent: Consent | None, ip: str | None,
                    user_agent: str | None) -> None:
    """From an old link after an unsubscribe: a new consent and a new confirmation mail, as a signup (`consent`: the
    signup to repeat, the latest one when None)."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status != Status.UNSUBSCRIBED.value:
        return  # a bounce or complaint is never lifted here; a confirmed reader needs nothing
    consent = consent or session.scalars(select(Consent).where(Consent.subscriber_id == subscriber.id)
                                         .order_by(Consent.id.desc()).limit(1)).first()
    magnet = session.get(LeadMagnet, consent.magnet_id) if consent and consent.magnet_id is not None else None
    _record(session, subscriber.email, None, SignupRequest(
        email=subscriber.email, magnet=magnet.slug if magnet else None, source_url=consent.source_url if consent else None,
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
    if not _may_mail_again(session, subscriber, "magnet"):
        return False
    stamp = utcnow().strftime("%Y%m%d%H%M%S")
    ledger.queue(session, "magnet", subscriber.id, f"magnet:{subscriber.id}:{magnet.id}:renew:{stamp}",
                 magnet_id=magnet.id)
    return True


def _get_or_create(session: Session, email: str, name: str | None) -> Subscriber:
    """The subscriber with this address, made now if there was none; one statement either way."""
    # Two signups for one new address at once meet in one row, not in a failure on the unique index.
    insert = insert_for(session)
    now = utcnow()
    stmt = insert(Subscriber).values(email=email, mailbox=mailbox_of(email), name=name, status=Status.PENDING.value,
                                     created_at=now, updated_at=now, welcome_step=0)
    # A no-op update, so that RETURNING gives the row whether it was inserted or already there.
    stmt = stmt.on_conflict_do_update(index_elements=["email"], set_={"email": stmt.excluded.email})
    return session.scalars(stmt.returning(Subscriber), execution_options={"populate_existing": True}).one()


THROTTLE_GAP, THROTTLE_PER_DAY = timedelta(minutes=15), 3


@dataclass(frozen=True)
class HeldBack:
    """Why a mail a reader asked for is not owed: one went out in the last 15 minutes (`recently`), or three today;
    none is owed before `retry_at`."""
    recently: bool
    retry_at: datetime


def held_back(session: Session, subscriber_id: int, kind: str) -> HeldBack | None:
    """At most one mail of this kind per 15 minutes and three a day, whoever keeps asking: None when one may go.

    Confirmations count per mailbox (`subscriber.mailbox`, people/mailboxes.mailbox_of): a+1@…, a+2@… and, at
    Gmail, a.b@… are one mailbox, which a visitor cannot flood by tagging it anew each time.
    """
    now = utcnow()
    to_them = Delivery.subscriber_id == subscriber_id
    if kind == "confirmation":
        their_mailbox = select(Subscriber.mailbox).where(Subscriber.id == subscriber_id).scalar_subquery()
        to_them = or_(to_them, Delivery.subscriber_id.in_(select(Subscriber.id).where(Subscriber.mailbox == their_mailbox)))
    recent = sorted(aware(t) for t in session.scalars(
        select(Delivery.created_at).where(to_them, Delivery.kind == kind, Delivery.created_at > now - timedelta(days=1))))
    waits = []
    recently = bool(recent) and recent[-1] >= now - THROTTLE_GAP
    if recently:
        waits.append(recent[-1] + THROTTLE_GAP)
    if len(recent) >= THROTTLE_PER_DAY:
        waits.append(recent[-THROTTLE_PER_DAY] + timedelta(days=1))  # when the oldest of the last three leaves the day
    return HeldBack(recently, max(waits)) if waits else None


def _may_mail_again(session: Session, subscriber: Subscriber, kind: str) -> bool:
    return held_back(session, subscriber.id, kind) is None

"""The subscriber list as a whole: adding known people in batches (import, API) and each one's public record."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ..dialect import insert_for
from ..mail import identity
from ..models import Consent, Delivery, Status, Subscriber, aware, utcnow
from ..outbox import ledger
from .mailboxes import mailbox_of
from .sunset import stopped_reason

PENDING, CONFIRMED = Status.PENDING.value, Status.CONFIRMED.value
IMPORT = "import"  # the consent form of people added from a file
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"  # as the posts API writes times
# time_zone: as the signup's browser told it; sunset_at: when digests stopped under the sunset rule (people/sunset).
FIELDS = ("email", "name", "status", "created_at", "confirmed_at", "unsubscribed_at", "time_zone", "sunset_at")
GIVEN_ELSEWHERE = ("Consent to the occasional email with new {newsletter} posts was given elsewhere, "
                   "before being added from {source}.")
ASKED_BY_EMAIL = ("Added from {source}; asked by email to confirm before getting the occasional email "
                  "with new {newsletter} posts.")


@dataclass
class Added:
    """What adding one batch did."""

    created: int = 0
    updated: int = 0
    duplicates: int = 0   # already added earlier in the same run (same `stamp`)
    suppressed: int = 0   # existing unsubscribed, bounced or complained addresses: left exactly as they are
    erased: int = 0       # erased on request earlier: never added back by an import
    mails_owed: int = 0   # confirmation emails queued

    def add(self, other: Added) -> None:
        for name in ("created", "updated", "duplicates", "suppressed", "erased", "mails_owed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def add_subscribers(session: Session, people: dict[str, str | None], *, confirmed: bool, form: str,
                    source: str, stamp: datetime | None = None) -> Added:
    """Upsert normalised email -> name in one statement; a status only ever goes from pending to confirmed.

    Each address lands in exactly one count. Someone who unsubscribed, bounced or complained is not touched.
    """
    from .privacy import erased

    stamp = stamp or utcnow()
    result = Added()
    gone = erased(session, list(people))
    if gone:
        result.erased = len(gone)
        people = {email: name for email, name in people.items() if email not in gone}
    table = Subscriber.__table__
    before = {email: (status, aware(touched)) for email, status, touched in session.execute(
        select(table.c.email, table.c.status, table.c.updated_at).where(table.c.email.in_(list(people))))}
    done_in_this_run = {email for email, (_, touched) in before.items() if touched == stamp}
    left_alone = {email for email, (status, _) in before.items() if status not in (PENDING, CONFIRMED)}
    result.duplicates, result.suppressed = len(done_in_this_run), len(left_alone - done_in_this_run)
    untouched = done_in_this_run | left_alone
    rows = [_row(email, name, confirmed, form, stamp) for email, name in people.items() if email not in untouched]
    if not rows:
        return result
    insert = insert_for(session)
    stmt = insert(table)
    was_pending = table.c.status == PENDING
    stmt = stmt.on_conflict_do_update(index_elements=["email"], set_={
        "name": func.coalesce(stmt.excluded.name, table.c.name),
        "status": case((was_pending, stmt.excluded.status), else_=table.c.status),
        "confirmed_at": case((was_pending, stmt.excluded.confirmed_at), else_=table.c.confirmed_at),
        "welcome_step": case((was_pending, stmt.excluded.welcome_step), else_=table.c.welcome_step),
        # Also what marks the row as done by this run, so a later duplicate in the same file is not counted again.
        "updated_at": stmt.excluded.updated_at,
    }).returning(table.c.id, table.c.email)
    ids = {email: sub_id for sub_id, email in session.execute(stmt, rows)}
    owed = [ids[row["email"]] for row in rows if before.get(row["email"], (PENDING,))[0] == PENDING]
    for row in rows:
        prior = before.get(row["email"])
        result.created += prior is None
        result.updated += prior is not None
    if not confirmed:
        owed = _not_asked_lately(session, owed, stamp)
    result.mails_owed = _record_consent(session, owed, confirmed, form, source, stamp)
    return result


def _row(email: str, name: str | None, confirmed: bool, form: str, stamp: datetime) -> dict:
    # `imported` is written only with a new row: someone who signed up before and is in a file stays a signup.
    return {"email": email, "mailbox": mailbox_of(email), "name": name, "status": CONFIRMED if confirmed else PENDING,
            "created_at": stamp, "updated_at": stamp, "confirmed_at": stamp if confirmed else None, "imported": form == IMPORT,
            # Confirmed here means the welcome happened elsewhere: start after its first step, with nothing due.
            "welcome_step": 1 if confirmed else 0}


def _not_asked_lately(session: Session, subscriber_ids: list[int], stamp: datetime) -> list[int]:
    # Importing a file twice must not mail the same pending people twice a day.
    asked = set(session.scalars(select(Delivery.subscriber_id).where(
        Delivery.subscriber_id.in_(subscriber_ids), Delivery.kind == "confirmation",
        Delivery.created_at > stamp - timedelta(days=1))))
    return [sub_id for sub_id in subscriber_ids if sub_id not in asked]


def _record_consent(session: Session, subscriber_ids: list[int], confirmed: bool, form: str, source: str,
                    stamp: datetime) -> int:
    """One Consent row each; unconfirmed people are owed a confirmation mail. Returns the mails owed."""
    if not subscriber_ids:
        return 0
    text = (GIVEN_ELSEWHERE if confirmed else ASKED_BY_EMAIL).format(source=source, newsletter=identity.current().name)
    table = Consent.__table__
    consents = session.execute(table.insert().returning(table.c.id, table.c.subscriber_id), [
        {"subscriber_id": sub_id, "form": form, "consent_text": text, "requested_at": stamp,
         "confirmed_at": stamp if confirmed else None} for sub_id in subscriber_ids]).all()
    if confirmed:
        return 0
    # The rows ledger.queue writes, a batch per statement: one at a time costs ~0.5 ms each.
    insert = insert_for(session)
    session.execute(insert(Delivery.__table__).on_conflict_do_nothing(index_elements=["dedupe_key"]), [
        ledger.owed_row("confirmation", sub_id, f"import-confirmation:{consent_id}", stamp,
                        payload={"consent_id": consent_id}) for consent_id, sub_id in consents])
    return len(consents)


def public_record(subscriber) -> dict:
    """What the API and the CSV export show of a Subscriber (or a row with its columns); ISO 8601 in UTC.
    `status_reason` says why a confirmed reader gets no digests, when the sunset rule stopped them."""
    record = {"id": subscriber.id}
    for name in FIELDS:
        value = getattr(subscriber, name)
        if isinstance(value, datetime):
            value = aware(value).astimezone(timezone.utc).strftime(ISO_UTC)
        record[name] = value
    return {**record, "status_reason": stopped_reason(subscriber)}

"""/api/v1/subscribers and /api/v1/stats: the list, adding to it, one record, and counts."""
from __future__ import annotations

from datetime import timedelta

from flask import g, jsonify, request
from sqlalchemy import select

from .. import addresses
from ..addresses import InvalidSignup
from ..extensions import db
from ..models import Status, Subscriber, utcnow
from ..outbox import ledger
from ..people import subscriptions, tallies
from ..people.privacy import erased
from ..people.roster import add_subscribers, public_record
from ..people.subscriptions import SignupRequest
from ..posts import audiences
from ..posts.audiences import RuleError
from . import bp, error, read_json_object

DEFAULT_LIMIT, MAX_LIMIT = 100, 500
STATUSES = [s.value for s in Status]


@bp.get("/subscribers")
def subscribers_list():
    """Oldest first, `?status=`, `?q=` (email prefix), a segment's rules (`?magnet=` …, posts/audiences); `next` is
    the `?after=` of the following page, or null."""
    status, prefix = request.args.get("status"), request.args.get("q", "").strip().lower()
    if status is not None and status not in STATUSES:
        return error(f"?status= must be one of {', '.join(STATUSES)}.", 400, field="status")
    try:
        limit = min(_whole_number("limit", DEFAULT_LIMIT, least=1), MAX_LIMIT)
        after = _whole_number("after", 0, least=0)
    except InvalidSignup as exc:
        return error(str(exc), 400, field=exc.field)
    try:
        rules = audiences.from_query(db.session, request.args)
    except RuleError as exc:
        return error(str(exc), 400, field=exc.field)
    query = (select(Subscriber).where(Subscriber.id > after, *audiences.conditions(rules))
             .order_by(Subscriber.id).limit(limit + 1))
    if status:
        query = query.where(Subscriber.status == status)
    if prefix:
        # Stored lower-cased, so a prefix match on the unique index is already case-insensitive.
        query = query.where(Subscriber.email.startswith(prefix, autoescape=True))
    found = db.session.scalars(query).all()
    page = found[:limit]
    return jsonify(subscribers=[public_record(s) for s in page], next=page[-1].id if len(found) > limit else None)


@bp.post("/subscribers")
def subscribers_add():
    """Add someone: `confirmed` true records consent given elsewhere and sends nothing; false asks them by email."""
    data = read_json_object()
    try:
        email, name, confirmed = _person(data)
    except InvalidSignup as exc:
        return error(str(exc), 422, field=exc.field)
    existing = _find(email)
    if confirmed and existing is None and erased(db.session, [email]):
        return error("This address was erased at the person's request, so it is not added back by the API or an "
                     "import. Add it without \"confirmed\": they get a mail asking them to confirm.", 409, field="email")
    try:
        if confirmed or (existing is not None and existing.status != Status.PENDING.value):
            # One rule for the API and the import: a status only ever goes from pending to confirmed.
            add_subscribers(db.session, {email: name}, confirmed=confirmed, form="api", source=_source())
        else:
            subscriptions.subscribe(db.session, SignupRequest(email=email, name=name, form="api"))
    except InvalidSignup as exc:  # no lead magnet to offer, say
        db.session.rollback()
        return error(str(exc), 422, field=exc.field)
    db.session.commit()
    ledger.wake()
    return jsonify(public_record(_find(email))), 200 if existing is not None else 201


@bp.get("/subscribers/<path:email>")
def subscriber_one(email: str):
    """One subscriber by address, in any case."""
    try:
        found = _find(addresses.normalise_email(email))
    except InvalidSignup as exc:
        return error(str(exc), 404, field="email")
    if found is None:
        return error(f"No subscriber has the address {email!r}.", 404)
    return jsonify(public_record(found))


@bp.get("/subscribers/<path:email>/data")
def subscriber_data(email: str):
    """Everything stored about one subscriber (a data access request)."""
    from ..people.privacy import export_subscriber

    found = _find(email.strip().lower())
    if found is None:
        return error(f"No subscriber has the address {email!r}.", 404)
    return jsonify(export_subscriber(db.session, found))


@bp.delete("/subscribers/<path:email>")
def subscriber_erase(email: str):
    """Erase one subscriber's personal data; a hash stays so imports do not add them back."""
    from ..people.privacy import erase_subscriber

    found = _find(email.strip().lower())
    if found is None:
        return error(f"No subscriber has the address {email!r}.", 404)
    erase_subscriber(db.session, found)
    db.session.commit()
    return jsonify(erased=True)


@bp.get("/stats")
def stats():
    """Subscribers by status, signups and confirmations in the last 30 days (UTC, today included), how many an
    import brought, and deliveries by status and by kind. Signups are the forms' and the API's, as on the console's
    dashboard. Read from the exact tallies (people/tallies), not counted here."""
    today = utcnow().date()
    month = [today - timedelta(days=i) for i in range(30)]
    counts = tallies.read(db.session, [f"status:{s}" for s in STATUSES] + ["imported"]
                          + [tallies.day_counter(p, d) for d in month for p in ("signups", "confirmations")],
                          prefixes=["delivery_"])
    by_status = {s: counts[f"status:{s}"] for s in STATUSES}

    def deliveries(prefix: str) -> dict[str, int]:
        return {name.removeprefix(prefix): n for name, n in counts.items() if name.startswith(prefix) and n}

    return jsonify(
        subscribers={"by_status": by_status, "total": sum(by_status.values()),
                     "confirmations_last_30_days": sum(counts[tallies.day_counter("confirmations", d)] for d in month),
                     "signups_last_30_days": sum(counts[tallies.day_counter("signups", d)] for d in month),
                     "imported": counts["imported"]},
        deliveries={"by_status": deliveries("delivery_status:"), "by_kind": deliveries("delivery_kind:")},
    )


def _person(data: dict) -> tuple[str, str | None, bool]:
    email, name, confirmed = data.get("email"), data.get("name"), data.get("confirmed", False)
    if not isinstance(email, str):
        raise InvalidSignup("email", "Send the address as a string in 'email'.")
    if name is not None and not isinstance(name, str):
        raise InvalidSignup("name", "'name' must be a string or null.")
    if not isinstance(confirmed, bool):
        raise InvalidSignup("confirmed", "'confirmed' must be true or false.")
    return addresses.normalise_email(email), addresses.clean_name(name), confirmed


def _find(email: str) -> Subscriber | None:
    return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def _source() -> str:
    return f"the API (token {g.api_token.name!r})"


def _whole_number(name: str, default: int, least: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    # Bounded length: a 30-digit number would overflow the database's integer, not just miss.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18 and int(raw) >= least):
        raise InvalidSignup(name, f"?{name}= must be a whole number, at least {least}.")
    return int(raw)

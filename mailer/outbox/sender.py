"""The sender: a worker claims due rows, sends them a window at a time over one connection, records each result."""
from __future__ import annotations

import itertools
import logging
import random
import time
from datetime import datetime, timedelta
from functools import lru_cache, partial

from flask import current_app
from sqlalchemy import Connection, and_, bindparam, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ..bounces import events, verp
from ..dialect import on_postgresql
from ..extensions import db
from ..mail import identity
from ..mail.messages import Outgoing
from ..mail.pacing import Pacer
from ..mail.transport import PermanentFailure, SenderRejected, TemporaryFailure, open_transport
from ..models import NOT_BULK, Delivery, DeliveryStatus, Digest, DigestStatus, Subscriber, aware, utcnow
from ..ops import logs, metrics
from .compose import compose, may_send
from .receipts import Receipts

log = logging.getLogger(__name__)

QUEUED, SENDING = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value
SMTP_REPLY = "smtp"  # the provider of the bounce events our own sends record: the receiving server's 5xx


def claim_due(session: Session, limit: int, lease_seconds: int = 300, until: datetime | None = None) -> list[int]:
    """Mark up to `limit` due rows as ours for `lease_seconds` (or `until`); rows of a crashed worker come back when its lease ends.

    Mail a person is waiting for (anything but models.BULK_KINDS) is claimed first, then the rest in the order it
    fell due: a confirmation does not wait behind a digest of 100,000.
    """
    now = utcnow()
    until = until or now + timedelta(seconds=lease_seconds)
    ids = _claim(session, _due(session, now, limit, NOT_BULK_MAIL), until)
    if len(ids) < limit:
        ids += _claim(session, _due(session, now, limit - len(ids)), until)
    return sorted(ids)


# Literal, not a bound parameter: PostgreSQL uses the partial index ix_delivery_due_for_people only when it can
# see that the query implies the index's predicate.
NOT_BULK_MAIL = text(NOT_BULK)


def _due(session: Session, now: datetime, limit: int, *where):
    due = (
        select(Delivery.id)
        .where(or_(and_(Delivery.status == QUEUED, Delivery.next_attempt_at <= now),
                   and_(Delivery.status == SENDING, Delivery.lease_until < now)), *where)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    if on_postgresql(session):
        due = due.with_for_update(skip_locked=True)  # many workers, no two on one row
    return due


def _claim(session: Session, due, until: datetime) -> list[int]:
    claim = (
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(status=SENDING, lease_until=until)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.execute(claim).scalars())


def deliver_due(limit: int | None = None, more=None) -> int:
    """Claim and send one batch (batch_size() rows unless `limit`); `more()` is called first when the batch is
    full, so idle workers join in."""
    limit = limit or batch_size(current_app.config)
    identity.forget()  # each batch reads the settings again: a change in the console shows in the next mail
    pacer_for(current_app._get_current_object()).rest()
    lease = utcnow() + timedelta(seconds=current_app.config.get("LEASE_SECONDS", 300))
    ids = claim_due(db.session, limit, until=lease)
    db.session.commit()
    if len(ids) == limit and more is not None:
        more()
    if ids:
        send_claimed(ids, lease)
    return len(ids)


BATCH_SECONDS = 5  # with SEND_RATE: how long a batch may take at that rate


def batch_size(config) -> int:
    """SEND_BATCH rows; with SEND_RATE, no more than BATCH_SECONDS of mail at that rate.

    Mail for a person is claimed before digest rows but waits for a batch already in progress: at 14 mails/s a
    batch of 1000 would hold a confirmation for 71 s (and one at 1 mail/s would outlast its lease).
    """
    size, rate = max(1, config.get("SEND_BATCH", 1000)), config.get("SEND_RATE", 0)
    return min(size, max(1, int(rate * BATCH_SECONDS))) if rate > 0 else size


def send_claimed(ids: list[int], lease: datetime | None = None) -> None:
    """Send claimed rows over one connection, a window of SEND_WINDOW mails at a time, and write their results.

    The rows and their subscribers are read in one query, and the subscribers' statuses are read again
    whenever that read is more than STATUS_FRESHNESS old, just before each mail is made (after any wait for the
    send rate), so an unsubscribe or a change of preferences stops mail within that time even in a long batch.
    A window's mails go out together (`transport.send_all`, pipelined). On PostgreSQL each accepted mail is
    written the moment its reply is read (`Receipts`), so a killed worker sends again at most the mail whose
    reply was on its way; elsewhere a window's sent mails are written together (`_Results`): they are the mails
    in flight, which a killed worker may send twice. With a shared send rate the window is one mail, so the
    rate holds mail by mail. With `lease`, rows are sent only while that lease is
    ours: a row whose lease ran out may have been claimed again by another worker, so it is left to that worker.
    """
    config = current_app.config
    transport = open_transport(config)
    pacer = pacer_for(current_app._get_current_object())
    size = 1 if pacer.limiter is not None else max(1, config.get("SEND_WINDOW", 20))
    halted = _HaltedDigests()
    session, unsent, receipts = db.session(), list(ids), None
    try:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            receipts = Receipts(db.engine, lease) if on_postgresql(connection) else None
            results = _Results(connection, lease, receipts)
            try:
                batch = _Batch(session, ids, lease)
                position = 0
                while position < len(batch.rows):
                    unsent = batch.ids(position)
                    window = _Window(batch, position, size, lease, pacer, halted, results)
                    pause, untried = _send_window(transport, pacer, results, window)
                    results.write()
                    if session.in_transaction():
                        session.commit()  # ends whatever composing read: no snapshot is held between windows
                    position = window.end
                    unsent = untried + batch.ids(position)
                    if window.error is not None:
                        raise window.error
                    if window.lease_ending or pause is not None:
                        # Out of lease; or the server asked us to slow down, or refuses us: hand the rest back.
                        _release(unsent, lease, utcnow() + (pause or timedelta(0)))
                        return
                    _release(untried, lease, utcnow())  # the connection ended before their turn: soon, again
            except Exception:
                # The database went away mid-batch, most likely: write what was sent and give back what was not,
                # if it can be reached, rather than leave both to the end of the lease (when the sent would go again).
                session.rollback()
                try:
                    results.write()
                    _release(unsent, lease, utcnow())
                except Exception as exc:
                    log.warning("could not write %s results nor hand back %s unsent rows (%s); they return when "
                                "their lease ends", len(results.waiting), len(unsent), exc)
                raise
    finally:
        transport.close()
        if receipts is not None:
            _close_receipts(receipts)


def _close_receipts(receipts: Receipts) -> None:
    try:
        receipts.close()
    except Exception as exc:
        log.warning("could not read the answers to the last receipts (%s); rows not written return when their "
                    "lease ends", exc)


STATUS_FRESHNESS = 1.0  # seconds: how old a batch's reading of its subscribers' statuses may be when a mail starts
LEASE_MARGIN = 2  # seconds: never start a mail so close to the end of the lease that it could finish after
_pacers: dict[int, Pacer] = {}


def pacer_for(app) -> Pacer:
    """One pacer per app in a worker process, so a slowdown outlives the batch that caused it."""
    if id(app) not in _pacers:
        _pacers[id(app)] = Pacer(app.config.get("SEND_RATE", 0), app.config.get("REDIS_URL"))
    return _pacers[id(app)]


class Owed:
    """A Delivery row as read for sending: its columns as attributes, results mirrored on it."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


class Reader(Owed):
    """A Subscriber row as read for sending; `paused` as on the model."""

    paused = Subscriber.paused


_deliveries, _subscribers = Delivery.__table__, Subscriber.__table__
_READER_COLUMNS = [column.label(f"reader_{column.name}") for column in _subscribers.c]


class _Batch:
    """The claimed rows that are still ours, each with its subscriber, in id order; statuses kept fresh.

    The rows are read as plain values (`Owed`, `Reader`): they outlive the session's commits and rollbacks
    between mails, and cost a fraction of what loading and detaching ORM objects costs.
    """

    def __init__(self, session: Session, ids: list[int], lease: datetime | None):
        self.session = session
        mine = [_deliveries.c.id.in_(ids), _deliveries.c.status == SENDING]
        if lease is not None:
            mine.append(_deliveries.c.lease_until == lease)  # not sent and not claimed again meanwhile
        readers: dict[int, Reader] = {}
        self.rows = []
        for row in session.execute(select(_deliveries, *_READER_COLUMNS)
                                   .outerjoin(_subscribers, _subscribers.c.id == _deliveries.c.subscriber_id)
                                   .where(*mine).order_by(_deliveries.c.id)).all():
            values = row._mapping
            reader = None
            if values["reader_id"] is not None:  # several rows of one subscriber share one Reader
                reader = readers.setdefault(values["reader_id"], Reader(
                    {column.name: values[f"reader_{column.name}"] for column in _subscribers.c}))
            self.rows.append((Owed({column.name: values[column] for column in _deliveries.c}), reader))
        session.commit()
        self.read_at = time.monotonic()
        self._ids = [delivery.id for delivery, _ in self.rows]

    def ids(self, start: int) -> list[int]:
        return self._ids[start:]

    def keep_fresh(self, start: int) -> None:
        """Read the statuses of the subscribers from row `start` on again, if the last reading is too old."""
        if time.monotonic() - self.read_at < STATUS_FRESHNESS:
            return
        waiting = {s.id: s for _, s in self.rows[start:] if s is not None}
        fresh = {row.id: row for row in self.session.execute(
            select(Subscriber.id, Subscriber.status, Subscriber.digest_frequency, Subscriber.paused_until)
            .where(Subscriber.id.in_(waiting)))}
        self.session.commit()
        for subscriber_id, subscriber in waiting.items():
            row = fresh.get(subscriber_id)
            # Erased meanwhile: a status that lets nothing be sent.
            values = row._mapping if row else {"status": "erased", "digest_frequency": "none", "paused_until": None}
            for name in ("status", "digest_frequency", "paused_until"):
                setattr(subscriber, name, values[name])
        self.read_at = time.monotonic()


def _release(ids: list[int], lease: datetime | None, due: datetime) -> None:
    """Give claimed rows back to the queue, due at `due`."""
    if not ids:
        return
    mine = [Delivery.id.in_(ids), Delivery.status == SENDING]
    if lease is not None:
        mine.append(Delivery.lease_until == lease)
    db.session.execute(update(Delivery).where(*mine).values(status=QUEUED, lease_until=None, next_attempt_at=due)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _prepare(halted: _HaltedDigests, record, delivery: Owed, subscriber: Reader | None) -> Outgoing | None:
    """The message a claimed row owes, or None when it is not to be sent now (its result is then recorded)."""
    halt = halted.status(delivery.digest_id) if delivery.digest_id else None
    if halt is not None:
        # Paused or cancelled after this batch was claimed: hold the row for a resume, or drop it.
        paused = halt == DigestStatus.PAUSED.value
        record(status=DeliveryStatus.HELD.value if paused else DeliveryStatus.SKIPPED.value, lease_until=None,
               last_error=None if paused else "digest cancelled")
        if not paused:
            metrics.count_mail(delivery.kind, delivery.status)
        return None
    if not may_send(delivery, subscriber):
        status = subscriber.status if subscriber else None
        record(status=DeliveryStatus.SKIPPED.value,
               last_error=f"subscriber is {status}" if status != "confirmed" else "subscriber paused or wants no digests")
        metrics.count_mail(delivery.kind, delivery.status)
        return None
    try:
        return compose(delivery, subscriber)
    except Exception as exc:
        log.exception("delivery %s: could not build the message; will retry", delivery.id)
        db.session.rollback()  # whatever failed may have been a statement
        _retry_later(record, delivery, f"{type(exc).__name__}: {exc}")
        metrics.count_mail(delivery.kind, delivery.status)
        return None


class _Window:
    """Up to `size` rows from `start`, each checked and made into its message (`_prepare`) when the transport
    takes the next mail, so a message is made while the server answers the one before. Rows not to be sent
    have their result recorded and are not handed over. `end` is the first row not taken; an exception on the
    way ends the window and is kept in `error`, for after the window's results are recorded."""

    def __init__(self, batch: _Batch, start: int, size: int, lease: datetime | None, pacer: Pacer,
                 halted: _HaltedDigests, results: _Results):
        self.batch, self.end, self.stop = batch, start, min(start + size, len(batch.rows))
        self.lease, self.pacer, self.halted, self.results = lease, pacer, halted, results
        self.made: list[tuple[Owed, Reader | None, Outgoing]] = []
        self.lease_ending, self.error = False, None

    def __iter__(self):
        while self.end < self.stop:
            delivery, subscriber = self.batch.rows[self.end]
            try:
                self.pacer.wait()  # first: a long wait for the shared rate must not age the checks that follow
                if self.lease is not None and utcnow() > self.lease - timedelta(seconds=LEASE_MARGIN):
                    self.lease_ending = True
                    return
                self.batch.keep_fresh(self.end)
                with logs.delivery(delivery.id):
                    msg = _prepare(self.halted, partial(self.results.record, delivery), delivery, subscriber)
            except Exception as exc:
                self.error = exc
                return
            self.end += 1
            if msg is not None:
                self.made.append((delivery, subscriber, msg))
                yield msg, _envelope_sender(delivery), subscriber.email if subscriber else delivery.recipient


def _send_window(transport, pacer: Pacer, results: _Results, window: _Window) -> tuple[timedelta | None, list[int]]:
    """Send the window's messages and record each outcome; returns a pause when the rest of the batch should
    wait, and the rows made but not tried (the connection ended, or the server refused us, before their turn)."""
    started = time.perf_counter()

    def accepted(n: int, _reply: str) -> None:
        delivery, _, msg = window.made[n]
        results.accepted(delivery, msg)

    outcomes = transport.send_all(window, accepted=accepted)
    per_mail = (time.perf_counter() - started) / max(len(window.made), 1)
    pause, untried = None, []
    for (delivery, subscriber, msg), outcome in itertools.zip_longest(window.made, outcomes):  # one per mail taken
        if outcome is None:
            untried.append(delivery.id)
            continue
        metrics.smtp_send_seconds().observe(per_mail)
        with logs.delivery(delivery.id):
            pause = _conclude(pacer, partial(results.record, delivery), delivery, subscriber, msg, outcome) or pause
    return pause, untried


def _conclude(pacer: Pacer, record, delivery: Owed, subscriber: Reader | None, msg: Outgoing,
              outcome: str | Exception) -> timedelta | None:
    """Record what the server said about one mail; returns a pause when the rest of the batch should wait."""
    pause = None
    if isinstance(outcome, str):
        pacer.accepted()
        record(status=DeliveryStatus.SENT.value, sent_at=utcnow(), message_id=msg.message_id, last_error=None)
        log.info("delivery %s (%s) to subscriber %s: %s", delivery.id, delivery.kind, delivery.subscriber_id, outcome)
    elif isinstance(outcome, SenderRejected):
        # Our configuration is wrong (MAIL_FROM, SMTP credentials): retry once it is fixed; bounce nobody.
        log.error("delivery %s: %s; check MAIL_FROM and SMTP_URL", delivery.id, outcome)
        _retry_later(record, delivery, str(outcome))
        pause = timedelta(seconds=current_app.config.get("RETRY_BASE_SECONDS", 30))
    elif isinstance(outcome, PermanentFailure):
        _fail(record, delivery, subscriber, str(outcome))
    elif isinstance(outcome, TemporaryFailure):
        if pacer.throttled(outcome.code):
            pause = timedelta(seconds=pacer.backoff)
        _retry_later(record, delivery, str(outcome))
    else:
        log.error("delivery %s: could not send the message; will retry", delivery.id, exc_info=outcome)
        _retry_later(record, delivery, f"{type(outcome).__name__}: {outcome}")
    metrics.count_mail(delivery.kind, delivery.status)
    return pause


class _Results:
    """Writes each result while the row is still ours, as one UPDATE committed on its own (autocommit).

    With `receipts` (PostgreSQL), a sent mail was written as the server accepted it (`accepted`), and `write()`
    reads the answers. Otherwise sent mails wait for `write()`, at the end of their window, and are written
    together: they are the mails in flight, and a worker killed before writing them costs that many duplicates
    at most, when their lease ends and another worker sends them again. Any other result is written at once,
    after those waiting. Each result is mirrored on the row's Owed for the metrics and the log line.
    """

    def __init__(self, connection: Connection, lease: datetime | None, receipts: Receipts | None = None):
        self.connection, self.lease, self.receipts = connection, lease, receipts
        self.waiting: list[tuple[Owed, datetime, str]] = []
        self.receipted: set[int] = set()
        self.many = on_postgresql(connection)

    def accepted(self, delivery: Owed, msg: Outgoing) -> None:
        """The server accepted this mail: its receipt goes now, before anything more is sent."""
        if self.receipts is not None:
            self.receipts.accepted(delivery.id, utcnow(), msg.message_id)
            self.receipted.add(delivery.id)

    def record(self, delivery: Owed, **values) -> None:
        if values.get("status") == DeliveryStatus.SENT.value and values.keys() == _SENT_COLUMNS:
            if delivery.id in self.receipted:
                self.receipted.discard(delivery.id)  # written already
            else:
                self.waiting.append((delivery, values["sent_at"], values["message_id"]))
        else:
            self.write()
            self._one(delivery, values)
        for name, value in values.items():
            setattr(delivery, name, value)

    def write(self) -> None:
        """Write the sent mails that wait, and read the answers to the receipts."""
        if self.receipts is not None:
            for row_id in self.receipts.settle():
                _not_ours(row_id, DeliveryStatus.SENT.value)
        if not self.waiting:
            return
        if not self.many:
            for delivery, sent_at, message_id in self.waiting:
                self._one(delivery, {"status": DeliveryStatus.SENT.value, "sent_at": sent_at,
                                     "message_id": message_id, "last_error": None})
            self.waiting = []
            return
        ids = [delivery.id for delivery, _, _ in self.waiting]
        # One time for the window: its mails were accepted within milliseconds of each other.
        params = {"ids": ids, "sent_at": self.waiting[-1][1], "message_ids": [mid for _, _, mid in self.waiting],
                  "lease": self.lease}
        written = set(self._execute(_SENT_MANY_LEASED if self.lease else _SENT_MANY, params).scalars())
        self.waiting = []
        for row_id in ids:
            if row_id not in written:
                _not_ours(row_id, DeliveryStatus.SENT.value)

    def _one(self, delivery: Delivery, values: dict) -> None:
        params = {"row_id": delivery.id, "lease": self.lease, **{f"new_{k}": v for k, v in values.items()}}
        if self._execute(_record_statement(frozenset(values), self.lease is not None), params).rowcount == 0:
            _not_ours(delivery.id, values.get("status"))

    def _execute(self, statement, params: dict):
        try:
            return self.connection.execute(statement, params)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return self.connection.execute(statement, params)  # a new connection from the pool, once


_SENT_COLUMNS = {"status", "sent_at", "message_id", "last_error"}


def _not_ours(row_id: int, status: str | None) -> None:
    log.warning("delivery %s was no longer ours to record as %s (its lease ran out; another worker has it)",
                row_id, status)


# Built once: building and keying a statement costs more CPU than the database's work on it.
_SENT_MANY_SQL = """
    UPDATE delivery SET status = 'sent', sent_at = :sent_at, message_id = r.message_id, last_error = NULL
    FROM unnest(CAST(:ids AS integer[]), CAST(:message_ids AS varchar[])) AS r (id, message_id)
    WHERE delivery.id = r.id AND delivery.status = 'sending' {lease}
    RETURNING delivery.id"""
_SENT_MANY = text(_SENT_MANY_SQL.format(lease="")).bindparams(bindparam("sent_at", type_=_deliveries.c.sent_at.type))
_SENT_MANY_LEASED = text(_SENT_MANY_SQL.format(lease="AND delivery.lease_until = :lease")).bindparams(
    bindparam("sent_at", type_=_deliveries.c.sent_at.type), bindparam("lease", type_=_deliveries.c.lease_until.type))


@lru_cache(maxsize=None)
def _record_statement(columns: frozenset[str], leased: bool):
    mine = [_deliveries.c.id == bindparam("row_id"), _deliveries.c.status == SENDING]
    if leased:
        mine.append(_deliveries.c.lease_until == bindparam("lease", type_=_deliveries.c.lease_until.type))
    return (update(_deliveries).where(*mine)
            .values({name: bindparam(f"new_{name}", type_=_deliveries.c[name].type) for name in columns}))


class _HaltedDigests:
    """Which digests are paused or cancelled, looked up at most once a second per batch."""

    def __init__(self):
        self.checked_at, self.statuses = 0.0, {}

    def status(self, digest_id: int) -> str | None:
        """'paused' or 'cancelled' for a halted digest, None for one that is sending."""
        if time.monotonic() - self.checked_at > 1:
            halted = [DigestStatus.PAUSED.value, DigestStatus.CANCELLED.value]
            self.statuses = dict(db.session.execute(select(Digest.id, Digest.status).where(Digest.status.in_(halted))).all())
            self.checked_at = time.monotonic()
        return self.statuses.get(digest_id)


def _envelope_sender(delivery: Delivery) -> str:
    # VERP: a bounce to this address names the delivery, and only we can make one that verifies.
    return verp.envelope_sender(delivery.id)


def _fail(record, delivery: Delivery, subscriber: Subscriber | None, error: str) -> None:
    """Refused for good at the SMTP reply: a hard bounce, recorded as an event like any bounce report, so the
    suppression, the bounce rates and the reputation guard count it. The address is bounced before the row is
    written, so a crash in between still stops the mail; a complaint recorded meanwhile stays.
    """
    if subscriber is not None:
        events.record_event(db.session, SMTP_REPLY, str(delivery.id), events.HARD, delivery_id=delivery.id,
                            detail=error, match_email=False)
        db.session.commit()
        subscriber.status = db.session.scalar(select(Subscriber.status).where(Subscriber.id == subscriber.id))
    # Answered for good, as an accepted mail is: the rates count it among the mails their servers answered.
    record(status=DeliveryStatus.FAILED.value, last_error=error[:500], attempts=delivery.attempts + 1, sent_at=utcnow())
    log.warning("delivery %s refused for good (%s); subscriber %s marked bounced",
                delivery.id, error, delivery.subscriber_id)


def _retry_later(record, delivery: Delivery, error: str) -> None:
    config = current_app.config
    attempts = delivery.attempts + 1
    deadline = aware(delivery.created_at) + timedelta(seconds=config.get("RETRY_DEADLINE", 3 * 24 * 3600))
    delay = min(config.get("RETRY_BASE_SECONDS", 30) * 2 ** (attempts - 1), 3600) * random.uniform(0.5, 1.5)
    when = utcnow() + timedelta(seconds=delay)
    if when > deadline:
        record(status=DeliveryStatus.FAILED.value, attempts=attempts, last_error=error[:500])
        log.error("delivery %s gave up after %s attempts: %s", delivery.id, attempts, error)
        return
    record(status=QUEUED, attempts=attempts, last_error=error[:500], next_attempt_at=when, lease_until=None)
    log.warning("delivery %s: %s; retrying in %.0f s", delivery.id, error, delay)



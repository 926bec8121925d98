"""The ledger: owing a mail is writing its Delivery row in the caller's transaction; after commit, a wake-up."""
from __future__ import annotations

import json
import logging
import threading
import time

from flask import current_app
from sqlalchemy import JSON, ColumnElement, Text, cast, func, literal, select
from sqlalchemy.orm import Session

from ..dialect import insert_for
from ..models import Delivery, DeliveryStatus, utcnow

log = logging.getLogger(__name__)

QUEUED = DeliveryStatus.QUEUED.value


def owed_row(kind: str, subscriber_id, dedupe_key, now, *, payload=None, **columns) -> dict:
    """The values of a new Delivery row, owed now and not yet tried: every INSERT into the ledger is made of these.

    The set-based statements (a digest's INSERT … SELECT, an import's batch, the one-statement signup) pass SQL
    expressions where a value differs by row; `as_select` turns the rest into literals.
    """
    return {"kind": kind, "subscriber_id": subscriber_id, "dedupe_key": dedupe_key,
            "payload": {} if payload is None else payload, "status": QUEUED, "attempts": 0, "next_attempt_at": now,
            "created_at": now, **columns}


def as_select(row: dict) -> list:
    """An owed_row as the column list of an INSERT … SELECT: its SQL expressions as they are, its values as literals."""
    columns = Delivery.__table__.c
    return [value if isinstance(value, ColumnElement) or hasattr(value, "__clause_element__") else
            cast(literal(json.dumps(value)), PAYLOAD) if isinstance(value, dict) else literal(value, columns[name].type)
            for name, value in row.items()]


# PostgreSQL needs the JSON text cast to json; SQLite's CAST(… AS JSON) has numeric affinity and makes it 0.
PAYLOAD = JSON().with_variant(Text(), "sqlite")


def queue(session: Session, kind: str, subscriber_id: int | None, dedupe_key: str, *,
          recipient: str | None = None, **payload) -> bool:
    """Owe one mail; returns False when a mail with this key is already owed or sent."""
    insert = insert_for(session)
    stmt = insert(Delivery).values(owed_row(kind, subscriber_id, dedupe_key, utcnow(), payload=payload,
                                            recipient=recipient)).on_conflict_do_nothing(index_elements=["dedupe_key"])
    # RETURNING, not rowcount: the driver may report -1 for an INSERT that did insert.
    delivery_id = session.execute(stmt.returning(Delivery.id)).scalar()
    if delivery_id is not None:
        note_owed(session, delivery_id)
    return delivery_id is not None


def note_owed(session: Session, delivery_id: int) -> None:
    """Remember a row owed on the caller's behalf (queue() does it; so does a statement that inserts its own)."""
    session.info.setdefault("owed_deliveries", []).append(delivery_id)


def owed(session: Session) -> list[int]:
    """The ids of the rows owed (note_owed) in this session since the last call: for the caller's log line."""
    return session.info.pop("owed_deliveries", [])


def wake() -> None:
    """Ask a worker to send now; call only after commit. If the broker is down, beat's sweep sends later."""
    app = current_app._get_current_object()
    app.extensions.setdefault("doorbell", _Doorbell()).ring(app.extensions["celery"])  # one per app: its own broker


WAKE_INTERVAL = 0.05  # seconds: at most one wake-up message per process in this time


class _Doorbell:
    """Rings at once when it has been quiet, else once more at the end of the interval: a burst of signups sends
    two messages, not one each, and the last ring always comes after the last commit that asked for it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rung_at = float("-inf")
        self._later: threading.Timer | None = None

    def ring(self, celery) -> None:
        with self._lock:
            wait = self._rung_at + WAKE_INTERVAL - time.monotonic()
            if wait > 0:
                if self._later is None:
                    self._later = threading.Timer(wait, self._ring_later, [celery])
                    self._later.daemon = True  # lost with its process: then beat's sweep sends
                    self._later.start()
                return
            self._rung_at = time.monotonic()
        _publish(celery)

    def _ring_later(self, celery) -> None:
        with self._lock:
            self._later, self._rung_at = None, time.monotonic()
        _publish(celery)


def _publish(celery) -> None:
    try:
        celery.send_task("worker.tasks.deliver_due", ignore_result=True)
    except Exception as exc:  # any broker failure: the rows are safe, only the wake-up is lost
        log.warning("could not reach the task broker (%s); queued mail goes out at the next sweep", exc)


def due_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == QUEUED)) or 0

"""The common signup, an address we have never seen, stored in one statement on PostgreSQL.

The subscriber, their consent and the confirmation mail owed to them are three INSERTs chained by data-modifying
CTEs, run in autocommit: one round trip, and the statement is its own transaction, so either all three rows are
committed or none is. When the address is already known the statement writes nothing, and the caller takes the
general path (subscriptions.subscribe), which has the rules for people we know.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ..models import CONFIRMATION_KEY
from ..outbox import ledger

# In the driver's own parameter style: run through its cursor (see store()).
STATEMENT = """
WITH magnet AS (
    SELECT id, title FROM lead_magnet WHERE slug = %(magnet)s
), new_subscriber AS (
    INSERT INTO subscriber (email, name, status, created_at, updated_at, welcome_step, digest_frequency)
    SELECT %(email)s, %(name)s, 'pending', %(now)s, %(now)s, 0, 'every' FROM magnet
    ON CONFLICT (email) DO NOTHING
    RETURNING id
), new_consent AS (
    INSERT INTO consent (subscriber_id, magnet_id, source_url, form, ip, user_agent, consent_text, requested_at)
    SELECT new_subscriber.id, magnet.id, %(source_url)s, %(form)s, %(ip)s, %(user_agent)s,
           replace(%(consent_text)s, '{magnet}', magnet.title), %(now)s
    FROM new_subscriber, magnet
    RETURNING id, subscriber_id
), confirmation AS (
    INSERT INTO delivery ({owed_columns})
    SELECT {owed_values}
    FROM new_consent WHERE %(mail_confirmation)s
    RETURNING id
)
SELECT (SELECT id FROM magnet), (SELECT id FROM new_subscriber), (SELECT id FROM confirmation)
"""
# The confirmation's row as ledger.owed_row describes every owed mail, each column as this statement computes it
# from the consent just inserted (its id, its subscriber).
OWED = ledger.owed_row("confirmation", None, None, None)
OWED_SQL = {"kind": "%(kind)s", "subscriber_id": "subscriber_id", "dedupe_key": "%(key)s || id",
            "payload": "CAST(%(payload_start)s || id || '}' AS json)", "status": "%(status)s",
            "attempts": "%(attempts)s", "next_attempt_at": "%(now)s", "created_at": "%(now)s"}
STATEMENT = STATEMENT.replace("{owed_columns}", ", ".join(OWED)).replace(
    "{owed_values}", ", ".join(OWED_SQL[column] for column in OWED))
# The payload as ledger.queue writes it (SQLAlchemy's JSON type: json.dumps), with the consent id appended.
PAYLOAD_START = json.dumps({"consent_id": 0})[:-2]
CONSTANTS = {"kind": OWED["kind"], "status": OWED["status"], "attempts": OWED["attempts"], "key": CONFIRMATION_KEY,
             "payload_start": PAYLOAD_START}


@dataclass(frozen=True)
class Stored:
    magnet_id: int | None        # None: no lead magnet has this slug, and nothing was written
    subscriber_id: int | None    # None: the address is known, and nothing was written
    confirmation_id: int | None  # the delivery owed, None when the hourly cap said no


def store(connection: Connection, *, email: str, name: str | None, magnet: str, source_url: str | None, form: str,
          ip: str | None, user_agent: str | None, consent_text: str, now: datetime, mail_confirmation: bool) -> Stored:
    """Run the statement on `connection`, which must be in autocommit (the statement is its own transaction).

    Through the driver's cursor: SQLAlchemy's result machinery would cost as much again as the statement. A
    driver error is raised as SQLAlchemy's, as Connection.execute raises it (the app answers OperationalError
    with 503), and a lost connection is invalidated, so that the pool does not hand it out again.
    """
    values = {"magnet": magnet, "email": email, "name": name, "source_url": source_url, "form": form, "ip": ip,
              "user_agent": user_agent, "consent_text": consent_text, "now": now,
              "mail_confirmation": mail_confirmation, **CONSTANTS}
    dialect, cursor = connection.dialect, connection.connection.cursor()
    try:
        cursor.execute(STATEMENT, values)
        return Stored(*cursor.fetchone())
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(STATEMENT, values, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost,
                                  dialect=dialect) from exc
    finally:
        cursor.close()

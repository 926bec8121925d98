"""A signup stored in one statement on PostgreSQL, for a new address and a known one alike.

The subscriber, their consent and the mail owed to them are INSERTs chained by data-modifying CTEs, run in
autocommit: one round trip, and the statement is its own transaction, so either every row is committed or none
is. A known address gets what subscriptions._record gives it, in the same statement: a new consent and, within
the per-address throttle, a confirmation (pending, unsubscribed, complained: only the reader lifts a complaint, by confirming) or the
download link again (confirmed); a bounced one gets nothing. One statement either way, so that the answer takes as long for a known
address as for a new one and its time does not tell which it was. When an address another signup inserted
between this statement's snapshot and its INSERT is neither seen nor inserted, the statement writes nothing, and
the caller takes the general path (subscriptions.subscribe).
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
# The throttle (`throttled`) is subscriptions._may_mail_again's: one mail of a kind per 15 minutes, three a day,
# confirmations counted per mailbox (mailboxes.mailbox_of, passed in as `mailbox`), for a new address too.
STATEMENT = """
WITH magnet AS (
    SELECT id, title FROM lead_magnet WHERE slug = %(magnet)s
), known AS (
    SELECT id, status FROM subscriber WHERE email = %(email)s FOR UPDATE
), new_subscriber AS (
    INSERT INTO subscriber (email, mailbox, name, status, created_at, updated_at, welcome_step, digest_frequency,
                            time_zone)
    SELECT %(email)s, %(mailbox)s, %(name)s, 'pending', %(now)s, %(now)s, 0, 'every', %(time_zone)s FROM magnet
    WHERE NOT EXISTS (SELECT 1 FROM known)
    ON CONFLICT (email) DO NOTHING
    RETURNING id
), person AS (
    SELECT id, 'pending' AS status FROM new_subscriber
    UNION ALL
    SELECT id, status FROM known WHERE status <> 'bounced'
), renamed AS (
    -- The name and the browser's time zone, as typed again, only until they confirm.
    UPDATE subscriber SET name = coalesce(%(name)s, subscriber.name),
                          time_zone = coalesce(%(time_zone)s, subscriber.time_zone) FROM known, magnet
    WHERE subscriber.id = known.id AND known.status = 'pending'
      AND (%(name)s IS NOT NULL OR %(time_zone)s IS NOT NULL)
    RETURNING subscriber.id
), looked_again AS (
    -- A confirmed reader taking a magnet: beat works out their next step now (welcome.look_again), its follow-ups.
    UPDATE subscriber SET welcome_next_at = %(now)s FROM known, magnet
    WHERE subscriber.id = known.id AND known.status = 'confirmed'
      AND (subscriber.welcome_next_at IS NULL OR subscriber.welcome_next_at > %(now)s)
    RETURNING subscriber.id
), new_consent AS (
    INSERT INTO consent (subscriber_id, magnet_id, source_url, form, ip, user_agent, consent_text, requested_at)
    SELECT person.id, magnet.id, %(source_url)s, %(form)s, %(ip)s, %(user_agent)s,
           replace(%(consent_text)s, '{magnet}', magnet.title), %(now)s
    FROM person, magnet
    RETURNING id, subscriber_id
), throttled AS (
    SELECT kind FROM delivery
    WHERE kind IN ('confirmation', 'magnet') AND created_at > %(now)s - interval '1 day'
      AND (subscriber_id = (SELECT id FROM known) OR kind = 'confirmation'
           AND subscriber_id IN (SELECT id FROM subscriber WHERE mailbox = %(mailbox)s))
    GROUP BY kind HAVING count(*) >= 3 OR max(created_at) >= %(now)s - interval '15 minutes'
), confirmation AS (
    {confirmation_row}
    FROM new_consent, person
    WHERE %(mail_confirmation)s AND person.status IN ('pending', 'unsubscribed', 'complained')
      AND NOT EXISTS (SELECT 1 FROM throttled WHERE kind = 'confirmation')
    RETURNING id
), link_again AS (
    {link_again_row}
    FROM new_consent, person, magnet
    WHERE person.status = 'confirmed' AND NOT EXISTS (SELECT 1 FROM throttled WHERE kind = 'magnet')
    RETURNING id
)
SELECT (SELECT id FROM magnet), (SELECT id FROM new_subscriber), (SELECT id FROM known),
       (SELECT id FROM confirmation), (SELECT id FROM link_again)
"""


def _owed(**computed: str) -> str:
    """An INSERT of one owed row as ledger.owed_row describes every owed mail: the columns this statement computes
    (`computed`, as SQL), owed_row's own values for the rest (as parameters, `owed_<column>`)."""
    row = ledger.owed_row(None, None, None, None)
    return (f"INSERT INTO delivery ({', '.join(row)})\n    SELECT "
            + ", ".join(computed.get(column, f"%(owed_{column})s") for column in row))


STATEMENT = STATEMENT.replace("{confirmation_row}", _owed(
    kind="'confirmation'", subscriber_id="new_consent.subscriber_id", dedupe_key="%(key)s || new_consent.id",
    payload="CAST(%(payload_start)s || new_consent.id || '}' AS json)", next_attempt_at="%(now)s",
    created_at="%(now)s")).replace("{link_again_row}", _owed(
    kind="'magnet'", subscriber_id="new_consent.subscriber_id",
    dedupe_key="'magnet:' || new_consent.subscriber_id || ':' || magnet.id || ':again:' || new_consent.id",
    payload="CAST(%(magnet_payload_start)s || magnet.id || '}' AS json)", next_attempt_at="%(now)s",
    created_at="%(now)s"))
# The payloads as ledger.queue writes them (SQLAlchemy's JSON type: json.dumps), with the id appended.
PAYLOAD_START = json.dumps({"consent_id": 0})[:-2]
MAGNET_PAYLOAD_START = json.dumps({"magnet_id": 0})[:-2]
CONSTANTS = {"key": CONFIRMATION_KEY, "payload_start": PAYLOAD_START, "magnet_payload_start": MAGNET_PAYLOAD_START,
             **{f"owed_{column}": value for column, value in ledger.owed_row(None, None, None, None).items()}}


@dataclass(frozen=True)
class Stored:
    magnet_id: int | None        # None: no lead magnet has this slug, and nothing was written
    subscriber_id: int | None    # the subscriber made now; None when the address was known
    known_id: int | None         # the subscriber who had this address already
    confirmation_id: int | None  # the confirmation owed; None for a confirmed, suppressed or throttled address,
                                 # or when the hourly cap said no
    link_again_id: int | None    # the download link owed again to a confirmed subscriber

    @property
    def handled(self) -> bool:
        """Whether the statement did the signup (else nothing was written, and the general path must)."""
        return self.magnet_id is not None and (self.subscriber_id or self.known_id) is not None

    @property
    def owed(self) -> list[int]:
        return [i for i in (self.confirmation_id, self.link_again_id) if i is not None]


def store(connection: Connection, *, email: str, mailbox: str, name: str | None, magnet: str, source_url: str | None,
          form: str, ip: str | None, user_agent: str | None, consent_text: str, now: datetime,
          mail_confirmation: bool, time_zone: str | None = None) -> Stored:
    """Run the statement on `connection`, which must be in autocommit (the statement is its own transaction).

    Through the driver's cursor: SQLAlchemy's result machinery would cost as much again as the statement. A
    driver error is raised as SQLAlchemy's, as Connection.execute raises it (the app answers OperationalError
    with 503), and a lost connection is invalidated, so that the pool does not hand it out again.
    """
    values = {"magnet": magnet, "email": email, "mailbox": mailbox, "name": name, "source_url": source_url,
              "form": form, "ip": ip, "user_agent": user_agent, "consent_text": consent_text, "now": now,
              "mail_confirmation": mail_confirmation, "time_zone": time_zone, **CONSTANTS}
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

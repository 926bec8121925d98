"""Receipts: each mail the SMTP server accepted, written to PostgreSQL the moment its reply is read.

A mail whose acceptance is not yet in the database is one a killed worker sends twice, when its lease ends and
another worker takes the row. Waiting for the database after every mail would cost a round trip a mail, so the
receipts go through a connection of their own in pipeline mode: each is an UPDATE followed by a Sync (which
commits it on its own), written to the socket without waiting for the answer, and the answers are read when
they have arrived, and all of them at the end of each window. A SIGKILL then costs at most the one mail whose
reply was on its way.

Each receipt commits with `synchronous_commit` off for its own transaction (`set_config(…, true)`, so nothing
stays set on the pooled connection, nor on a PgBouncer's): its commit is visible and survives any client at
once, and reaches the disk within three times PostgreSQL's `wal_writer_delay` (0.6 s by default), so only a
crash of PostgreSQL's own host in that moment can lose a receipt (and cost that mail twice). With it on, one
connection's commits wait for a disk flush each: 466 a second on the development machine, slower than the
mails go.
"""
from __future__ import annotations

import logging
import select
from collections import deque
from datetime import datetime

from psycopg import pq

log = logging.getLogger(__name__)

# A receipt counts itself, in the same statement (the tallies of migration 0027, mailer/people/tallies.py): the row
# goes from sending to sent, answered that day (and for its digest). `mailer.tally` tells the delivery trigger to leave the statement alone, since a trigger
# run per mail would cost the sender about as much as the UPDATE does.
_SENT = (b"WITH sent AS (UPDATE delivery SET status = 'sent', sent_at = $2::timestamptz, message_id = $3,"
         b" last_error = NULL FROM (SELECT set_config('synchronous_commit', 'off', true),"
         b" set_config('mailer.tally', 'in statement', true)) AS this_commit"
         b" WHERE id = $1::integer AND status = 'sending'")
_COUNTED = (b" RETURNING digest_id) INSERT INTO tally_delta (counter, n) SELECT counter, n FROM sent, LATERAL"
            b" (VALUES ('delivery_status:sent', 1), ('delivery_status:sending', -1),"
            b" ('answered:' || tally_day($2::timestamptz), 1), ('digest_answered:' || sent.digest_id, 1))"
            b" AS moved (counter, n) WHERE counter IS NOT NULL")
# Prepared once per connection, as psycopg prepares the app's other repeated statements: planning this one
# each time cost PostgreSQL more than running it (220 µs of its CPU a receipt unprepared, 150 prepared).
_STATEMENTS = {False: (b"mailer_receipt", _SENT + _COUNTED),
               True: (b"mailer_receipt_leased", _SENT + b" AND lease_until = $4::timestamptz" + _COUNTED)}

class ReceiptError(Exception):
    """PostgreSQL refused a receipt, or the connection for them was lost."""


class Receipts:
    """A pipelined connection taken from the engine's pool for one batch; `close()` gives it back."""

    def __init__(self, engine, lease: datetime | None):
        self.lease = lease
        self._raw = engine.raw_connection()
        self._pg = self._raw.driver_connection.pgconn  # driven below psycopg: no BEGIN is ever sent
        self._statement = self._prepared(*_STATEMENTS[lease is not None])
        self._pg.enter_pipeline_mode()
        self._pg.nonblocking = 1
        self._sent: deque[int] = deque()  # the rows whose UPDATE has no answer yet, in the order sent
        self._syncs = 0
        self.not_ours: list[int] = []

    def accepted(self, delivery_id: int, sent_at: datetime, message_id: str | None) -> None:
        """Write one receipt without waiting for its answer."""
        params = [str(delivery_id).encode(), sent_at.isoformat().encode(),
                  message_id.encode() if message_id is not None else None]
        if self.lease is not None:
            params.append(self.lease.isoformat().encode())
        self._pg.send_query_prepared(self._statement, params)
        self._pg.pipeline_sync()
        self._sent.append(delivery_id)
        self._syncs += 1
        self._flush()
        self._read(wait=False)  # keep the socket's incoming side empty, so a close never resets what we sent

    def _prepared(self, name: bytes, statement: bytes) -> bytes:
        """The statement's name, prepared on this connection unless it already was (one round trip a batch)."""
        if self._pg.describe_prepared(name).status != pq.ExecStatus.COMMAND_OK:
            done = self._pg.prepare(name, statement)
            if done.status != pq.ExecStatus.COMMAND_OK:
                self._raw.close()
                raise ReceiptError(f"PostgreSQL refused the receipt statement: {done.error_message.decode().strip()}")
        return name

    def settle(self) -> list[int]:
        """Wait for every answer; returns the rows found no longer ours (their lease ran out), since last time."""
        self._flush()
        self._read(wait=True)
        found, self.not_ours = self.not_ours, []
        return found

    def close(self) -> None:
        """Settle and give the connection back to the pool as it was; a broken one is thrown away."""
        try:
            if self._syncs:
                self.settle()
            self._pg.nonblocking = 0
            self._pg.exit_pipeline_mode()
        except Exception:
            self._raw.invalidate()
            raise
        finally:
            self._raw.close()

    def _flush(self) -> None:
        while self._pg.flush() == 1:
            select.select([], [self._pg.socket], [], 1)

    def _read(self, wait: bool) -> None:
        """Take the answers that have arrived (with `wait`: until none is missing)."""
        while self._syncs:
            if wait:
                select.select([self._pg.socket], [], [], 1)
            self._pg.consume_input()
            if self._pg.status == pq.ConnStatus.BAD:
                raise ReceiptError(f"the connection for receipts was lost: {self._pg.get_error_message()}")
            while self._syncs and not self._pg.is_busy():
                self._take(self._pg.get_result())
            if not wait:
                return

    def _take(self, result) -> None:
        if result is None:  # the end of one statement's results
            return
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            self._syncs -= 1
        elif result.status == pq.ExecStatus.COMMAND_OK:
            row_id = self._sent.popleft()
            if result.command_tuples == 0:  # the counters' rows: none when no row was updated
                self.not_ours.append(row_id)
        else:
            message = result.error_message.decode(errors="replace").strip()
            raise ReceiptError(f"PostgreSQL refused a receipt: {message or result.status.name}")

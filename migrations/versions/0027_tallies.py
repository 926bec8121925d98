"""Exact counters for the dashboard and the stats API, kept by triggers in the transaction of every change.

Each statement that adds, changes or removes subscribers or deliveries appends its net change to `tally_delta`
(insert only: no row is locked, so no signup or send waits for another); beat folds the deltas into `tally`,
and a read sums both. What a row counts for (mailer/people/tallies.py reads the same names):

- a subscriber: `status:<status>`; `signups:<day>` (imported: `imports:<day>` and `imported`), and
  `signups_confirmed:<day>` once that signup has confirmed, by the UTC day it was created; `confirmations:<day>`
  by the UTC day of `confirmed_at`
- a delivery: `delivery_status:<status>`, `delivery_kind:<kind>`; once answered by the server (sent, or failed
  with a `sent_at`: posts/reputation's ANSWERED), `answered:<day of sent_at>` and `digest_answered:<digest id>`

On PostgreSQL the triggers are per statement (transition tables: a digest's million rows are one aggregate), but
for subscriber updates, which are per row and only when a counted column changed. A statement that sets
`mailer.tally` to 'in statement' for its transaction counts itself: the sender's receipt does, so a mail costs
no trigger (outbox/receipts.py). SQLite has row triggers only; its writes are one at a time anyway.

Revision ID: 0027
Revises: 0022
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0022'
branch_labels = None
depends_on = None

COUNTED = ("status", "imported", "created_at", "confirmed_at")
DELIVERY_COUNTED = ("status", "kind", "sent_at", "digest_id")

PG_FUNCTIONS = """
CREATE FUNCTION tally_day(at timestamptz) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD') $$;

CREATE FUNCTION subscriber_counters(status text, imported boolean, created_at timestamptz,
                                    confirmed_at timestamptz) RETURNS SETOF text LANGUAGE sql IMMUTABLE AS $$
  SELECT c FROM (VALUES
    ('status:' || status),
    (CASE WHEN imported THEN 'imports:' ELSE 'signups:' END || tally_day(created_at)),
    (CASE WHEN NOT imported AND confirmed_at IS NOT NULL THEN 'signups_confirmed:' || tally_day(created_at) END),
    (CASE WHEN imported THEN 'imported' END),
    ('confirmations:' || tally_day(confirmed_at))) AS counters (c)
  WHERE c IS NOT NULL $$;

CREATE FUNCTION delivery_counters(status text, kind text, sent_at timestamptz, digest_id integer)
  RETURNS SETOF text LANGUAGE sql IMMUTABLE AS $$
  SELECT c FROM (VALUES
    ('delivery_status:' || status),
    ('delivery_kind:' || kind),
    (CASE WHEN status IN ('sent', 'failed') THEN 'answered:' || tally_day(sent_at) END),
    (CASE WHEN status IN ('sent', 'failed') AND sent_at IS NOT NULL THEN 'digest_answered:' || digest_id END)
  ) AS counters (c) WHERE c IS NOT NULL $$;

CREATE FUNCTION tally_subscribers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO tally_delta (counter, n) SELECT c, count(*) FROM new_rows AS r,
      subscriber_counters(r.status, r.imported, r.created_at, r.confirmed_at) AS c GROUP BY c;
  ELSE
    INSERT INTO tally_delta (counter, n) SELECT c, -count(*) FROM old_rows AS r,
      subscriber_counters(r.status, r.imported, r.created_at, r.confirmed_at) AS c GROUP BY c;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION tally_subscriber_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO tally_delta (counter, n) SELECT c, sum(n) FROM (
      SELECT c, 1 AS n FROM subscriber_counters(NEW.status, NEW.imported, NEW.created_at, NEW.confirmed_at) AS c
      UNION ALL
      SELECT c, -1 FROM subscriber_counters(OLD.status, OLD.imported, OLD.created_at, OLD.confirmed_at) AS c
    ) AS change GROUP BY c HAVING sum(n) <> 0;
  RETURN NULL;
END $$;

CREATE FUNCTION tally_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO tally_delta (counter, n)
      SELECT c, count(*) FROM new_rows AS r, delivery_counters(r.status, r.kind, r.sent_at, r.digest_id) AS c GROUP BY c;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO tally_delta (counter, n)
      SELECT c, -count(*) FROM old_rows AS r, delivery_counters(r.status, r.kind, r.sent_at, r.digest_id) AS c GROUP BY c;
  ELSE
    INSERT INTO tally_delta (counter, n) SELECT c, sum(n) FROM (
        SELECT c, 1 AS n FROM new_rows AS r, delivery_counters(r.status, r.kind, r.sent_at, r.digest_id) AS c
        UNION ALL
        SELECT c, -1 FROM old_rows AS r, delivery_counters(r.status, r.kind, r.sent_at, r.digest_id) AS c
      ) AS change GROUP BY c HAVING sum(n) <> 0;
  END IF;
  RETURN NULL;
END $$;
"""

PG_TRIGGERS = """
CREATE TRIGGER tally_subscriber_insert AFTER INSERT ON subscriber REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION tally_subscribers();
CREATE TRIGGER tally_subscriber_delete AFTER DELETE ON subscriber REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION tally_subscribers();
CREATE TRIGGER tally_subscriber_update AFTER UPDATE OF status, imported, created_at, confirmed_at ON subscriber
  FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION tally_subscriber_change();
CREATE TRIGGER tally_delivery_insert AFTER INSERT ON delivery REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION tally_deliveries();
CREATE TRIGGER tally_delivery_delete AFTER DELETE ON delivery REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION tally_deliveries();
CREATE TRIGGER tally_delivery_update AFTER UPDATE ON delivery REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT WHEN (current_setting('mailer.tally', true) IS DISTINCT FROM 'in statement')
  EXECUTE FUNCTION tally_deliveries();
""".format(changed=" OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in COUNTED))

PG_DROP = """
DROP TRIGGER tally_subscriber_insert ON subscriber; DROP TRIGGER tally_subscriber_delete ON subscriber;
DROP TRIGGER tally_subscriber_update ON subscriber; DROP TRIGGER tally_delivery_insert ON delivery;
DROP TRIGGER tally_delivery_delete ON delivery; DROP TRIGGER tally_delivery_update ON delivery;
DROP FUNCTION tally_deliveries(); DROP FUNCTION tally_subscriber_change(); DROP FUNCTION tally_subscribers();
DROP FUNCTION delivery_counters(text, text, timestamptz, integer); DROP FUNCTION subscriber_counters(text, boolean, timestamptz, timestamptz);
DROP FUNCTION tally_day(timestamptz);
"""

BACKFILL = """
INSERT INTO tally (counter, value)
SELECT 'status:' || status, count(*) FROM subscriber GROUP BY status
UNION ALL SELECT CASE WHEN imported THEN 'imports:' ELSE 'signups:' END || {day}(created_at), count(*) FROM subscriber
  GROUP BY 1
UNION ALL SELECT 'signups_confirmed:' || {day}(created_at), count(*) FROM subscriber
  WHERE NOT imported AND confirmed_at IS NOT NULL GROUP BY 1
UNION ALL SELECT 'imported', count(*) FROM subscriber WHERE imported HAVING count(*) > 0
UNION ALL SELECT 'confirmations:' || {day}(confirmed_at), count(*) FROM subscriber WHERE confirmed_at IS NOT NULL
  GROUP BY 1
UNION ALL SELECT 'delivery_status:' || status, count(*) FROM delivery GROUP BY status
UNION ALL SELECT 'delivery_kind:' || kind, count(*) FROM delivery GROUP BY kind
UNION ALL SELECT 'answered:' || {day}(sent_at), count(*) FROM delivery
  WHERE status IN ('sent', 'failed') AND sent_at IS NOT NULL GROUP BY 1
UNION ALL SELECT 'digest_answered:' || digest_id, count(*) FROM delivery
  WHERE status IN ('sent', 'failed') AND sent_at IS NOT NULL AND digest_id IS NOT NULL GROUP BY 1
"""


def _sqlite_subscriber(row: str) -> str:
    """The counters of one subscriber row (NEW or OLD) as a SELECT of `c`, the rule of subscriber_counters()."""
    return (f"SELECT 'status:' || {row}.status AS c"
            f" UNION ALL SELECT CASE WHEN {row}.imported THEN 'imports:' ELSE 'signups:' END || date({row}.created_at)"
            f" UNION ALL SELECT 'signups_confirmed:' || date({row}.created_at)"
            f" WHERE NOT {row}.imported AND {row}.confirmed_at IS NOT NULL"
            f" UNION ALL SELECT 'imported' WHERE {row}.imported"
            f" UNION ALL SELECT 'confirmations:' || date({row}.confirmed_at) WHERE {row}.confirmed_at IS NOT NULL")


def _sqlite_delivery(row: str) -> str:
    answered = f"{row}.status IN ('sent', 'failed') AND {row}.sent_at IS NOT NULL"
    return (f"SELECT 'delivery_status:' || {row}.status AS c UNION ALL SELECT 'delivery_kind:' || {row}.kind"
            f" UNION ALL SELECT 'answered:' || date({row}.sent_at) WHERE {answered}"
            f" UNION ALL SELECT 'digest_answered:' || {row}.digest_id WHERE {answered} AND {row}.digest_id IS NOT NULL")


def _sqlite_triggers() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in COUNTED)
    made = []
    for table, counters, columns, when in (("subscriber", _sqlite_subscriber, " OF " + ", ".join(COUNTED), changed),
                                           ("delivery", _sqlite_delivery, " OF " + ", ".join(DELIVERY_COUNTED),
                                            " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in DELIVERY_COUNTED))):
        made += [
            f"CREATE TRIGGER tally_{table}_insert AFTER INSERT ON {table} BEGIN"
            f" INSERT INTO tally_delta (counter, n) SELECT c, 1 FROM ({counters('NEW')}); END",
            f"CREATE TRIGGER tally_{table}_delete AFTER DELETE ON {table} BEGIN"
            f" INSERT INTO tally_delta (counter, n) SELECT c, -1 FROM ({counters('OLD')}); END",
            f"CREATE TRIGGER tally_{table}_update AFTER UPDATE{columns} ON {table} WHEN {when} BEGIN"
            f" INSERT INTO tally_delta (counter, n) SELECT c, sum(n) FROM (SELECT c, 1 AS n FROM ({counters('NEW')})"
            f" UNION ALL SELECT c, -1 FROM ({counters('OLD')})) GROUP BY c HAVING sum(n) <> 0; END",
        ]
    return made


def upgrade():
    op.create_table('tally',
                    sa.Column('counter', sa.String(length=60), nullable=False),
                    sa.Column('value', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('counter'))
    op.create_table('tally_delta',
                    sa.Column('counter', sa.String(length=60), nullable=False),
                    sa.Column('n', sa.BigInteger(), nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTIONS)
        op.execute(PG_TRIGGERS)
        # Folded every few seconds: vacuumed as soon as a fold's worth of rows is dead, so reads stay short.
        op.execute("ALTER TABLE tally_delta SET (autovacuum_vacuum_threshold = 5000,"
                   " autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_insert_threshold = 5000)")
    else:
        for statement in _sqlite_triggers():
            op.execute(statement)
    # The rows already there, counted once (within this migration's transaction, so nothing slips between).
    op.execute(BACKFILL.format(day="tally_day" if op.get_bind().dialect.name == "postgresql" else "date"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_DROP)
    else:
        for table in ("subscriber", "delivery"):
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER tally_{table}_{event}")
    op.drop_table('tally_delta')
    op.drop_table('tally')

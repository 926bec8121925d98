"""The claim query's index covers its whole order (next_attempt_at, id).

With only next_attempt_at indexed, a digest's rows (all due at the same moment) had to be sorted in full on
every claim: a sequential scan and a sort of every owed row for each batch of 50.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

OWED = sa.text("status IN ('queued', 'sending')")


def upgrade():
    op.drop_index("ix_delivery_due", "delivery", postgresql_where=OWED, sqlite_where=OWED)
    op.create_index("ix_delivery_due", "delivery", ["next_attempt_at", "id"], postgresql_where=OWED, sqlite_where=OWED)


def downgrade():
    op.drop_index("ix_delivery_due", "delivery", postgresql_where=OWED, sqlite_where=OWED)
    op.create_index("ix_delivery_due", "delivery", ["next_attempt_at"], postgresql_where=OWED, sqlite_where=OWED)

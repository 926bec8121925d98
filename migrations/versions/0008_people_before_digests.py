"""Mail a person is waiting for is claimed before a digest's rows: a partial index of what is owed but digests.

A confirmation queued while a digest of 100,000 was being sent used to wait behind every digest row due
before it. The claim now takes such rows first, from this index: small whatever the size of the digest.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

PREDICATE = "status IN ('queued', 'sending') AND kind <> 'digest'"


def upgrade():
    op.create_index("ix_delivery_due_for_people", "delivery", ["next_attempt_at", "id"],
                    postgresql_where=sa.text(PREDICATE), sqlite_where=sa.text(PREDICATE))


def downgrade():
    op.drop_index("ix_delivery_due_for_people", "delivery")

"""Readers' time zones and digests sent at a local time; the sunset rule's dates on each subscriber.

Plain ADD COLUMN on subscriber: a batch copy on SQLite would lose the expression index on names. The index of the
mail a person waits for leaves out the sunset questions too, which are owed to many at once like a digest.

Revision ID: 0025
Revises: 0026
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0026'
branch_labels = None
depends_on = None

SUBSCRIBER_COLUMNS = ('time_zone', 'sunset_asked_at', 'sunset_kept_at', 'sunset_at')
DUE = "status IN ('queued', 'sending')"


def _due_for_people(predicate: str) -> None:
    op.drop_index('ix_delivery_due_for_people', 'delivery')
    op.create_index('ix_delivery_due_for_people', 'delivery', ['next_attempt_at', 'id'],
                    postgresql_where=sa.text(predicate), sqlite_where=sa.text(predicate))


def upgrade():
    op.add_column('subscriber', sa.Column('time_zone', sa.String(length=64), nullable=True))
    for name in SUBSCRIBER_COLUMNS[1:]:
        op.add_column('subscriber', sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column('digest', sa.Column('local_time', sa.String(length=5), nullable=True))
    _due_for_people(f"{DUE} AND kind NOT IN ('digest', 'sunset')")


def downgrade():
    _due_for_people(f"{DUE} AND kind <> 'digest'")
    op.drop_column('digest', 'local_time')
    for name in reversed(SUBSCRIBER_COLUMNS):
        op.drop_column('subscriber', name)

"""A digest can wait for a time to send (send_at, UTC): beat starts it when it falls due.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

SCHEDULED = sa.text("status = 'scheduled'")


def upgrade():
    with op.batch_alter_table('digest', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_digest_scheduled', ['send_at'], unique=False,
                              postgresql_where=SCHEDULED, sqlite_where=SCHEDULED)


def downgrade():
    # A digest still waiting has owed nothing: without its time it would never go, so it is cancelled (its posts
    # are then offered to the next digest).
    op.execute(sa.text("UPDATE digest SET status = 'cancelled' WHERE status = 'scheduled'"))
    with op.batch_alter_table('digest', schema=None) as batch_op:
        batch_op.drop_index('ix_digest_scheduled', postgresql_where=SCHEDULED, sqlite_where=SCHEDULED)
        batch_op.drop_column('send_at')

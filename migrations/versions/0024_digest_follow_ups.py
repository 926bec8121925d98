"""Follow-ups of a digest: a resend to the readers who did not engage (at most one per digest), and subject tests
(2 to 4 subjects tried on a share of the readers, the winner sent to the rest).

Revision ID: 0024
Revises: 0021
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0021'
branch_labels = None
depends_on = None

COLUMNS = (
    ('follows_id', sa.Integer()),
    ('resend_unless', sa.String(length=10)),
    ('subjects', sa.JSON()),
    ('test_share', sa.Double()),
    ('decide_after_hours', sa.Double()),
    ('decide_at', sa.DateTime(timezone=True)),
    ('winner', sa.Integer()),
)


def upgrade():
    # Plain ADD COLUMN (nullable, no constraint): no table copy on SQLite, no rewrite on PostgreSQL.
    for name, type_ in COLUMNS:
        op.add_column('digest', sa.Column(name, type_, nullable=True))
    op.create_index('ix_digest_follows_id', 'digest', ['follows_id'], unique=True)


def downgrade():
    # Without follows_id a resend still waiting would start as a digest to everyone: it is cancelled. A subject
    # test not decided yet keeps the mails owed so far; its rest is never owed.
    op.execute(sa.text("UPDATE digest SET status = 'cancelled' WHERE follows_id IS NOT NULL AND status = 'scheduled'"))
    op.drop_index('ix_digest_follows_id', table_name='digest')
    for name, _ in reversed(COLUMNS):
        op.drop_column('digest', name)

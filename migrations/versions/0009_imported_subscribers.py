"""Whom an import brought in, kept on the subscriber: the dashboard counts them apart from signups.

A subscriber was brought in by an import when an import's consent was recorded the moment the row was made
(roster.add_subscribers stamps both with the same time); someone who signed up first stays a signup.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN, not a batch copy: SQLite's batch mode would lose the expression index on subscriber names.
    op.add_column("subscriber", sa.Column("imported", sa.Boolean, nullable=False, server_default=sa.false()))
    subscriber = sa.table("subscriber", sa.column("id"), sa.column("created_at"), sa.column("imported", sa.Boolean))
    consent = sa.table("consent", sa.column("subscriber_id"), sa.column("form"), sa.column("requested_at"))
    op.execute(subscriber.update().values(imported=True).where(sa.exists().where(
        consent.c.subscriber_id == subscriber.c.id, consent.c.form == "import",
        consent.c.requested_at == subscriber.c.created_at)))


def downgrade():
    op.drop_column("subscriber", "imported")

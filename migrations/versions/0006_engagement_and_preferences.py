"""Clicks and opens of digest mail; each subscriber's digest frequency and pause; a digest's audience.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade():
    # Plain ADD COLUMN, not a batch copy: SQLite's batch mode would lose the expression index on subscriber names.
    op.add_column("subscriber", sa.Column("digest_frequency", sa.String(10), nullable=False, server_default="every"))
    op.add_column("subscriber", sa.Column("paused_until", Timestamp, nullable=True))
    op.add_column("digest", sa.Column("audience", sa.String(10), nullable=False, server_default="every"))
    op.create_table(
        "click",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("delivery_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest_id", sa.Integer, nullable=False),
        sa.Column("post_id", sa.Integer, sa.ForeignKey("post.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
    )
    op.create_index("ix_click_subscriber_id", "click", ["subscriber_id"])
    op.create_index("ix_click_digest_post", "click", ["digest_id", "post_id"])
    op.create_table(
        "open",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("delivery_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest_id", sa.Integer, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
    )
    op.create_index("ix_open_subscriber_id", "open", ["subscriber_id"])
    op.create_index("ix_open_digest_id", "open", ["digest_id"])


def downgrade():
    op.drop_table("open")
    op.drop_table("click")
    op.drop_column("digest", "audience")
    op.drop_column("subscriber", "paused_until")
    op.drop_column("subscriber", "digest_frequency")

"""A partial index on signup confirmations, so the hourly confirmation cap costs the same at any ledger size.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

PREDICATE = "kind = 'confirmation' AND dedupe_key LIKE 'confirmation:%'"


def upgrade():
    op.create_index("ix_delivery_signup_confirmations", "delivery", ["created_at"],
                    postgresql_where=sa.text(PREDICATE), sqlite_where=sa.text(PREDICATE))


def downgrade():
    op.drop_index("ix_delivery_signup_confirmations", "delivery")

"""Each click and open says whether a person made it (human) or a link scanner or image proxy (machine).

Clicks and opens recorded before there was a verdict were counted as people's: they stay so.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('click', sa.Column('human', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column('open', sa.Column('human', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35 has it): a batch copy would reflect the subscriber table its keys point to.
    op.drop_column('open', 'human')
    op.drop_column('click', 'human')

"""The evidence behind each click's and open's verdict (method, user agent, seconds after delivery, links hit at
once, the reason a machine's), when a mail's hidden link was hit, and the index a click's verdict reads.

Clicks and opens recorded before keep NULL evidence and their verdict.

Revision ID: 0023
Revises: 0025
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN, no batch copy: nullable columns, and a copy would reflect the subscriber table.
    for table in ('click', 'open'):
        op.add_column(table, sa.Column('method', sa.String(length=8), nullable=True))
        op.add_column(table, sa.Column('user_agent', sa.String(length=300), nullable=True))
        op.add_column(table, sa.Column('seconds_after_delivery', sa.Integer(), nullable=True))
        op.add_column(table, sa.Column('machine_reason', sa.String(length=10), nullable=True))
    op.add_column('click', sa.Column('links_at_once', sa.Integer(), nullable=True))
    op.create_index('ix_click_delivery_at', 'click', ['delivery_id', 'at'])
    op.add_column('delivery', sa.Column('hidden_link_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column('delivery', 'hidden_link_at')
    op.drop_index('ix_click_delivery_at', table_name='click')
    op.drop_column('click', 'links_at_once')
    for table in ('open', 'click'):
        for column in ('machine_reason', 'seconds_after_delivery', 'user_agent', 'method'):
            op.drop_column(table, column)

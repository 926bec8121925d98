"""A digest's final delivery counts, kept once nothing is pending, for the console's history and dashboard.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('digest', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('failed_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('skipped_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('digest', schema=None) as batch_op:
        batch_op.drop_column('finished_at')
        batch_op.drop_column('skipped_count')
        batch_op.drop_column('failed_count')
        batch_op.drop_column('sent_count')

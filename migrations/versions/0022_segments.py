"""Segments: saved choices of readers, and a digest's rules (who it went to beyond its audience).

Revision ID: 0022
Revises: 0023
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'segment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('rules', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segment')),
        sa.UniqueConstraint('name', name=op.f('uq_segment_name')),
    )
    # Plain ADD COLUMN: nullable columns without a default cost nothing however many digests there are.
    op.add_column('digest', sa.Column('segment_id', sa.Integer(), nullable=True))
    op.add_column('digest', sa.Column('rules', sa.JSON(), nullable=True))


def downgrade():
    op.drop_column('digest', 'rules')
    op.drop_column('digest', 'segment_id')
    op.drop_table('segment')

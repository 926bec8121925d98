"""The author's studio: one row of newsletter settings (name, sender name, reply-to, logo, colour, postal address,
welcome text, archive on or off); empty columns fall back to the environment's defaults.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'newsletter_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('newsletter_name', sa.String(length=100), nullable=True),
        sa.Column('sender_name', sa.String(length=100), nullable=True),
        sa.Column('reply_to', sa.String(length=254), nullable=True),
        sa.Column('blog_url', sa.String(length=500), nullable=True),
        sa.Column('logo_url', sa.String(length=500), nullable=True),
        sa.Column('logo_data', sa.LargeBinary(), nullable=True),
        sa.Column('logo_type', sa.String(length=40), nullable=True),
        sa.Column('logo_hash', sa.String(length=64), nullable=True),
        sa.Column('accent_colour', sa.String(length=7), nullable=True),
        sa.Column('postal_address', sa.Text(), nullable=True),
        sa.Column('welcome_text', sa.Text(), nullable=True),
        sa.Column('archive_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('newsletter_settings')

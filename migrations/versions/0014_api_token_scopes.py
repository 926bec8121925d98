"""API tokens get scopes (read, write, send, bounces) and can be revoked; tokens made before keep every scope.

Revision ID: 0014
Revises: 0012
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None

EVERY_SCOPE = 'read write send bounces'


def upgrade():
    # The default fills the rows already there (they keep all they could do), then goes: a new token names its own.
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sa.String(length=100), nullable=False, server_default=EVERY_SCOPE))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.alter_column('scopes', server_default=None)


def downgrade():
    # A revoked token must not come back to life with the column that revoked it.
    op.execute(sa.text("DELETE FROM api_token WHERE revoked_at IS NOT NULL"))
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('scopes')

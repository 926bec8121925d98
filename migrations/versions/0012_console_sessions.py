"""Console sessions kept on the server, so that logging out ends every copy of the session's cookie.

Cookies issued before this revision name no session and stop opening the console: their owners log in once more.

Revision ID: 0012
Revises: 0009
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('console_session',
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('admin_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['admin_id'], ['admin_user.id'], name=op.f('fk_console_session_admin_id_admin_user'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key_hash', name=op.f('pk_console_session'))
    )
    op.create_index(op.f('ix_console_session_admin_id'), 'console_session', ['admin_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_console_session_admin_id'), table_name='console_session')
    op.drop_table('console_session')

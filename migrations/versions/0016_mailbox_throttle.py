"""Subscribers get their mailbox (the confirmation throttle counts by it) and login attempts their client network
(the lockout counts by it); both are filled for the rows already there, by the rules the app uses.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

from mailer.people.mailboxes import mailbox_of
from mailer.people.networks import client_of

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade():
    # Plain ADD COLUMN, not a batch copy: SQLite's batch mode would lose the expression index on subscriber names.
    op.add_column('subscriber', sa.Column('mailbox', sa.String(length=254), nullable=True))
    op.create_index('ix_subscriber_mailbox', 'subscriber', ['mailbox'])
    op.add_column('login_attempt', sa.Column('network', sa.String(length=49), nullable=True))
    op.create_index('ix_login_attempt_network', 'login_attempt', ['network'])
    _fill('subscriber', 'email', 'mailbox', mailbox_of)
    _fill('login_attempt', 'ip', 'network', client_of)


def _fill(table_name: str, source: str, target: str, rule) -> None:
    """`target` = rule(`source`) for every row, a batch of ids at a time: a big table is never read at once."""
    bind = op.get_bind()
    table = sa.table(table_name, sa.column('id', sa.Integer), sa.column(source, sa.String),
                     sa.column(target, sa.String))
    update = table.update().where(table.c.id == sa.bindparam('row_id')).values({target: sa.bindparam('value')})
    last = 0
    while True:
        rows = bind.execute(sa.select(table.c.id, table.c[source]).where(table.c.id > last, table.c[source].isnot(None))
                            .order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        bind.execute(update, [{'row_id': row_id, 'value': rule(value)} for row_id, value in rows])
        last = rows[-1][0]


def downgrade():
    op.drop_index('ix_login_attempt_network', 'login_attempt')
    op.drop_column('login_attempt', 'network')
    op.drop_index('ix_subscriber_mailbox', 'subscriber')
    op.drop_column('subscriber', 'mailbox')

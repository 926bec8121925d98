"""Suppressions can be reviewed and undone; digests pause themselves on a bad bounce or complaint rate.

A table of lifts (an admin's word that a bounced address may be mailed again), when each reader was suppressed
(filled in from their latest event for the readers suppressed already), why a digest was paused, and an index
on the events' delivery, which a digest's rates count by.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('suppression_lift',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('admin_id', sa.Integer(), nullable=True),
    sa.Column('admin_email', sa.String(length=254), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], name=op.f('fk_suppression_lift_subscriber_id_subscriber'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['admin_id'], ['admin_user.id'], name=op.f('fk_suppression_lift_admin_id_admin_user'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['event_id'], ['mail_event.id'], name=op.f('fk_suppression_lift_event_id_mail_event'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppression_lift'))
    )
    op.create_index(op.f('ix_suppression_lift_subscriber_id'), 'suppression_lift', ['subscriber_id'], unique=False)
    # Plain ADD COLUMN, not a batch copy: SQLite's batch mode would lose the expression index on subscriber names.
    op.add_column('subscriber', sa.Column('suppressed_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('digest', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('guard_since', sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_mail_event_delivery_id'), 'mail_event', ['delivery_id'], unique=False)
    op.execute(sa.text(
        "UPDATE subscriber SET suppressed_at = COALESCE("
        "(SELECT max(received_at) FROM mail_event WHERE mail_event.subscriber_id = subscriber.id), updated_at) "
        "WHERE status IN ('bounced', 'complained')"))


def downgrade():
    op.drop_index(op.f('ix_mail_event_delivery_id'), table_name='mail_event')
    with op.batch_alter_table('digest', schema=None) as batch_op:
        batch_op.drop_column('guard_since')
        batch_op.drop_column('paused_reason')
    op.drop_column('subscriber', 'suppressed_at')
    op.drop_index(op.f('ix_suppression_lift_subscriber_id'), table_name='suppression_lift')
    op.drop_table('suppression_lift')

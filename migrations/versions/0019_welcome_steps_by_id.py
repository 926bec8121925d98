"""Welcome steps are owed by their id, not their position, and a lead magnet can have follow-up steps of its own.

Readers mid-sequence keep their place: each welcome row keyed by a step's position ("welcome:<reader>:<position>")
is keyed by that step's id instead, and a step they had passed while it was switched off is marked as passed (a
skipped row), so that moving, adding or deleting steps later sends them neither a step twice nor an old one.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0017'
branch_labels = None
depends_on = None

OLD_KEY = "'welcome:' || delivery.subscriber_id || ':' || welcome_step.position"
NEW_KEY = "'welcome:' || delivery.subscriber_id || ':step:' || welcome_step.id"


def _payload() -> str:
    """The step's JSON payload as the code now writes it, in this database's SQL."""
    build = "json_build_object" if op.get_bind().dialect.name == "postgresql" else "json_object"
    return f"{build}('template', welcome_step.template, 'step_id', welcome_step.id)"


def upgrade():
    with op.batch_alter_table('welcome_step', schema=None) as batch_op:
        batch_op.drop_constraint('uq_welcome_step_position', type_='unique')
        batch_op.add_column(sa.Column('magnet_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_welcome_step_magnet_id'), ['magnet_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_welcome_step_magnet_id_lead_magnet'), 'lead_magnet',
                                    ['magnet_id'], ['id'], ondelete='CASCADE')
    step_of = f"FROM welcome_step WHERE delivery.dedupe_key = {OLD_KEY}"
    op.execute(f"""UPDATE delivery SET dedupe_key = (SELECT {NEW_KEY} {step_of}), payload = (SELECT {_payload()} {step_of})
                   WHERE kind = 'welcome' AND EXISTS (SELECT 1 {step_of})""")
    # Steps a reader had passed with no mail (switched off at the time): passed they stay.
    reader_key = NEW_KEY.replace("delivery.subscriber_id", "subscriber.id")
    op.execute(f"""
        INSERT INTO delivery (kind, subscriber_id, dedupe_key, payload, status, attempts, next_attempt_at, created_at,
                              last_error)
        SELECT 'welcome', subscriber.id, {reader_key}, {_payload()}, 'skipped', 0, CURRENT_TIMESTAMP,
               CURRENT_TIMESTAMP, 'not sent: the step was off when this reader passed it'
        FROM subscriber JOIN welcome_step ON welcome_step.position <= subscriber.welcome_step
        WHERE EXISTS (SELECT 1 FROM delivery WHERE delivery.subscriber_id = subscriber.id AND delivery.kind = 'welcome')
          AND NOT EXISTS (SELECT 1 FROM delivery WHERE delivery.dedupe_key = {reader_key})""")


def downgrade():
    # Position keys again for the common welcome; the magnets' follow-ups, which the old code cannot send, go.
    op.execute("DELETE FROM delivery WHERE kind = 'welcome' AND dedupe_key LIKE 'welcome:%:step:%' AND EXISTS "
               "(SELECT 1 FROM welcome_step WHERE welcome_step.magnet_id IS NOT NULL AND "
               f"delivery.dedupe_key = {NEW_KEY})")
    op.execute("DELETE FROM welcome_step WHERE magnet_id IS NOT NULL")
    step_of = f"FROM welcome_step WHERE delivery.dedupe_key = {NEW_KEY}"
    op.execute(f"UPDATE delivery SET dedupe_key = (SELECT {OLD_KEY} {step_of}) "
               f"WHERE kind = 'welcome' AND EXISTS (SELECT 1 {step_of})")
    with op.batch_alter_table('welcome_step', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_welcome_step_magnet_id_lead_magnet'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_welcome_step_magnet_id'))
        batch_op.drop_column('magnet_id')
        batch_op.create_unique_constraint('uq_welcome_step_position', ['position'])

"""Files uploaded in the console (magnets, CSVs being imported) and the state of imports live in the database,
so web hosts and workers share nothing but PostgreSQL and Redis.

Magnet files uploaded before stay where they are (an absolute path in lead_magnet.file, still served from the
disk of a host that has it) until `mailer magnets store-files` brings them in.

Revision ID: 0026
Revises: 0024
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'upload',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('magnet_id', sa.Integer(), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('part_size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['magnet_id'], ['lead_magnet.id'], name=op.f('fk_upload_magnet_id_lead_magnet'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_upload')),
    )
    op.create_index(op.f('ix_upload_magnet_id'), 'upload', ['magnet_id'], unique=False)
    op.create_table(
        'upload_part',
        sa.Column('upload_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['upload_id'], ['upload.id'], name=op.f('fk_upload_part_upload_id_upload'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('upload_id', 'number', name=op.f('pk_upload_part')),
    )
    op.create_table(
        'subscriber_import',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.Column('upload_id', sa.Integer(), nullable=True),
        sa.Column('state', sa.JSON(), nullable=False),
        sa.Column('busy_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['upload_id'], ['upload.id'], name=op.f('fk_subscriber_import_upload_id_upload'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriber_import')),
        sa.UniqueConstraint('token', name=op.f('uq_subscriber_import_token')),
    )


def downgrade():
    # Files brought into the database since go with it: copy them out first (the console's download of each magnet).
    op.drop_table('subscriber_import')
    op.drop_table('upload_part')
    op.drop_index(op.f('ix_upload_magnet_id'), table_name='upload')
    op.drop_table('upload')

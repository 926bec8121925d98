"""Erasure records become HMAC(ERASURE_KEY, SHA-256 of the address) instead of the bare SHA-256, which anyone
could match by hashing a list of addresses. The addresses are gone, so each stored hash is converted as it is.

Revision ID: 0017
Revises: 0018
Create Date: 2026-12-02
"""
import logging

import sqlalchemy as sa
from alembic import op
from flask import current_app

from mailer.people.privacy import erasure_record

revision = '0017'
down_revision = '0018'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
erased_address = sa.table('erased_address', sa.column('email_hash', sa.String(64)))


def upgrade():
    key = current_app.config["ERASURE_KEY"]
    conn = op.get_bind()
    stored = conn.execute(sa.select(erased_address.c.email_hash)).scalars().all()
    if stored:
        conn.execute(erased_address.update().where(erased_address.c.email_hash == sa.bindparam('old'))
                     .values(email_hash=sa.bindparam('new')),
                     [{'old': bare, 'new': erasure_record(bare, key)} for bare in stored])


def downgrade():
    # An HMAC cannot be turned back into the bare hash: the records stay as they are, and the code before 0017
    # no longer recognises them (an import could bring those addresses back).
    count = op.get_bind().execute(sa.select(sa.func.count()).select_from(erased_address)).scalar()
    if count:
        log.warning("%d erasure records stay keyed hashes, which the code before revision 0017 does not match", count)

"""The little that differs between PostgreSQL (in production) and SQLite (the embedded default)."""
from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_for(session: Session):
    """The INSERT of the session's database, the one with ON CONFLICT (upserts, "insert unless there")."""
    return postgresql.insert if on_postgresql(session) else sqlite.insert

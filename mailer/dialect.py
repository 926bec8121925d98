"""The little that differs between PostgreSQL (in production) and SQLite (the embedded default)."""
from __future__ import annotations

from sqlalchemy import JSON, cast, func, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session


def on_postgresql(bind: Session | Engine | Connection) -> bool:
    """Of a session (Flask-SQLAlchemy's scoped one too), an engine or a connection."""
    dialect = bind.dialect if isinstance(bind, (Engine, Connection)) else bind.get_bind().dialect
    return dialect.name == "postgresql"


def insert_for(session: Session):
    """The INSERT of the session's database, the one with ON CONFLICT (upserts, "insert unless there")."""
    return postgresql.insert if on_postgresql(session) else sqlite.insert


def lower(session: Session, column):
    """lower(column) that lowers every letter, as Python does: PostgreSQL's own, SQLite's unicode_lower (its
    built-in lower() leaves "É" as it is; extensions registers the function on each connection)."""
    return func.lower(column) if on_postgresql(session) else func.unicode_lower(column)


def json_from_text(session: Session, text):
    """SQL text that holds JSON, as a JSON value: PostgreSQL needs the cast; SQLite would take CAST(… AS JSON) for
    a cast to a number (a type name it does not know has numeric affinity) and keeps the text as it is."""
    return cast(text, JSON) if on_postgresql(session) else type_coerce(text, JSON)

"""Is the service able to take a signup and owe its mail? Database and task broker, each probed briefly."""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import text

from ..extensions import db

log = logging.getLogger(__name__)


def check() -> dict[str, str]:
    return {"database": _database(), "broker": _broker()}


def _database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        db.session.rollback()
        log.warning("health: database unreachable: %s", exc)
        return f"down: {type(exc).__name__}"


def _broker() -> str:
    try:
        with current_app.extensions["celery"].connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        log.warning("health: task broker unreachable: %s", exc)
        return f"down: {type(exc).__name__}"

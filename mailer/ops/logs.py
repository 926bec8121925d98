"""Log lines that say which request or which outbox row (delivery id) they are about; JSON with LOG_FORMAT=json."""
from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
from contextlib import contextmanager
from datetime import datetime, timezone

from flask import Flask, g, has_request_context, request

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A proxy's or a client's id is kept only if it cannot forge log lines or fields: letters, digits and ._:-
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_delivery_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("delivery_id", default=None)
FIELDS = ("request_id", "delivery_id", "delivery_ids")


@contextmanager
def delivery(delivery_id: int):
    """Tag every line logged inside with this outbox row's id."""
    token = _delivery_id.set(delivery_id)
    try:
        yield
    finally:
        _delivery_id.reset(token)


class ContextFilter(logging.Filter):
    """Adds request_id (in a request) and delivery_id (while a mail is handled) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = g.get("request_id") if has_request_context() else None
        if getattr(record, "delivery_id", None) is None:
            record.delivery_id = _delivery_id.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = " ".join(f"{key}={getattr(record, key)}" for key in FIELDS if getattr(record, key, None) is not None)
        return f"{line} [{tags}]" if tags else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: getattr(record, key) for key in FIELDS if getattr(record, key, None) is not None})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(log_format: str = "text", level: int | str | None = None) -> None:
    """Our handler on the root logger (unless someone else, e.g. pytest, installed one first)."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "mailer", False)]
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.mailer = True
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        ours = [handler]
    for handler in ours:
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    if level is not None:
        root.setLevel(level)


def init_app(app: Flask) -> None:
    configure(app.config.get("LOG_FORMAT", "text"))
    app.before_request(_take_request_id)
    app.after_request(_echo_request_id)


def _take_request_id() -> None:
    sent = request.headers.get("X-Request-ID", "")
    g.request_id = sent if SANE_REQUEST_ID.match(sent) else secrets.token_hex(8)


def _echo_request_id(response):
    if "request_id" in g:
        response.headers["X-Request-ID"] = g.request_id
    return response

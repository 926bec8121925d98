"""How much of a request body each endpoint reads, with or without Content-Length: past it, 413.

With a Content-Length, request.max_content_length does it: Werkzeug refuses a larger one before reading. A
chunked body has none, and Werkzeug's own limit on it (a LimitedStream) stops reading at the limit without an
error: the body is cut, not refused. So a chunked body is read through _Capped instead, which raises 413 on the
first byte past the limit. It is read only when the server says it ends the stream itself
(wsgi.input_terminated: gunicorn always, werkzeug's server for chunked bodies); otherwise Werkzeug reads nothing.
"""
from __future__ import annotations

import io

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

SMALL = 64 * 1024                 # signups, JSON API calls, the other public forms: every field at its longest fits
CONSOLE = 1024 * 1024             # the console's forms (a post's summary, a welcome step's text)
WEBHOOK = 25 * 1024 * 1024        # webhooks and DSNs: a bounce may quote the whole message it returns
CSV_UPLOAD = 200 * 1024 * 1024    # the console's CSV import, about two million lines
MAGNET_UPLOAD = 200 * 1024 * 1024  # a lead magnet file uploaded in the console
BY_ENDPOINT = {"admin.import_upload": CSV_UPLOAD, "admin.magnet_new": MAGNET_UPLOAD,
               "admin.magnet_edit": MAGNET_UPLOAD}
BY_BLUEPRINT = {"webhooks": WEBHOOK, "admin": CONSOLE}


def limit_for(endpoint: str | None) -> int:
    """The most bytes of body this endpoint reads; a lower MAX_CONTENT_LENGTH in the configuration holds."""
    blueprint = endpoint.rpartition(".")[0] if endpoint else ""
    limit = BY_ENDPOINT.get(endpoint or "") or BY_BLUEPRINT.get(blueprint, SMALL)
    configured = current_app.config.get("MAX_CONTENT_LENGTH")
    return min(limit, configured) if configured else limit


def described(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def too_large() -> str:
    """What a 413 says, with the limit of the endpoint asked for."""
    limit = described(limit_for(request.endpoint))
    if request.blueprint in ("webhooks", "api"):
        return f"The body is larger than {limit}."
    return f"That is more data than this form takes ({limit} at most)."


class _Capped(io.RawIOBase):
    """A chunked body read as it comes, refused (413) at its first byte past `limit`."""

    def __init__(self, stream, limit: int):
        super().__init__()
        self._stream, self._left = stream, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise RequestEntityTooLarge(too_large())
        self._left -= len(data)
        buffer[:len(data)] = data
        return len(data)


def _apply() -> None:
    limit = limit_for(request.endpoint)
    if request.content_length is None and "wsgi.input_terminated" in request.environ:
        request.environ["wsgi.input"] = _Capped(request.environ["wsgi.input"], limit)
        request.max_content_length = None  # Werkzeug's LimitedStream would cut the body at the limit, silently
    else:
        request.max_content_length = limit


def init_app(app: Flask) -> None:
    # First of all before_request functions: Flask-WTF's CSRF check reads the form before any view runs.
    app.before_request_funcs.setdefault(None, []).insert(0, _apply)

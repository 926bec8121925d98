"""NUL characters in a request's address, query or form: refused with a 400 before any view runs.

PostgreSQL's text cannot hold NUL (psycopg raises on it, in a lookup as in a write), and no field we take has a
use for one. Checked here, once for every endpoint, rather than in each view that reads a field. JSON bodies are
read by each endpoint's own cleaning (a post's title drops control characters, an address refuses them).
"""
from __future__ import annotations

from flask import Flask, abort, request

# Forms whose view refuses a NUL itself, naming the field on the form shown again (signup_input.read_signup).
FORMS_CHECKED_BY_THEIR_VIEW = {"public.subscribe"}


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul)


def refuse_nul() -> None:
    if "\0" in request.path:
        abort(400, description="The address asked for contains a NUL character (%00): remove it and try again.")
    checked = [request.args] if request.endpoint in FORMS_CHECKED_BY_THEIR_VIEW else [request.args, request.form]
    for source in checked:
        for name, value in source.items(multi=True):
            if "\0" in name or "\0" in value:
                shown = name.replace("\0", "\\0")[:50]
                abort(400, description=f"The field {shown!r} contains a NUL character (\\0), which no field may "
                                       "hold: remove it and try again.")

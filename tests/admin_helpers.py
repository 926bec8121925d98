"""Logging a test client into the console."""
from __future__ import annotations

import re

import pytest
from flask import g

from mailer.admin.auth import set_admin
from mailer.extensions import db

EMAIL, PASSWORD = "author@example.com", "correct horse battery staple"


@pytest.fixture(autouse=True)
def fresh_g_per_request(app):
    """The test's app context spans its requests, and with it `g`; in production each request has its own.

    Without this, Flask-Login's cached user and Flask-WTF's cached token would leak from one request
    (or one test client) to the next.
    """
    def forget() -> None:
        for name in ("_login_user", "csrf_token"):
            g.pop(name, None)

    app.before_request_funcs.setdefault(None, []).insert(0, forget)


def create_admin(email: str = EMAIL, password: str = PASSWORD) -> None:
    set_admin(db.session, email, password)
    db.session.commit()


def csrf_from(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', text).group(1)


def log_in(client, email: str = EMAIL, password: str = PASSWORD, next_url: str = "", **environ):
    page = client.get("/admin/login", environ_base=environ)
    return client.post("/admin/login", data={"email": email, "password": password, "next": next_url,
                                             "csrf_token": csrf_from(page.data)}, environ_base=environ)


def token(client, path: str = "/admin/") -> str:
    return csrf_from(client.get(path).data)

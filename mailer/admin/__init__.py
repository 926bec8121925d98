"""The admin console at /admin/: every page behind a login, each area a module of thin views."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, request, url_for
from flask_login import LoginManager, current_user

from .charts import percent

bp = Blueprint("admin", __name__, url_prefix="/admin")
login_manager = LoginManager()
OPEN_ENDPOINTS = {"admin.login"}


@bp.record_once
def _bind(state) -> None:
    login_manager.init_app(state.app)
    login_manager.session_protection = "basic"


@login_manager.user_loader
def _load_user(user_id: str):
    from ..extensions import db
    from .auth import load_user

    return load_user(db.session, user_id)


@login_manager.unauthorized_handler
def _to_login():
    return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))


@bp.before_request
def _require_login():
    if request.endpoint not in OPEN_ENDPOINTS and not current_user.is_authenticated:
        return login_manager.unauthorized()


@bp.after_request
def _no_store(response):
    # Console pages hold personal data: no shared or back-button cache keeps a copy.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def safe_next(target: str | None) -> str:
    """A path inside the console to go to after login; anything else (another host, a scheme) is refused."""
    default = url_for("admin.dashboard")
    if not target or not target.startswith("/admin/") or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default


@bp.app_template_filter("when")
def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC
    return value.astimezone(timezone.utc).strftime("%d %b %Y, %H:%M UTC")


@bp.app_template_filter("number")
def _number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


@bp.app_template_filter("percent")
def _percent(share: float | None) -> str:
    return "—" if share is None else percent(share)


def mail_html(html: str) -> Response:
    """A mail's HTML part for a sandboxed preview iframe: its own styles apply, nothing runs, only we may frame it."""
    return Response(html, mimetype="text/html", headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
                                   "frame-ancestors 'self'"})


from . import (  # noqa: E402,F401
    dashboard,
    digest_runs,
    digests,
    embed,
    follow_ups,
    magnets,
    outbox,
    posts,
    roster_import,
    segments,
    sessions,
    settings,
    subscribers,
    suppressions,
    tokens,
    welcome,
)

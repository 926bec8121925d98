"""Error answers a person can act on: JSON for API callers, a page for browsers, never a traceback."""
from __future__ import annotations

import logging
import time

from flask import Flask, jsonify, make_response, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

ADVICE = {
    400: "The request was not understood. Go back, check what you typed and try again.",
    404: "There is nothing at this address. Check the link, or go back to the blog.",
    405: "This address does not take that kind of request.",
    410: "This link has expired.",
    413: "That is more data than this form takes.",
    429: "Too many attempts from your network. Wait a minute and try again.",
}


def register(app: Flask) -> None:
    app.add_template_global(way_on)
    app.register_error_handler(CSRFError, _csrf)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(OperationalError, _database_down)
    app.register_error_handler(Exception, _unexpected)


def way_on() -> tuple[str, str] | None:
    """Where a message page leads when its view gave no `back`: the console for the console's pages, else the
    blog (its address from the settings), else this site's own signup form. No page ends in a dead end."""
    from ..mail import identity
    from .origins import blog_page

    if request.path.startswith("/admin/"):
        return url_for("admin.dashboard"), "Back to the console"
    if request.path.startswith("/embed"):
        return None  # inside the blog's frame: the blog is all around it
    blog = blog_page(identity.current().blog_url)
    return (blog, "Back to the blog") if blog else (url_for("public.index"), "Go to the signup form")


def _answer(status: int, title: str, message: str, **extra):
    from .. import extensions

    try:
        extensions.db.session.rollback()
    except SQLAlchemyError:  # its connection died with the database: let the pool throw it away
        extensions.db.session.remove()
    if (request.is_json or request.path.startswith(("/api/", "/webhooks/"))
            or request.accept_mimetypes.best == "application/json"):
        return jsonify(error=message, **extra), status
    if status < 500 and request.path.startswith("/admin/") and _signed_in():
        return render_template("admin/message.html", title=title, message=message), status  # with the console's menu
    return render_template("site/message.html", title=title, message=message), status


def _signed_in() -> bool:
    from flask_login import current_user

    return bool(getattr(current_user, "is_authenticated", False))


def _csrf(exc: CSRFError):
    return _answer(400, "This form has expired",
                   "The page was open too long, or your browser blocks this site's cookies. Reload the page and "
                   "submit again; if this comes back, allow cookies for this site (the form needs one to prove it "
                   "is yours).")


def _http(exc: HTTPException):
    if exc.response is not None:
        return exc.response
    # A description raised on purpose says more than our generic advice; werkzeug's default says less.
    custom = exc.description != type(exc).description
    message = exc.description if custom else ADVICE.get(exc.code, exc.description)
    if exc.code == 413 and not custom:
        from .body_limits import too_large

        message = too_large()
    if exc.code == 429:
        message = f"Too many attempts from your network (limit: {exc.description}). Wait a little and try again."
        response = make_response(_answer(429, exc.name, message))
        response.headers["Retry-After"] = str(_seconds_until_allowed())
        return response
    field = getattr(exc, "field", None)  # json_input.LoneSurrogate names the field, as the views' own 400s do
    return _answer(exc.code or 500, exc.name, message, **({"field": field} if field else {}))


def _seconds_until_allowed() -> int:
    """When the limit that refused this request lets one through again (the X-RateLimit-* headers are off: they
    cost a storage round trip on every limited request, and a signup form has no use for them)."""
    from ..extensions import limiter

    try:
        refused = limiter.current_limit
        return max(1, int(refused.reset_at - time.time())) if refused else 60
    except Exception:  # the limit's storage went away since it refused: a minute is the usual window
        return 60


def _database_down(exc: OperationalError):
    log.error("database unavailable: %s", exc)
    return _answer(503, "Temporarily unavailable", "We cannot store anything right now. Nothing was saved; please try again in a few minutes.")


def _unexpected(exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _answer(500, "Something went wrong", "Nothing was saved. Please try again; if it keeps happening, tell the site's author.")

"""/keep/<token>: the sunset mail's "keep me". The link opens a page; only its button, a POST, keeps the reader.

A link scanner or a mail client's preview fetches the link (GET) and at most reads the page: it never posts the
form (which needs the page's CSRF token and its session cookie), so it cannot keep a reader, and a fetch is not
counted as the reader's answer.
"""
from __future__ import annotations

from flask import Blueprint, render_template, request

from .. import tokens
from ..extensions import db
from ..links import preferences_url
from ..people import preferences, sunset
from .public import BadLink, bad_link

bp = Blueprint("keep", __name__)
bp.register_error_handler(BadLink, bad_link)


def _subscriber_id(token: str) -> int:
    try:
        return int(tokens.read(tokens.KEEP, token)["s"])
    except (tokens.InvalidToken, tokens.ExpiredToken, KeyError, TypeError, ValueError):
        raise BadLink("This link is not valid. Copy the whole link from our email, or open your preference page "
                      "from any of our emails.") from None


@bp.get("/keep/<token>")
def page(token: str):
    subscriber = preferences.reader(db.session, _subscriber_id(token))
    return render_template("site/keep.html", token=token, subscriber=subscriber, kept=False)


@bp.post("/keep/<token>")
def keep(token: str):
    subscriber = preferences.reader(db.session, _subscriber_id(token))
    if subscriber is None:
        return render_template("site/keep.html", token=token, subscriber=None, kept=False), 409
    sunset.keep(db.session, subscriber, form=sunset.CONSENT_FORM, ip=request.remote_addr,
                user_agent=request.user_agent.string)
    db.session.commit()
    return render_template("site/keep.html", token=token, subscriber=subscriber, kept=True,
                           preferences=preferences_url(subscriber.id))

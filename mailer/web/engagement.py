"""The tracked links of digest mail: /c/<token> records a click and redirects to the post; /o/<token>.gif an open.

Flask answers HEAD on these GET routes too: a HEAD gets the same redirect or image, and is recorded with its
method, which makes it a machine's (posts/scanners).
"""
from __future__ import annotations

import base64

from flask import Blueprint, Response, current_app, redirect, render_template, request

from .. import tokens
from ..extensions import db
from ..posts import engagement, scanners

bp = Blueprint("engagement", __name__)
# The smallest transparent GIF: 1×1, one colour.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@bp.get("/c/<token>")
def click(token: str):
    """Only a target we signed redirects: the URL is the one we signed into the link, or the post's row."""
    try:
        # Links sent before the URL was signed into them carry four values; the redirect then reads the post's row.
        delivery_id, subscriber_id, digest_id, post_id, *signed_url = tokens.read(tokens.CLICK, token)
    except (tokens.InvalidToken, tokens.ExpiredToken, TypeError, ValueError):
        return _broken("This link is not valid. Copy the whole link from the email, or find the post on the blog.", 400)
    url = engagement.record_click(db.session, delivery_id, subscriber_id, digest_id, post_id, _evidence(),
                                  *signed_url[:1])
    if url is None:
        db.session.rollback()
        return _broken("This post is no longer available. Find the latest posts on the blog.", 404)
    if db.session().in_transaction():  # the click was written here, not queued in Redis
        db.session.commit()
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = "no-store"  # every click should reach us, not a cache
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/o/<token>.gif")
def pixel(token: str):
    try:
        delivery_id, subscriber_id, digest_id = tokens.read(tokens.OPEN, token)
    except (tokens.InvalidToken, tokens.ExpiredToken, TypeError, ValueError):
        return Response(status=404)
    engagement.record_open(db.session, delivery_id, subscriber_id, digest_id, _evidence())
    db.session.commit()
    return Response(PIXEL, mimetype="image/gif", headers={"Cache-Control": "no-store, private"})


def _evidence() -> scanners.Evidence:
    return scanners.evidence(request.method, request.headers.get("User-Agent"), request.remote_addr, current_app.config)


def _broken(message: str, status: int):
    return render_template("site/message.html", title="This link does not work", message=message), status

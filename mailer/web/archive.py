"""The public archive of sent digests (/archive, /archive/<id>, /archive/feed.atom): the posts' own links, nothing
personal, and 404 for all of it when the author turns the archive off in the settings."""
from __future__ import annotations

from flask import Blueprint, abort, make_response, render_template, request

from ..extensions import db
from ..mail import identity
from ..models import aware
from ..posts import archive

bp = Blueprint("archive", __name__)


@bp.before_request
def _only_when_on():
    if not identity.current().archive_enabled:
        abort(404)


@bp.get("/archive")
def index():
    before = request.args.get("before", type=int)
    digests, older = archive.page(db.session, before_id=before if before and before > 0 else None)
    return render_template("site/archive.html", title=f"{identity.current().name} archive", digests=digests,
                           older=older)


@bp.get("/archive/<int:digest_id>")
def one(digest_id: int):
    digest = archive.archived(db.session, digest_id)
    if digest is None:
        return render_template("site/message.html", title="No such issue",
                               message="There is no issue in the archive under that number: it may be a "
                                       "mistyped link. The archive lists every issue sent."), 404
    return render_template("site/archive_issue.html", title=digest.subject, digest=digest)


@bp.get("/archive/feed.atom")
def feed():
    digests, _ = archive.page(db.session)
    updated = max((aware(d.created_at) for d in digests), default=None)
    response = make_response(render_template("site/archive_feed.xml", digests=digests, updated=updated,
                                             aware=aware))
    response.mimetype = "application/atom+xml"
    return response

"""The newsletter's look on every host: its accent colour as a stylesheet and its uploaded logo, each at a URL that
changes with it, so a browser or a CDN may keep them for a year."""
from __future__ import annotations

from flask import Blueprint, Response, abort, request
from sqlalchemy import select

from ..extensions import db
from ..mail import identity
from ..models import NewsletterSettings

bp = Blueprint("brand", __name__)
FOREVER = "public, max-age=31536000, immutable"


@bp.get("/brand.css")
def stylesheet():
    studio = identity.current()
    # The colour was checked when saved (#rrggbb): nothing else can get into this rule.
    cache = FOREVER if request.args.get("v") == studio.version_tag else "no-cache"
    return Response(f":root {{ --accent: {studio.accent}; }}\n", mimetype="text/css", headers={"Cache-Control": cache})


@bp.get("/brand/logo/<digest>")
def logo(digest: str):
    """The uploaded logo named by its SHA-256; an old hash (a logo replaced since) is gone: 404."""
    row = db.session.execute(select(NewsletterSettings.logo_data, NewsletterSettings.logo_type)
                             .where(NewsletterSettings.logo_hash == digest)).first()
    if row is None or row.logo_data is None:
        abort(404)
    return Response(row.logo_data, mimetype=row.logo_type, headers={
        "Cache-Control": FOREVER, "ETag": f'"{digest}"', "Content-Security-Policy": "default-src 'none'",
        "X-Content-Type-Options": "nosniff"})

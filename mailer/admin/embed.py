"""The signup form for the blog: three snippets to copy, and the form itself live in a frame."""
from __future__ import annotations

from flask import current_app, render_template, request
from sqlalchemy import select

from ..extensions import db
from ..models import LeadMagnet
from ..web.embed_snippets import snippets
from . import bp


@bp.get("/embed")
def embed():
    magnets = list(db.session.scalars(select(LeadMagnet).order_by(LeadMagnet.id)))
    by_slug = {m.slug: m for m in magnets}
    magnet = by_slug.get(request.args.get("magnet")) or (magnets[0] if magnets else None)
    return render_template("admin/embed.html", snippets=snippets(current_app.config["BASE_URL"], magnet),
                           magnets=magnets, chosen=magnet.slug if magnet else "handbook",
                           origins=current_app.config["EMBED_ORIGINS"])

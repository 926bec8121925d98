"""The signup form for the blog: three snippets to copy, and the form itself live in a frame."""
from __future__ import annotations

from flask import current_app, render_template, request
from sqlalchemy import select

from ..embed_snippets import snippets
from ..extensions import db
from ..models import LeadMagnet
from . import bp


@bp.get("/embed")
def embed():
    magnets = list(db.session.scalars(select(LeadMagnet).order_by(LeadMagnet.id)))
    slugs = [m.slug for m in magnets]
    chosen = request.args.get("magnet") if request.args.get("magnet") in slugs else (slugs[0] if slugs else "handbook")
    return render_template("admin/embed.html", snippets=snippets(current_app.config["BASE_URL"], chosen),
                           magnets=magnets, chosen=chosen, origins=current_app.config["EMBED_ORIGINS"])

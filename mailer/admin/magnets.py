"""Lead magnets: the list with download counts, a new magnet, a new file or new words for one."""
from __future__ import annotations

import mimetypes
import re

from flask import abort, flash, redirect, render_template, url_for
from sqlalchemy import func, select
from werkzeug.utils import secure_filename

from ..extensions import db
from ..models import Download, LeadMagnet, WelcomeStep
from ..uploads import store
from . import bp
from .forms import MagnetForm, NewMagnetForm


def store_file(magnet: LeadMagnet, upload) -> None:
    """Keep an upload in the database as the magnet's file, in the caller's transaction (every host serves it)."""
    name = secure_filename(upload.filename or "") or f"{magnet.slug}.pdf"
    # The file it replaces is deleted in the same transaction: the magnet always has exactly one.
    store.forget_older(db.session, store.save(db.session, upload.stream, magnet_id=magnet.id))
    magnet.file, magnet.filename = "", name
    magnet.content_type = mimetypes.guess_type(name)[0] or upload.mimetype or "application/octet-stream"


@bp.get("/magnets")
def magnets():
    counts = dict(db.session.execute(select(Download.magnet_id, func.count()).group_by(Download.magnet_id)).all())
    follow_ups = dict(db.session.execute(select(WelcomeStep.magnet_id, func.count()).where(
        WelcomeStep.magnet_id.is_not(None)).group_by(WelcomeStep.magnet_id)).all())
    rows = list(db.session.scalars(select(LeadMagnet).order_by(LeadMagnet.id)))
    return render_template("admin/magnets.html", magnets=rows, counts=counts, follow_ups=follow_ups)


@bp.route("/magnets/new", methods=["GET", "POST"])
def magnet_new():
    form = NewMagnetForm()
    if form.validate_on_submit():
        slug = form.slug.data.strip().lower()
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", slug):
            form.slug.errors.append("Use lower-case letters, digits and dashes only, like 'checklist-2027'.")
        elif db.session.scalar(select(LeadMagnet.id).where(LeadMagnet.slug == slug)):
            form.slug.errors.append(f"There is already a magnet called {slug!r}.")
        else:
            magnet = LeadMagnet(slug=slug, title=form.title.data.strip(), file="", filename="",
                                description=(form.description.data or "").strip())
            db.session.add(magnet)
            db.session.flush()
            store_file(magnet, form.file.data)
            db.session.commit()
            flash(f"Added “{form.title.data.strip()}”. Use magnet={slug} in a signup form to offer it.", "ok")
            return redirect(url_for("admin.magnets"))
    return render_template("admin/magnet_form.html", form=form, magnet=None), 400 if form.errors else 200


@bp.route("/magnets/<int:magnet_id>", methods=["GET", "POST"])
def magnet_edit(magnet_id: int):
    magnet = db.session.get(LeadMagnet, magnet_id) or abort(404)
    form = MagnetForm(obj=magnet)
    if form.validate_on_submit():
        magnet.title = form.title.data.strip()
        magnet.description = (form.description.data or "").strip()
        if form.file.data:
            store_file(magnet, form.file.data)
        db.session.commit()
        flash(f"Saved “{magnet.title}”{' with its new file' if form.file.data else ''}.", "ok")
        return redirect(url_for("admin.magnets"))
    return render_template("admin/magnet_form.html", form=form, magnet=magnet), 400 if form.errors else 200

"""Suppressions: the bounced and complained readers with the event behind each, and lifting a bounce."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..bounces import suppressions
from ..extensions import db
from ..web.ids import row_id
from . import bp
from .forms import ActionForm


@bp.get("/suppressions")
def suppressions_page():
    before = request.args.get("before", type=row_id)
    page = suppressions.suppressed(db.session, before)
    return render_template("admin/suppressions.html", page=page, first_page=before is None, form=ActionForm(),
                           complaint_stays=suppressions.COMPLAINT_STAYS)


@bp.post("/suppressions/<int:subscriber_id>/lift")
def lift_suppression(subscriber_id: int):
    ActionForm().validate_on_submit() or abort(400)
    back = (url_for("admin.subscriber", subscriber_id=subscriber_id) if request.form.get("back") == "subscriber"
            else url_for("admin.suppressions_page"))
    try:
        person = suppressions.lift_bounce(db.session, subscriber_id, current_user.admin) or abort(404)
    except suppressions.CannotLift as exc:
        db.session.rollback()
        flash(f"Not lifted: {exc}", "error")
        return redirect(back)
    db.session.commit()
    flash(f"Bounce lifted: {person.email} is {person.status} again and gets mail from the next digest on. "
          "If their mail bounces again, they are suppressed again.", "ok")
    return redirect(back)

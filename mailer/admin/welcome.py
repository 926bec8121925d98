"""The welcome sequence: each step's delay, subject and body, a preview of each, and the sequence on or off."""
from __future__ import annotations

from types import SimpleNamespace

from flask import abort, flash, redirect, render_template, url_for
from sqlalchemy import select, update

from ..extensions import db
from ..mail.messages import has_line_break, render_parts
from ..models import WelcomeStep
from ..outbox.compose import welcome_template
from . import bp, mail_html
from .forms import ActionForm, StepForm

SAMPLE = SimpleNamespace(name="Alex", email="alex@example.com")


def preview(step: WelcomeStep):
    return render_parts(*welcome_template(step.template, {"subscriber": SAMPLE, "unsubscribe_url": "#unsubscribe-link"}))


@bp.get("/welcome")
def welcome():
    steps = list(db.session.scalars(select(WelcomeStep).order_by(WelcomeStep.position)))
    return render_template("admin/welcome.html", steps=steps, subjects={s.id: preview(s).subject for s in steps},
                           on=any(s.enabled for s in steps), form=ActionForm())


@bp.post("/welcome/<any(on, off):state>")
def welcome_switch(state: str):
    db.session.execute(update(WelcomeStep).values(enabled=state == "on"))
    db.session.commit()
    flash("The welcome sequence is on: newly confirmed subscribers get every step." if state == "on" else
          "The welcome sequence is off: no step is sent until you turn steps back on.", "ok")
    return redirect(url_for("admin.welcome"))


@bp.route("/welcome/<int:step_id>", methods=["GET", "POST"])
def welcome_step(step_id: int):
    step = db.session.get(WelcomeStep, step_id) or abort(404)
    form = StepForm(obj=step)
    if form.validate_on_submit():
        if has_line_break(form.subject.data or ""):
            form.subject.errors.append("The subject must be one line.")
        else:
            step.delay_hours, step.enabled = form.delay_hours.data, form.enabled.data
            step.subject = (form.subject.data or "").strip() or None
            step.body = (form.body.data or "").strip() or None
            db.session.commit()
            flash(f"Saved step {step.position}.", "ok")
            return redirect(url_for("admin.welcome_step", step_id=step.id))
    return render_template("admin/welcome_step.html", step=step, form=form, parts=preview(step),
                           defaults=render_parts(step.template, {"subscriber": SAMPLE, "unsubscribe_url": "#"})
                           ), 400 if form.errors else 200


@bp.get("/welcome/<int:step_id>/preview.html")
def welcome_preview_html(step_id: int):
    step = db.session.get(WelcomeStep, step_id) or abort(404)
    return mail_html(preview(step).html)

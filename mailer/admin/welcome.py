"""The welcome sequence and each magnet's follow-ups: steps added, moved, deleted, reworded, previewed and tested."""
from __future__ import annotations

from types import SimpleNamespace

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from ..extensions import db
from ..mail.messages import has_line_break
from ..models import LeadMagnet, WelcomeStep
from ..outbox import ledger
from ..outbox.compose import built_in_words, welcome_parts, welcome_words
from ..people import welcome_steps
from . import bp, mail_html
from .forms import ActionForm, StepForm, StepTestForm

SAMPLE = SimpleNamespace(id=0, name="Alex", email="alex@example.com")


def preview(step: WelcomeStep):
    """The step's mail as a reader called Alex gets it: composed as the real send composes it."""
    return welcome_parts(step, SAMPLE)


def _sequence_page(magnet: LeadMagnet | None):
    steps = welcome_steps.steps(db.session, magnet.id if magnet else None, enabled_only=False)
    return render_template("admin/welcome.html", steps=steps, magnet=magnet, form=ActionForm(),
                           subjects={s.id: welcome_words(s)[0] or "(no subject yet)" for s in steps},
                           on=any(s.enabled for s in steps))


def _to_sequence(step_or_magnet_id: int | None):
    if step_or_magnet_id is None:
        return redirect(url_for("admin.welcome"))
    return redirect(url_for("admin.magnet_steps", magnet_id=step_or_magnet_id))


@bp.get("/welcome")
def welcome():
    return _sequence_page(None)


@bp.get("/magnets/<int:magnet_id>/steps")
def magnet_steps(magnet_id: int):
    return _sequence_page(db.session.get(LeadMagnet, magnet_id) or abort(404))


@bp.post("/welcome/<any(on, off):state>")
def welcome_switch(state: str):
    welcome_steps.switch_all(db.session, state == "on")
    db.session.commit()
    flash("The welcome sequence is on: newly confirmed subscribers get every step." if state == "on" else
          "The welcome sequence is off: no step is sent until you turn steps back on.", "ok")
    return redirect(url_for("admin.welcome"))


@bp.post("/welcome/new")
@bp.post("/magnets/<int:magnet_id>/steps/new")
def welcome_add(magnet_id: int | None = None):
    if not ActionForm().validate_on_submit():
        abort(400)
    if magnet_id is not None and db.session.get(LeadMagnet, magnet_id) is None:
        abort(404)
    step = welcome_steps.add_step(db.session, magnet_id)
    db.session.commit()
    flash("Added a step at the end, switched off: write it, then tick “Send this step”.", "ok")
    return redirect(url_for("admin.welcome_step", step_id=step.id))


@bp.post("/welcome/<int:step_id>/<any(up, down):direction>")
def welcome_move(step_id: int, direction: str):
    step = _posted_step(step_id)
    welcome_steps.move_step(db.session, step, -1 if direction == "up" else 1)
    db.session.commit()
    return _to_sequence(step.magnet_id)


@bp.post("/welcome/<int:step_id>/delete")
def welcome_delete(step_id: int):
    step = _posted_step(step_id)
    magnet_id, subject = step.magnet_id, welcome_words(step)[0] or "the new step"
    welcome_steps.delete_step(db.session, step)
    db.session.commit()
    flash(f"Deleted “{subject}”. Readers who had it keep their place; nobody gets it from now on.", "ok")
    return _to_sequence(magnet_id)


@bp.route("/welcome/<int:step_id>", methods=["GET", "POST"])
def welcome_step(step_id: int):
    step = db.session.get(WelcomeStep, step_id) or abort(404)
    first = welcome_steps.is_first(db.session, step)
    subject, body = welcome_words(step)
    form = StepForm(delay=step.delay_hours if first else step.delay_hours // 24, subject=subject, body=body,
                    enabled=step.enabled)
    form.delay.label.text = f"{'Hours' if first else 'Days'} after {'taking the magnet' if step.magnet_id else 'confirmation'}"
    if form.validate_on_submit() and _save(step, form, first):
        db.session.commit()
        flash("Saved. The preview shows the mail as it goes now.", "ok")
        return redirect(url_for("admin.welcome_step", step_id=step.id))
    test_form = StepTestForm(formdata=None, to=current_user.admin.email)
    return render_template("admin/welcome_step.html", step=step, form=form, test_form=test_form, parts=preview(step),
                           first=first, defaults=built_in_words(step.template)), 400 if form.errors else 200


def _save(step: WelcomeStep, form: StepForm, first: bool) -> bool:
    """Store the form's words; text left as the built-in words is stored as none, so it follows the template."""
    default_subject, default_body = built_in_words(step.template)
    subject, body = (form.subject.data or "").strip(), (form.body.data or "").replace("\r\n", "\n").strip()
    if has_line_break(subject):
        form.subject.errors.append("The subject must be one line.")
        return False
    try:
        welcome_steps.save_step(db.session, step, delay_hours=form.delay.data * (1 if first else 24),
                                subject=None if subject in ("", default_subject) else subject,
                                body=None if body in ("", default_body) else body, enabled=form.enabled.data)
    except welcome_steps.StepNotReady as exc:
        form.enabled.errors.append(str(exc))
        return False
    return True


@bp.post("/welcome/<int:step_id>/test")
def welcome_test(step_id: int):
    step = db.session.get(WelcomeStep, step_id) or abort(404)
    form = StepTestForm()
    if not form.validate_on_submit():
        flash(f"Cannot send the test: {'; '.join(e for errs in form.errors.values() for e in errs)}", "error")
        return redirect(url_for("admin.welcome_step", step_id=step.id))
    welcome_steps.send_test_copy(db.session, step, form.to.data)
    db.session.commit()
    ledger.wake()
    flash(f"A test copy is on its way to {form.to.data}.", "ok")
    return redirect(url_for("admin.welcome_step", step_id=step.id))


@bp.get("/welcome/<int:step_id>/preview.html")
def welcome_preview_html(step_id: int):
    step = db.session.get(WelcomeStep, step_id) or abort(404)
    return mail_html(preview(step).html)


def _posted_step(step_id: int) -> WelcomeStep:
    if not ActionForm().validate_on_submit():
        abort(400)
    return db.session.get(WelcomeStep, step_id) or abort(404)

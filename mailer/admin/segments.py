"""Segments in the console: define one with its live count, save it, and pick one (or a magnet) when composing."""
from __future__ import annotations

from flask import flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from ..extensions import db
from ..models import LeadMagnet
from ..posts import audiences, segments
from ..posts.audiences import RuleError
from . import bp
from .forms import ActionForm

FORM_CHOICES = [("embed", "any embedded form"), ("snippet", "HTML snippet"), ("iframe", "iframe"),
                ("script", "embed.js"), ("api", "the API"), ("import", "an import"),
                ("resubscribe", "subscribed again")]


def _magnets() -> list[LeadMagnet]:
    return list(db.session.scalars(select(LeadMagnet).order_by(LeadMagnet.title)))


def _counted(args) -> tuple[dict | None, int | None, RuleError | None]:
    """The rules of the form's fields, and how many readers they choose; or what is wrong with them."""
    try:
        rules = audiences.from_query(db.session, args)
    except RuleError as exc:
        return None, None, exc
    return rules, segments.segment_count(db.session, rules), None


@bp.get("/segments")
def segments_page():
    saved = [(s, segments.segment_count(db.session, s.rules)) for s in segments.segments(db.session)]
    rules, count, problem = _counted(request.args)
    return render_template("admin/segments.html", saved=saved, magnets=_magnets(), forms=FORM_CHOICES,
                           args=request.args, rules=rules, count=count, problem=problem,
                           describe=audiences.describe, form=ActionForm())


@bp.get("/segments/count")
def segment_count():
    """The live count beside the form (admin.js asks as the fields change)."""
    rules, count, problem = _counted(request.args)
    if problem is not None:
        return jsonify(error=str(problem), field=problem.field), 400
    return jsonify(count=count, description=audiences.describe(rules))


@bp.post("/segments")
def segment_save():
    form = ActionForm()
    args = request.form
    if not form.validate():
        flash("The form had expired: nothing was saved. Try again.", "error")
        return redirect(url_for("admin.segments_page"))
    try:
        rules = audiences.from_query(db.session, args)
        segment = segments.create_segment(db.session, args.get("name", ""), rules)
    except RuleError as exc:
        db.session.rollback()
        flash(f"Nothing was saved: {exc}", "error")
        return redirect(url_for("admin.segments_page", **{k: args.getlist(k) for k in args if k != "csrf_token"}))
    db.session.commit()
    flash(f"Saved the segment “{segment.name}”: {audiences.describe(segment.rules)}.", "ok")
    return redirect(url_for("admin.segments_page"))


def recipients_choices() -> list[tuple[str, str]]:
    """The compose page's choice: everyone, each segment, each magnet's readers (value, label)."""
    return ([("", "Everyone"), *((f"segment:{s.id}", f"Segment: {s.name}") for s in segments.segments(db.session)),
             *((f"magnet:{m.slug}", f"Took {m.title}") for m in _magnets())])


def chosen_recipients(value: str | None) -> segments.Recipients:
    """The choice made on the compose page; RuleError for a segment or magnet that is no more."""
    kind, _, name = (value or "").partition(":")
    if kind == "segment":
        return segments.recipients_of(db.session, segment=int(name) if name.isdigit() and len(name) < 18 else name)
    if kind == "magnet":
        return segments.recipients_of(db.session, magnet=name)
    return segments.EVERYONE
